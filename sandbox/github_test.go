package sandbox

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-github/v60/github"
	"github.com/stretchr/testify/require"
)

const githubSeed = `
accounts:
  - id: "111122223333"
    users:
      - ` + ResponderSeedUser + `
github:
  token: ghp_seeded
  alerts:
    - {repo: acme/app, number: 7, secret_type: aws_access_key_id, secret: AKIAIOSFODNN7EXAMPLE}
`

// githubSandbox returns a sandbox, its URL, and a go-github client with the
// seeded token pointed at it.
func githubSandbox(t *testing.T, apps ...SeedGitHubApp) (*Sandbox, string, *github.Client) {
	t.Helper()
	seed, err := ParseSeed("seed.yaml", []byte(githubSeed))
	require.NoError(t, err)
	seed.GitHub.Apps = apps
	require.NoError(t, seed.validate())
	sb, err := New(seed, Options{})
	require.NoError(t, err)
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	c, err := github.NewClient(nil).WithAuthToken("ghp_seeded").WithEnterpriseURLs(srv.URL+"/api/v3/", srv.URL+"/api/v3/")
	require.NoError(t, err)
	return sb, srv.URL, c
}

func patchAlert(t *testing.T, c *github.Client, body map[string]any) (map[string]any, *github.Response, error) {
	t.Helper()
	req, err := c.NewRequest(http.MethodPatch, "repos/acme/app/secret-scanning/alerts/7", body)
	require.NoError(t, err)
	var out map[string]any
	res, err := c.Do(context.Background(), req, &out)
	return out, res, err
}

func TestGitHubResolveAlert(t *testing.T) {
	t.Parallel()
	sb, _, c := githubSandbox(t)
	ctx := context.Background()

	_, _, err := patchAlert(t, c, map[string]any{"state": "resolved", "resolution": "fixed"})
	var er *github.ErrorResponse
	require.ErrorAs(t, err, &er)
	require.Equal(t, http.StatusUnprocessableEntity, er.Response.StatusCode)
	require.Equal(t, "Validation Failed", er.Message)
	require.Equal(t, "resolution", er.Errors[0].Field)
	_, _, err = patchAlert(t, c, map[string]any{"state": "resolved"})
	require.ErrorAs(t, err, &er, "resolving needs a resolution")

	out, _, err := patchAlert(t, c, map[string]any{"state": "resolved", "resolution": "revoked", "resolution_comment": "first"})
	require.NoError(t, err)
	require.Equal(t, "resolved", out["state"])
	require.Equal(t, "revoked", out["resolution"])
	require.Equal(t, "first", out["resolution_comment"])
	require.Equal(t, "stanch-responder", out["resolved_by"].(map[string]any)["login"])
	require.NotEmpty(t, out["resolved_at"])

	// Resolving again changes nothing: the first comment stays.
	_, _, err = patchAlert(t, c, map[string]any{"state": "resolved", "resolution": "wont_fix", "resolution_comment": "second"})
	require.NoError(t, err)
	got, _ := sb.GitHubAlert("acme/app", 7)
	require.Equal(t, "revoked", got.Resolution)
	require.Equal(t, "first", got.ResolutionComment)
	require.Equal(t, 1, sb.EffectiveCount("UpdateSecretScanningAlert"))
	require.Equal(t, 4, sb.Count("UpdateSecretScanningAlert"))

	// go-github reads it; hide_secret=true leaves the literal out.
	a, _, err := c.SecretScanning.GetAlert(ctx, "acme", "app", 7)
	require.NoError(t, err)
	require.Equal(t, "AKIAIOSFODNN7EXAMPLE", a.GetSecret())
	require.Equal(t, "revoked", a.GetResolution())
	req, err := c.NewRequest(http.MethodGet, "repos/acme/app/secret-scanning/alerts/7?hide_secret=true", nil)
	require.NoError(t, err)
	var raw bytes.Buffer
	_, err = c.Do(ctx, req, &raw)
	require.NoError(t, err)
	require.NotContains(t, raw.String(), "AKIAIOSFODNN7EXAMPLE")
	require.Contains(t, raw.String(), `"resolution_comment":"first"`)

	// Reopening needs no comment, and clears the resolution.
	_, _, err = patchAlert(t, c, map[string]any{"state": "open", "resolution_comment": "why"})
	require.ErrorAs(t, err, &er)
	out, _, err = patchAlert(t, c, map[string]any{"state": "open"})
	require.NoError(t, err)
	require.Nil(t, out["resolution"])
	require.Equal(t, 2, sb.EffectiveCount("UpdateSecretScanningAlert"))

	bad, err := github.NewClient(nil).WithAuthToken("ghp_wrong").WithEnterpriseURLs(c.BaseURL.String(), c.BaseURL.String())
	require.NoError(t, err)
	_, res, err := bad.SecretScanning.GetAlert(ctx, "acme", "app", 7)
	require.Error(t, err)
	require.Equal(t, http.StatusUnauthorized, res.StatusCode)
}

