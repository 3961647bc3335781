package github

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/internal/testkit"
	"github.com/stanchhq/stanch/sandbox"
)

func (b *bundle) appOptions(key []byte) Options {
	return Options{APIURL: b.url, AppID: appID, InstallationID: install, PrivateKeyPEM: key, Transport: b.wire}
}

func TestAppTokenMintedOnceAndReused(t *testing.T) {
	t.Parallel()
	app, key := testApp(t, "")
	b := setup(t, app)
	acts := b.actions(t, b.appOptions(key))

	res, err := testkit.RunAction(t, acts["github.resolve_alert"], b.env("run_1"), map[string]any{"repository": repo, "alert_number": 42})
	require.NoError(t, err)
	require.Equal(t, actions.Done, res.Outcome)
	require.Equal(t, "stanch[bot]", res.Outputs["resolved_by"], "the App's bot resolved it")
	_, err = testkit.RunAction(t, acts["github.open_issue"], b.env("run_1"), map[string]any{"repository": issueRepo, "title": "Leaked key"})
	require.NoError(t, err)
	require.Equal(t, 1, b.sb.Count("CreateInstallationAccessToken"), "one token for five requests")
	require.Equal(t, "stanch[bot]", b.sb.GitHubIssues(issueRepo)[0].User)
	b.noSecret(t, res)
}

// TestAppTokenRenewedBeforeItExpires: tokens are replaced a minute before
// they expire, so no request starts with one about to lapse.
func TestAppTokenRenewedBeforeItExpires(t *testing.T) {
	t.Parallel()
	app, key := testApp(t, "90s")
	b := setup(t, app)
	var mu sync.Mutex
	now := time.Now()
	opts := b.appOptions(key)
	opts.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	client, err := NewClient(opts)
	require.NoError(t, err)
	get := func() {
		t.Helper()
		_, _, err := client.Issues.ListByRepo(context.Background(), "acme", "security-incidents", nil)
		require.NoError(t, err)
	}
	get()
	get()
	require.Equal(t, 1, b.sb.Count("CreateInstallationAccessToken"))
	mu.Lock()
	now = now.Add(31 * time.Second) // 59 s of the token's 90 s left
	mu.Unlock()
	get()
	require.Equal(t, 2, b.sb.Count("CreateInstallationAccessToken"))
}

// TestAppTokenRenewedWhenRefused: a token GitHub stops accepting early
// (revoked, or the clocks disagree) is replaced, and the request, body and
// all, is sent once more.
func TestAppTokenRenewedWhenRefused(t *testing.T) {
	t.Parallel()
	app, key := testApp(t, "")
	b := setup(t, app)
	acts := b.actions(t, b.appOptions(key))
	_, err := testkit.RunAction(t, acts["github.open_issue"], b.env("run_1"), map[string]any{"repository": issueRepo, "title": "Leaked key"})
	require.NoError(t, err)
	b.sb.ExpireGitHubTokens()

	res, err := testkit.RunAction(t, acts["github.resolve_alert"], b.env("run_1"), map[string]any{"repository": repo, "alert_number": 42, "comment": "after renewal"})
	require.NoError(t, err)
	require.Equal(t, actions.Done, res.Outcome)
	require.Equal(t, 2, b.sb.Count("CreateInstallationAccessToken"))
	got, _ := b.sb.GitHubAlert(repo, 42)
	require.Equal(t, "after renewal", got.ResolutionComment)
}

func TestAppWithTheWrongKey(t *testing.T) {
	t.Parallel()
	app, _ := testApp(t, "")
	b := setup(t, app)
	_, other, err := sandbox.NewGitHubAppKey()
	require.NoError(t, err)
	_, err = testkit.RunAction(t, b.actions(t, b.appOptions(other))["github.resolve_alert"], b.env("run_1"), map[string]any{"repository": repo, "alert_number": 42})
	require.Error(t, err)
	require.Equal(t, actions.KindPermanent, actions.KindOf(err), "%v", err)
	var te *TokenError
	require.ErrorAs(t, err, &te)
	require.Equal(t, 401, te.StatusCode)
	require.ErrorContains(t, err, "GitHub App 4242: installation token for installation 777: 401 A JSON web token could not be decoded (is the private key this App's")
	require.Zero(t, b.sb.Count("GetSecretScanningAlert"), "nothing but the token request reached GitHub")

	opts := b.appOptions(other)
	_, key := testApp(t, "")
	opts.PrivateKeyPEM, opts.InstallationID = key, 1
	_, err = testkit.RunAction(t, b.actions(t, opts)["github.resolve_alert"], b.env("run_1"), map[string]any{"repository": repo, "alert_number": 42})
	require.Equal(t, actions.KindPermanent, actions.KindOf(err))
	require.ErrorContains(t, err, "404 Not Found (is the App installed there? check the installation id)")
}

func TestNewClientRefusesUnclearConfiguration(t *testing.T) {
	t.Parallel()
	_, key := testApp(t, "")
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(ec)
	require.NoError(t, err)
	ecPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})

	for _, c := range []struct {
		opts Options
		want string
	}{
		{Options{Token: "ghp_x", AppID: 1, InstallationID: 2, PrivateKeyPEM: key}, "give either a token or a GitHub App (app id, installation id and private key), not both"},
		{Options{AppID: 1, PrivateKeyPEM: key}, "GitHub App: the installation id missing"},
		{Options{AppID: 1, InstallationID: 2, PrivateKeyPEM: []byte("not a key")}, "GitHub App 1 private key: not an RSA private key in PEM form"},
		{Options{AppID: 1, InstallationID: 2, PrivateKeyPEM: ecPEM}, "not an RSA private key in PEM form (GitHub's .pem download starts with -----BEGIN RSA PRIVATE KEY-----): it holds a *ecdsa.PrivateKey"},
		{Options{Token: "ghp_x", APIURL: "http://[::1"}, "GitHub API URL"},
	} {
		_, err := NewClient(c.opts)
		require.ErrorContains(t, err, c.want)
	}
	client, err := NewClient(Options{})
	require.NoError(t, err, "no credentials: an unauthenticated client")
	require.Equal(t, "https://api.github.com/", client.BaseURL.String())
	client, err = NewClient(Options{Token: "ghp_x", APIURL: "https://ghe.example.com"})
	require.NoError(t, err)
	require.Equal(t, "https://ghe.example.com/api/v3/", client.BaseURL.String())
}
