package sandbox

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-github/v60/github"
	"github.com/stretchr/testify/require"
)

const githubListSeed = `
accounts:
  - id: "111122223333"
    users:
      - ` + ResponderSeedUser + `
github:
  token: ghp_seeded
  no_access: [acme/locked]
  alerts:
    - {repo: acme/app, number: 7, secret_type: aws_access_key_id, secret: AKIAIOSFODNN7EXAMPLE,
       locations: [{path: config/aws.py, line: 4, commit: 1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e}]}
    - {repo: acme/app, number: 8, secret_type: aws_secret_access_key, secret: je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY}
    - {repo: acme/app, number: 9, secret_type: aws_temporary_access_key_id, secret: ASIAIOSFODNN7SESSION, state: resolved}
    - {repo: acme/app, number: 10, secret_type: slack_api_token, secret: xoxb-not-a-real-token}
    - {repo: acme/locked, number: 1, secret_type: aws_access_key_id, secret: AKIAI44QH8DHBEXAMPLE}
`

func githubListSandbox(t *testing.T) (*Sandbox, *github.Client) {
	t.Helper()
	seed, err := ParseSeed("seed.yaml", []byte(githubListSeed))
	require.NoError(t, err)
	sb, err := New(seed, Options{})
	require.NoError(t, err)
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	c, err := github.NewClient(nil).WithAuthToken("ghp_seeded").WithEnterpriseURLs(srv.URL+"/api/v3/", srv.URL+"/api/v3/")
	require.NoError(t, err)
	return sb, c
}

// TestGitHubListFiltersBySecretType: the list endpoint takes secret_type as
// a comma-separated list, answers newest first, and carries each alert in
// full, secret literal included, as GitHub's does unless hide_secret=true.
func TestGitHubListFiltersBySecretType(t *testing.T) {
	t.Parallel()
	_, c := githubListSandbox(t)
	ctx := context.Background()
	list, _, err := c.SecretScanning.ListAlertsForRepo(ctx, "acme", "app", &github.SecretScanningAlertListOptions{SecretType: "aws_access_key_id,aws_temporary_access_key_id"})
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.Equal(t, 9, list[0].GetNumber(), "newest first")
	require.Equal(t, 7, list[1].GetNumber())
	require.Equal(t, "AKIAIOSFODNN7EXAMPLE", list[1].GetSecret())
	require.Equal(t, "aws_access_key_id", list[1].GetSecretType())
	require.NotEmpty(t, list[1].GetLocationsURL())

	open, _, err := c.SecretScanning.ListAlertsForRepo(ctx, "acme", "app", &github.SecretScanningAlertListOptions{State: "open", SecretType: "aws_temporary_access_key_id"})
	require.NoError(t, err)
	require.Empty(t, open)

	all, _, err := c.SecretScanning.ListAlertsForRepo(ctx, "acme", "app", nil)
	require.NoError(t, err)
	require.Len(t, all, 4)

	req, err := c.NewRequest(http.MethodGet, "repos/acme/app/secret-scanning/alerts?hide_secret=true", nil)
	require.NoError(t, err)
	var hidden []map[string]any
	_, err = c.Do(ctx, req, &hidden)
	require.NoError(t, err)
	for _, a := range hidden {
		require.NotContains(t, a, "secret")
	}

	locs, _, err := c.SecretScanning.ListLocationsForAlert(ctx, "acme", "app", 7, nil)
	require.NoError(t, err)
	require.Len(t, locs, 1)
	require.Equal(t, "commit", locs[0].GetType())
	require.Equal(t, "config/aws.py", locs[0].Details.GetPath())
	require.Equal(t, 4, locs[0].Details.GetStartline())
	require.Equal(t, "1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e", locs[0].Details.GetCommitSHA())
}

// TestGitHubNoAccessAnswers404: a repository the token may not read
// answers every secret-scanning request 404, as GitHub does.
func TestGitHubNoAccessAnswers404(t *testing.T) {
	t.Parallel()
	sb, c := githubListSandbox(t)
	ctx := context.Background()
	var er *github.ErrorResponse
	_, _, err := c.SecretScanning.GetAlert(ctx, "acme", "locked", 1)
	require.ErrorAs(t, err, &er)
	require.Equal(t, http.StatusNotFound, er.Response.StatusCode)
	_, _, err = c.SecretScanning.ListLocationsForAlert(ctx, "acme", "locked", 1, nil)
	require.ErrorAs(t, err, &er)
	require.Equal(t, http.StatusNotFound, er.Response.StatusCode)
	_, _, err = c.SecretScanning.ListAlertsForRepo(ctx, "acme", "locked", nil)
	require.ErrorAs(t, err, &er)
	require.Equal(t, http.StatusNotFound, er.Response.StatusCode)
	require.Equal(t, 3, sb.Count("GetSecretScanningAlert")+sb.Count("ListSecretScanningAlertLocations")+sb.Count("ListSecretScanningAlertsForRepo"))

	_, err = ParseSeed("seed.yaml", []byte(strings.Replace(githubListSeed, "no_access: [acme/locked]", "no_access: [not-a-repo]", 1)))
	require.ErrorContains(t, err, `no_access "not-a-repo" is not owner/name`)
}
