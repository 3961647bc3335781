package sandbox

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-github/v60/github"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/nacl/box"

	"github.com/stanchhq/stanch/internal/planted"
)

const githubRepoSeed = `
accounts:
  - id: "111122223333"
    users:
      - ` + ResponderSeedUser + `
github:
  token: ghp_seeded
  repositories:
    - name: acme/api
      id: 4242
      files:
        secrets/prod.enc.yaml: "db: ENC[old]\n"
        README.md: "# api\n"
      secrets: {CI_AWS_SECRET: seeded-old-value}
      environments:
        production: {}
    - name: acme/web
  orgs:
    - {login: acme, secrets: {ORG_TOKEN: seeded-org-value}}
`

// repoSandbox returns a sandbox seeded with repositories and a go-github
// client with the seeded token pointed at it.
func repoSandbox(t *testing.T, apps ...SeedGitHubApp) (*Sandbox, string, *github.Client) {
	t.Helper()
	seed, err := ParseSeed("seed.yaml", []byte(githubRepoSeed))
	require.NoError(t, err)
	seed.GitHub.Apps = apps
	sb, err := New(seed, Options{})
	require.NoError(t, err)
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	return sb, srv.URL, githubClientAt(t, srv.URL, "ghp_seeded")
}

func githubClientAt(t *testing.T, url, token string) *github.Client {
	t.Helper()
	c, err := github.NewClient(nil).WithAuthToken(token).WithEnterpriseURLs(url+"/api/v3/", url+"/api/v3/")
	require.NoError(t, err)
	return c
}

// seal seals value with a public key as GitHub's docs say: crypto_box_seal,
// then standard base64.
func seal(t *testing.T, key *github.PublicKey, value string) string {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(key.GetKey())
	require.NoError(t, err)
	require.Len(t, raw, 32)
	sealed, err := box.SealAnonymous(nil, []byte(value), (*[32]byte)(raw), rand.Reader)
	require.NoError(t, err)
	return base64.StdEncoding.EncodeToString(sealed)
}

// opened opens what the sandbox holds for scope/name with the scope's key.
func opened(t *testing.T, sb *Sandbox, scope, name string) string {
	t.Helper()
	sec, ok := sb.ActionsSecret(scope, name)
	require.True(t, ok, "%s %s", scope, name)
	key, ok := sb.ActionsPrivateKey(scope)
	require.True(t, ok)
	require.Equal(t, key.ID, sec.KeyID)
	plain, ok := box.OpenAnonymous(nil, sec.Sealed, key.Public, key.Private)
	require.True(t, ok, "the sealed value opens with the scope's private key")
	return string(plain)
}

func statusOf(t *testing.T, err error) int {
	t.Helper()
	var er *github.ErrorResponse
	require.ErrorAs(t, err, &er)
	return er.Response.StatusCode
}