func TestGitHubIssues(t *testing.T) {
	t.Parallel()
	sb, _, c := githubSandbox(t)
	ctx := context.Background()
	for i := range 5 {
		labels := []string{"stanch"}
		if i%2 == 1 {
			labels = append(labels, "aws")
		}
		issue, res, err := c.Issues.Create(ctx, "acme", "ir", &github.IssueRequest{Title: github.String(fmt.Sprintf("issue %d", i)), Body: github.String("body"), Labels: &labels})
		require.NoError(t, err)
		require.Equal(t, http.StatusCreated, res.StatusCode)
		require.Equal(t, i+1, issue.GetNumber())
	}
	_, _, err := c.Issues.Create(ctx, "acme", "ir", &github.IssueRequest{Title: github.String("no label")})
	require.NoError(t, err)
	_, _, err = c.Issues.Create(ctx, "acme", "ir", &github.IssueRequest{Body: github.String("no title")})
	require.Error(t, err)

	closed, _, err := c.Issues.Edit(ctx, "acme", "ir", 2, &github.IssueRequest{State: github.String("closed")})
	require.NoError(t, err)
	require.Equal(t, "closed", closed.GetState())
	_, _, err = c.Issues.Edit(ctx, "acme", "ir", 2, &github.IssueRequest{State: github.String("closed")})
	require.NoError(t, err)
	require.Equal(t, 1, sb.EffectiveCount("UpdateIssue"), "an edit that changes nothing is not effective")

	// Pages of two, newest first, through the Link header.
	var numbers []int
	opts := &github.IssueListByRepoOptions{State: "all", Labels: []string{"stanch"}, ListOptions: github.ListOptions{PerPage: 2}}
	for {
		issues, res, err := c.Issues.ListByRepo(ctx, "acme", "ir", opts)
		require.NoError(t, err)
		for _, i := range issues {
			numbers = append(numbers, i.GetNumber())
		}
		if res.NextPage == 0 {
			require.Equal(t, 1, res.FirstPage)
			require.Equal(t, 2, res.PrevPage)
			break
		}
		require.Equal(t, 3, res.LastPage)
		opts.Page = res.NextPage
	}
	require.Equal(t, []int{5, 4, 3, 2, 1}, numbers)

	open, _, err := c.Issues.ListByRepo(ctx, "acme", "ir", &github.IssueListByRepoOptions{Labels: []string{"stanch", "aws"}})
	require.NoError(t, err)
	require.Len(t, open, 1, "open (the default) and both labels: #4 only")
	require.Equal(t, 4, open[0].GetNumber())

	one, _, err := c.Issues.Get(ctx, "acme", "ir", 4)
	require.NoError(t, err)
	require.Equal(t, []string{"stanch", "aws"}, []string{one.Labels[0].GetName(), one.Labels[1].GetName()})
	_, res, err := c.Issues.Get(ctx, "acme", "ir", 99)
	require.Error(t, err)
	require.Equal(t, http.StatusNotFound, res.StatusCode)
}

// signJWT signs claims as an App would, with key.
func signJWT(t *testing.T, key *rsa.PrivateKey, claims map[string]any) string {
	t.Helper()
	enc := base64.RawURLEncoding
	body, err := json.Marshal(claims)
	require.NoError(t, err)
	signed := enc.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." + enc.EncodeToString(body)
	sum := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	require.NoError(t, err)
	return signed + "." + enc.EncodeToString(sig)
}