func TestActionsRepoSecretSealPutOpen(t *testing.T) {
	t.Parallel()
	sb, _, c := repoSandbox(t)
	ctx := context.Background()

	key, _, err := c.Actions.GetRepoPublicKey(ctx, "acme", "api")
	require.NoError(t, err)
	require.NotEmpty(t, key.GetKeyID())
	require.Equal(t, "seeded-old-value", opened(t, sb, "acme/api", "CI_AWS_SECRET"), "seeded secrets are sealed with the repository's key")

	res, err := c.Actions.CreateOrUpdateRepoSecret(ctx, "acme", "api", &github.EncryptedSecret{Name: "AWS_SECRET_ACCESS_KEY", KeyID: key.GetKeyID(), EncryptedValue: seal(t, key, planted.Random)})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, res.StatusCode)
	first, _ := sb.ActionsSecret("acme/api", "AWS_SECRET_ACCESS_KEY")
	require.Equal(t, planted.Random, opened(t, sb, "acme/api", "AWS_SECRET_ACCESS_KEY"))

	res, err = c.Actions.CreateOrUpdateRepoSecret(ctx, "acme", "api", &github.EncryptedSecret{Name: "aws_secret_access_key", KeyID: key.GetKeyID(), EncryptedValue: seal(t, key, planted.NoDigit)})
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, res.StatusCode, "a second put updates (names are case-insensitive)")
	require.Equal(t, planted.NoDigit, opened(t, sb, "acme/api", "AWS_SECRET_ACCESS_KEY"))
	second, _ := sb.ActionsSecret("acme/api", "AWS_SECRET_ACCESS_KEY")
	require.Equal(t, first.Created, second.Created)
	require.False(t, second.Updated.Before(first.Updated))

	got, _, err := c.Actions.GetRepoSecret(ctx, "acme", "api", "AWS_SECRET_ACCESS_KEY")
	require.NoError(t, err)
	require.Equal(t, "AWS_SECRET_ACCESS_KEY", got.Name)
	require.Equal(t, second.Updated.Unix(), got.UpdatedAt.Unix())
	list, _, err := c.Actions.ListRepoSecrets(ctx, "acme", "api", nil)
	require.NoError(t, err)
	require.Equal(t, 2, list.TotalCount)
	require.Equal(t, []string{"AWS_SECRET_ACCESS_KEY", "CI_AWS_SECRET"}, []string{list.Secrets[0].Name, list.Secrets[1].Name})

	// A stale key id, a missing one, a value that is no sealed box: 422.
	_, err = c.Actions.CreateOrUpdateRepoSecret(ctx, "acme", "api", &github.EncryptedSecret{Name: "X", KeyID: "123", EncryptedValue: seal(t, key, "v")})
	require.Equal(t, http.StatusUnprocessableEntity, statusOf(t, err))
	require.NoError(t, sb.RotateActionsKey("acme/api"))
	_, err = c.Actions.CreateOrUpdateRepoSecret(ctx, "acme", "api", &github.EncryptedSecret{Name: "X", KeyID: key.GetKeyID(), EncryptedValue: seal(t, key, "v")})
	require.Equal(t, http.StatusUnprocessableEntity, statusOf(t, err), "after a key rotation the old key id is refused")
	req, err := c.NewRequest(http.MethodPut, "repos/acme/api/actions/secrets/X", map[string]string{"encrypted_value": "bm90IHNlYWxlZA=="})
	require.NoError(t, err)
	_, err = c.Do(ctx, req, nil)
	require.Equal(t, http.StatusUnprocessableEntity, statusOf(t, err))
	_, err = c.Actions.CreateOrUpdateRepoSecret(ctx, "acme", "api", &github.EncryptedSecret{Name: "GITHUB_TOKEN", KeyID: key.GetKeyID(), EncryptedValue: seal(t, key, "v")})
	require.Equal(t, http.StatusUnprocessableEntity, statusOf(t, err))
	_, err = c.Actions.CreateOrUpdateRepoSecret(ctx, "acme", "nope", &github.EncryptedSecret{Name: "X", KeyID: key.GetKeyID(), EncryptedValue: seal(t, key, "v")})
	require.Equal(t, http.StatusNotFound, statusOf(t, err))

	res, err = c.Actions.DeleteRepoSecret(ctx, "acme", "api", "CI_AWS_SECRET")
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, res.StatusCode)
	_, _, err = c.Actions.GetRepoSecret(ctx, "acme", "api", "CI_AWS_SECRET")
	require.Equal(t, http.StatusNotFound, statusOf(t, err))

	calls := sb.Calls()
	require.Equal(t, 2, sb.EffectiveCount("CreateOrUpdateRepoSecret"))
	var put Call
	for _, call := range calls {
		if call.Action == "CreateOrUpdateRepoSecret" && call.Status == http.StatusCreated {
			put = call
		}
	}
	require.Equal(t, "acme/api", put.Params["repo"])
	require.Equal(t, "AWS_SECRET_ACCESS_KEY", put.Params["secret_name"])
	require.Equal(t, key.GetKeyID(), put.Params["key_id"])
	require.Equal(t, "88", put.Params["size"], "40 bytes sealed: 48 more")
	planted.RequireNone(t, "the call log", calls)
	planted.RequireNone(t, "the state", sb.State())
}

func TestActionsEnvironmentAndOrgSecrets(t *testing.T) {
	t.Parallel()
	sb, _, c := repoSandbox(t)
	ctx := context.Background()

	repo, _, err := c.Repositories.Get(ctx, "acme", "api")
	require.NoError(t, err)
	require.Equal(t, int64(4242), repo.GetID())
	require.Equal(t, "main", repo.GetDefaultBranch())

	// go-github v60 addresses environments by repository id.
	key, _, err := c.Actions.GetEnvPublicKey(ctx, int(repo.GetID()), "production")
	require.NoError(t, err)
	repoKey, _, err := c.Actions.GetRepoPublicKey(ctx, "acme", "api")
	require.NoError(t, err)
	require.NotEqual(t, repoKey.GetKey(), key.GetKey(), "each scope has its own key pair")
	res, err := c.Actions.CreateOrUpdateEnvSecret(ctx, int(repo.GetID()), "production", &github.EncryptedSecret{Name: "DEPLOY_KEY", KeyID: key.GetKeyID(), EncryptedValue: seal(t, key, planted.NoUpper)})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, res.StatusCode)
	require.Equal(t, planted.NoUpper, opened(t, sb, "acme/api/production", "DEPLOY_KEY"))
	got, _, err := c.Actions.GetEnvSecret(ctx, int(repo.GetID()), "production", "DEPLOY_KEY")
	require.NoError(t, err)
	require.Equal(t, "DEPLOY_KEY", got.Name)
	_, _, err = c.Actions.GetEnvPublicKey(ctx, int(repo.GetID()), "staging")
	require.Equal(t, http.StatusNotFound, statusOf(t, err))

	// The newer path, /repos/{o}/{r}/environments/{env}/secrets/…: same scope.
	req, err := c.NewRequest(http.MethodPut, "repos/acme/api/environments/production/secrets/DEPLOY_KEY", &github.EncryptedSecret{KeyID: key.GetKeyID(), EncryptedValue: seal(t, key, "v2")})
	require.NoError(t, err)
	res, err = c.Do(ctx, req, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, res.StatusCode)
	require.Equal(t, "v2", opened(t, sb, "acme/api/production", "DEPLOY_KEY"))

	// Organisation secrets need a visibility; selected ones name repositories.
	orgKey, _, err := c.Actions.GetOrgPublicKey(ctx, "acme")
	require.NoError(t, err)
	_, err = c.Actions.CreateOrUpdateOrgSecret(ctx, "acme", &github.EncryptedSecret{Name: "ORG_AWS", KeyID: orgKey.GetKeyID(), EncryptedValue: seal(t, orgKey, "x")})
	require.Equal(t, http.StatusUnprocessableEntity, statusOf(t, err))
	_, err = c.Actions.CreateOrUpdateOrgSecret(ctx, "acme", &github.EncryptedSecret{Name: "ORG_AWS", KeyID: orgKey.GetKeyID(), EncryptedValue: seal(t, orgKey, "x"), Visibility: "selected", SelectedRepositoryIDs: github.SelectedRepoIDs{99}})
	require.Equal(t, http.StatusUnprocessableEntity, statusOf(t, err))
	res, err = c.Actions.CreateOrUpdateOrgSecret(ctx, "acme", &github.EncryptedSecret{Name: "ORG_AWS", KeyID: orgKey.GetKeyID(), EncryptedValue: seal(t, orgKey, planted.InTitle), Visibility: "selected", SelectedRepositoryIDs: github.SelectedRepoIDs{4242, 1002}})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, res.StatusCode)
	require.Equal(t, planted.InTitle, opened(t, sb, "acme", "ORG_AWS"))
	sec, _ := sb.ActionsSecret("acme", "ORG_AWS")
	require.Equal(t, "selected", sec.Visibility)
	require.Equal(t, []int64{4242, 1002}, sec.SelectedRepositoryIDs)
	orgSecret, _, err := c.Actions.GetOrgSecret(ctx, "acme", "ORG_AWS")
	require.NoError(t, err)
	require.Equal(t, "selected", orgSecret.Visibility)
	require.Contains(t, orgSecret.SelectedRepositoriesURL, "/orgs/acme/actions/secrets/ORG_AWS/repositories")
	require.Equal(t, "seeded-org-value", opened(t, sb, "acme", "ORG_TOKEN"))
	_, _, err = c.Actions.GetOrgPublicKey(ctx, "nobody")
	require.Equal(t, http.StatusNotFound, statusOf(t, err))

	planted.RequireNone(t, "the call log", sb.Calls())
}