func TestGitHubAppInstallationTokens(t *testing.T) {
	t.Parallel()
	pub, priv, err := NewGitHubAppKey()
	require.NoError(t, err)
	block, _ := pem.Decode(priv)
	key, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	require.NoError(t, err)
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	sb, url, _ := githubSandbox(t, SeedGitHubApp{ID: 11, InstallationID: 22, PublicKey: pub})

	mint := func(installation, jwt string) (int, map[string]any) {
		req, err := http.NewRequest(http.MethodPost, url+"/api/v3/app/installations/"+installation+"/access_tokens", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+jwt)
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		var out map[string]any
		require.NoError(t, json.NewDecoder(res.Body).Decode(&out))
		return res.StatusCode, out
	}
	now := time.Now()
	good := map[string]any{"iss": "11", "iat": now.Add(-time.Minute).Unix(), "exp": now.Add(9 * time.Minute).Unix()}
	for name, c := range map[string]struct {
		jwt          string
		installation string
		status       int
		message      string
	}{
		"not a JWT":      {"garbage", "22", 401, "A JSON web token could not be decoded"},
		"wrong key":      {signJWT(t, other, good), "22", 401, "A JSON web token could not be decoded"},
		"unknown app":    {signJWT(t, key, map[string]any{"iss": 12, "iat": good["iat"], "exp": good["exp"]}), "22", 401, "Integration not found"},
		"expired":        {signJWT(t, key, map[string]any{"iss": 11, "iat": now.Add(-20 * time.Minute).Unix(), "exp": now.Add(-11 * time.Minute).Unix()}), "22", 401, "'Expiration time' claim ('exp') must be a numeric value"},
		"too long":       {signJWT(t, key, map[string]any{"iss": 11, "iat": now.Add(-time.Minute).Unix(), "exp": now.Add(10 * time.Minute).Unix()}), "22", 401, "too far in the future"},
		"other install":  {signJWT(t, key, good), "23", 404, "Not Found"},
		"issued in 2099": {signJWT(t, key, map[string]any{"iss": 11, "iat": now.Add(5 * time.Minute).Unix(), "exp": now.Add(9 * time.Minute).Unix()}), "22", 401, "'Issued at' claim"},
	} {
		status, out := mint(c.installation, c.jwt)
		require.Equal(t, c.status, status, name)
		require.Contains(t, out["message"], c.message, name)
	}
	require.Zero(t, sb.EffectiveCount("CreateInstallationAccessToken"))

	status, out := mint("22", signJWT(t, key, good))
	require.Equal(t, http.StatusCreated, status)
	token := out["token"].(string)
	require.True(t, strings.HasPrefix(token, "ghs_"))
	expires, err := time.Parse(time.RFC3339, out["expires_at"].(string))
	require.NoError(t, err)
	require.WithinDuration(t, now.Add(time.Hour), expires, time.Minute)

	app, err := github.NewClient(nil).WithAuthToken(token).WithEnterpriseURLs(url+"/api/v3/", url+"/api/v3/")
	require.NoError(t, err)
	_, _, err = app.Issues.Create(context.Background(), "acme", "ir", &github.IssueRequest{Title: github.String("by the App")})
	require.NoError(t, err)
	require.Equal(t, "stanch[bot]", sb.GitHubIssues("acme/ir")[0].User)
	sb.ExpireGitHubTokens()
	_, res, err := app.Issues.Get(context.Background(), "acme", "ir", 1)
	require.Error(t, err)
	require.Equal(t, http.StatusUnauthorized, res.StatusCode)
}

func TestGitHubSeedValidation(t *testing.T) {
	t.Parallel()
	pub, _, err := NewGitHubAppKey()
	require.NoError(t, err)
	for _, c := range []struct {
		github SeedGitHub
		want   string
	}{
		{SeedGitHub{Apps: []SeedGitHubApp{{ID: 1, InstallationID: 2, PublicKey: "nope"}}}, "github: app 1: public_key: not PEM"},
		{SeedGitHub{Apps: []SeedGitHubApp{{ID: 1, InstallationID: 2, PublicKey: pub, TokenTTL: "soon"}}}, "token_ttl"},
		{SeedGitHub{Apps: []SeedGitHubApp{{ID: 1, InstallationID: 2, PublicKey: pub}, {ID: 1, InstallationID: 3, PublicKey: pub}}}, "must be unique"},
		{SeedGitHub{Alerts: []SeedGitHubAlert{{Repo: "app", Number: 1}}}, "owner/name"},
		{SeedGitHub{Alerts: []SeedGitHubAlert{{Repo: "a/b", Number: 1, State: "resolved", Resolution: "fixed"}}}, `resolution "fixed"`},
	} {
		require.ErrorContains(t, c.github.validate(), c.want)
	}
}

func TestServePrintsGitHubEnvironment(t *testing.T) {
	t.Parallel()
	seed, err := ParseSeed("seed.yaml", []byte(githubSeed))
	require.NoError(t, err)
	url, out := serveOutput(t, seed)
	require.Contains(t, out, "export STANCH_GITHUB_API_URL="+url+"/api/v3/\n")
	require.Contains(t, out, "export STANCH_GITHUB_TOKEN=ghp_seeded\n")
}

// serveOutput starts Serve on seed, stops it, and returns its address and
// what it printed.
func serveOutput(t *testing.T, seed Seed) (url, out string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var buf bytes.Buffer
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, seed, "127.0.0.1:0", &buf, func(url string) { ready <- url }) }()
	url = <-ready
	cancel()
	require.NoError(t, <-done)
	return url, buf.String()
}