func TestActionsSecretsAppPermissions(t *testing.T) {
	t.Parallel()
	pub, priv, err := NewGitHubAppKey()
	require.NoError(t, err)
	block, _ := pem.Decode(priv)
	rsaKey, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	require.NoError(t, err)
	sb, url, _ := repoSandbox(t,
		SeedGitHubApp{ID: 1, InstallationID: 10, PublicKey: pub, Permissions: map[string]string{"secrets": "write", "contents": "read"}},
		SeedGitHubApp{ID: 2, InstallationID: 20, PublicKey: pub},
	)
	ctx := context.Background()
	install := func(app, installation int64) *github.Client {
		now := time.Now()
		jwt := signJWT(t, rsaKey, map[string]any{"iss": app, "iat": now.Add(-time.Minute).Unix(), "exp": now.Add(5 * time.Minute).Unix()})
		tok, _, err := githubClientAt(t, url, jwt).Apps.CreateInstallationToken(ctx, installation, nil)
		require.NoError(t, err)
		return githubClientAt(t, url, tok.GetToken())
	}
	limited, unlimited := install(1, 10), install(2, 20)

	key, _, err := limited.Actions.GetRepoPublicKey(ctx, "acme", "api")
	require.NoError(t, err)
	res, err := limited.Actions.CreateOrUpdateRepoSecret(ctx, "acme", "api", &github.EncryptedSecret{Name: "A", KeyID: key.GetKeyID(), EncryptedValue: seal(t, key, "v")})
	require.NoError(t, err, "secrets: write")
	require.Equal(t, http.StatusCreated, res.StatusCode)
	orgKey, _, err := unlimited.Actions.GetOrgPublicKey(ctx, "acme")
	require.NoError(t, err, "an App without seeded permissions may do anything")
	_, err = limited.Actions.CreateOrUpdateOrgSecret(ctx, "acme", &github.EncryptedSecret{Name: "A", KeyID: orgKey.GetKeyID(), EncryptedValue: seal(t, orgKey, "v"), Visibility: "all"})
	require.Equal(t, http.StatusForbidden, statusOf(t, err), "no organization_secrets")
	_, _, err = limited.Repositories.CreateFile(ctx, "acme", "api", "x.txt", &github.RepositoryContentFileOptions{Message: github.String("m"), Content: []byte("x")})
	require.Equal(t, http.StatusForbidden, statusOf(t, err), "contents: read only")
	_, _, _, err = limited.Repositories.GetContents(ctx, "acme", "api", "README.md", nil)
	require.NoError(t, err)
	_, _, err = limited.PullRequests.List(ctx, "acme", "api", nil)
	require.Equal(t, http.StatusForbidden, statusOf(t, err), "no pull_requests")
	_, err = unlimited.Actions.CreateOrUpdateOrgSecret(ctx, "acme", &github.EncryptedSecret{Name: "A", KeyID: orgKey.GetKeyID(), EncryptedValue: seal(t, orgKey, "v"), Visibility: "all"})
	require.NoError(t, err)

	_, _, err = githubClientAt(t, url, "ghp_wrong").Actions.GetRepoPublicKey(ctx, "acme", "api")
	require.Equal(t, http.StatusUnauthorized, statusOf(t, err))
	require.NotEmpty(t, sb.ActionsSecretNames("acme/api"))
}

func TestGitHubRepositorySeedValidation(t *testing.T) {
	t.Parallel()
	for name, github := range map[string]string{
		"bad repo":      `{repositories: [{name: api}]}`,
		"repeated repo": `{repositories: [{name: a/b}, {name: a/b}]}`,
		"repeated id":   `{repositories: [{name: a/b, id: 7}, {name: a/c, id: 7}]}`,
		"path":          `{repositories: [{name: a/b, files: {"../x": y}}]}`,
		"secret name":   `{repositories: [{name: a/b, secrets: {GITHUB_X: y}}]}`,
		"env secret":    `{repositories: [{name: a/b, environments: {prod: {"1X": y}}}]}`,
		"org":           `{orgs: [{login: ""}]}`,
	} {
		seed := "accounts:\n  - id: \"111122223333\"\n    users:\n      - " + ResponderSeedUser + "\ngithub: " + github + "\n"
		_, err := ParseSeed("seed.yaml", []byte(seed))
		require.Error(t, err, name)
	}
	pub, _, err := NewGitHubAppKey()
	require.NoError(t, err)
	_, err = newGitHubApp(SeedGitHubApp{ID: 1, InstallationID: 2, PublicKey: pub, Permissions: map[string]string{"secrets": "writ"}})
	require.ErrorContains(t, err, "not read, write or admin")
	seed, err := ParseSeed("seed.yaml", []byte(githubRepoSeed))
	require.NoError(t, err)
	require.Equal(t, []int64{4242, 1002}, seed.GitHub.repositoryIDs())
}
