package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/sandbox"
)

const sandboxGitHubToken = "ghp_sandboxTokenForStanchTests0000000000"

// githubAppKeys is one App key pair for every test: RSA keys are slow to
// make.
var githubAppKeys = sync.OnceValues(func() ([2]string, error) {
	pub, priv, err := sandbox.NewGitHubAppKey()
	return [2]string{pub, string(priv)}, err
})

// newE2EWithGitHubApp is newE2E with a GitHub App (id 4242, installation
// 777) in the sandbox; it returns the App's private key file.
func newE2EWithGitHubApp(t *testing.T) (*e2e, string) {
	t.Helper()
	keys, err := githubAppKeys()
	require.NoError(t, err)
	seed, err := os.ReadFile("testdata/seed.yaml")
	require.NoError(t, err)
	var b strings.Builder
	b.Write(seed)
	b.WriteString("  apps:\n    - id: 4242\n      installation_id: 777\n      public_key: |\n")
	for _, line := range strings.Split(strings.TrimSpace(keys[0]), "\n") {
		b.WriteString("        " + line + "\n")
	}
	e := newE2EWithSeed(t, []byte(b.String()))
	keyFile := filepath.Join(e.dir, "app.pem")
	require.NoError(t, os.WriteFile(keyFile, []byte(keys[1]), 0o600))
	return e, keyFile
}

// TestResolveGitHubAlertCrash kills stanch right after GitHub resolved the
// alert and before the journal recorded the step. The resumed run finds the
// alert resolved and does not PATCH it again: one resolution, with the
// comment of the first attempt.
func TestResolveGitHubAlertCrash(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, point string
		app         bool
	}{
		{"token/github:patched", "github:patched", false},
		{"token/done:resolve", "done:resolve", false},
		{"app/github:patched", "github:patched", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var e *e2e
			var env []string
			if c.app {
				var keyFile string
				e, keyFile = newE2EWithGitHubApp(t)
				env = []string{"STANCH_GITHUB_APP_ID=4242", "STANCH_GITHUB_APP_INSTALLATION_ID=777", "STANCH_GITHUB_APP_PRIVATE_KEY_FILE=" + keyFile}
			} else {
				e = newE2E(t)
				env = []string{"STANCH_GITHUB_TOKEN=" + sandboxGitHubToken}
			}
			env = append(env, "STANCH_GITHUB_API_URL="+e.url+"/api/v3/")
			run := func(extra ...string) result {
				return e.stanch(append(env, extra...), "run", "--playbook", "testdata/github-resolve.yaml", "--alert", "testdata/github-alert.json", "--database", e.db)
			}

			crashed := run("STANCH_CRASHPOINT=" + c.point)
			require.True(t, crashed.killed, "want SIGKILL at %s; exit %d\n%s%s", c.point, crashed.code, crashed.stdout, crashed.stderr)
			got, ok := e.sb.GitHubAlert("acme/payments-service", 42)
			require.True(t, ok)
			require.Equal(t, "resolved", got.State, "the crash came after the PATCH")

			resumed := run()
			require.Equal(t, 0, resumed.code, "stdout:\n%s\nstderr:\n%s", resumed.stdout, resumed.stderr)
			require.Contains(t, resumed.stdout, "already has run")
			require.Contains(t, resumed.stdout, "succeeded")

			runID := runIDPattern.FindString(crashed.stdout + resumed.stdout)
			require.NotEmpty(t, runID)
			got, _ = e.sb.GitHubAlert("acme/payments-service", 42)
			require.Equal(t, "revoked", got.Resolution)
			require.Equal(t, "stanch run "+runID+": access key "+leakedKey+" deactivated (done)", e.anchored(t, runID, got.ResolutionComment))
			require.Equal(t, 1, e.sb.EffectiveCount("UpdateSecretScanningAlert"), "exactly one effective PATCH")
			if c.point == "github:patched" {
				require.Equal(t, 1, e.sb.Count("UpdateSecretScanningAlert"), "the resumed step found the alert resolved and sent no PATCH")
			}
			if c.app {
				require.Equal(t, "stanch[bot]", got.ResolvedBy)
				require.Positive(t, e.sb.EffectiveCount("CreateInstallationAccessToken"))
			} else {
				require.Equal(t, "stanch-responder", got.ResolvedBy)
			}
			show := e.stanch(nil, "runs", "show", runID, "--database", e.db)
			require.Equal(t, 0, show.code, show.stderr)
			require.Contains(t, show.stdout, "resolve")
			e.requireContained()
		})
	}
}

// TestServeAsGitHubApp runs stanch serve authenticated as a GitHub App: the
// webhook's alert is fetched with an installation token, minted once.
func TestServeAsGitHubApp(t *testing.T) {
	t.Parallel()
	e, keyFile := newE2EWithGitHubApp(t)
	e.env = []string{"STANCH_GITHUB_TOKEN="}
	base, cmd, stderr := e.startServe(t, "unused", "--github-app-id", "4242", "--github-app-installation-id", "777", "--github-app-private-key", keyFile)
	require.Equal(t, http.StatusOK, signedGitHub(t, base+"/hooks/github", "secret_scanning_alert", "d-1",
		[]byte(`{"action":"created","alert":{"number":42,"secret_type":"aws_access_key_id"},"repository":{"full_name":"acme/payments-service"}}`), githubSecret))
	deadline := time.Now().Add(30 * time.Second)
	for {
		if status, _ := e.sb.KeyStatus(account, leakedKey); status == "Inactive" {
			break
		}
		require.True(t, time.Now().Before(deadline), "key never deactivated; log:\n%s", stderr.String())
		time.Sleep(20 * time.Millisecond)
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	_ = cmd.Wait()
	require.Equal(t, 1, e.sb.Count("GetSecretScanningAlert"))
	require.Equal(t, 1, e.sb.EffectiveCount("CreateInstallationAccessToken"), "one installation token for the alert and its locations")
	require.NotContains(t, stderr.String(), "BEGIN RSA PRIVATE KEY")
}

func TestServeRefusesUnclearGitHubCredentials(t *testing.T) {
	t.Parallel()
	e, keyFile := newE2EWithGitHubApp(t)
	notRSA := filepath.Join(e.dir, "not-a-key.pem")
	require.NoError(t, os.WriteFile(notRSA, []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"), 0o600))
	for _, c := range []struct {
		env  []string
		args []string
		want string
	}{
		{[]string{"STANCH_GITHUB_TOKEN=" + sandboxGitHubToken}, []string{"--github-app-id", "4242", "--github-app-installation-id", "777", "--github-app-private-key", keyFile},
			"give either a token ($STANCH_GITHUB_TOKEN) or a GitHub App (--github-app-id, --github-app-installation-id, --github-app-private-key), not both"},
		{nil, []string{"--github-app-id", "4242", "--github-app-installation-id", "777", "--github-app-private-key", notRSA}, "not an RSA private key in PEM form"},
		{nil, []string{"--github-app-id", "4242", "--github-app-private-key", keyFile}, "the installation id missing"},
		{[]string{"STANCH_GITHUB_APP_ID=forty-two"}, nil, `$STANCH_GITHUB_APP_ID: "forty-two" is not a whole number (for --github-app-id)`},
	} {
		res := e.stanch(c.env, append([]string{"serve", "--listen", "127.0.0.1:0", "--playbooks", e.example("playbooks/aws-key-leaked.yaml"), "--database", e.db}, c.args...)...)
		require.Equal(t, 2, res.code, "%v: %s", c.args, res.stderr)
		require.Contains(t, res.stderr, c.want)
	}
	help := e.stanch(nil, "serve", "--help")
	require.Equal(t, 0, help.code)
	require.Contains(t, help.stdout, "--github-app-private-key FILE")
}

// TestPermissionsListsGitHubApart: the example playbook's GitHub step needs
// secret_scanning_alerts:write, which is no IAM action: it is listed on
// stderr, and the policy on stdout stays IAM only.
func TestPermissionsListsGitHubApart(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	res := e.stanch(nil, permissionsArgs(examplePlaybooks(t))...)
	require.Equal(t, 0, res.code, res.stderr)
	require.NotContains(t, res.stdout, "secret_scanning")
	require.Contains(t, res.stderr, "github   secret_scanning_alerts:write")
	require.Contains(t, res.stderr, "github.resolve_alert")

	acts := e.stanch(nil, "actions", "github.resolve_alert", "github.open_issue")
	require.Equal(t, 0, acts.code, acts.stderr)
	for _, want := range []string{"alert_number", "resolution", "secret_scanning_alerts:write", "issues:write", "key", "number"} {
		require.Contains(t, acts.stdout, want)
	}
}

func TestPlanResolveGitHubAlert(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	env := []string{"STANCH_GITHUB_TOKEN=" + sandboxGitHubToken, "STANCH_GITHUB_API_URL=" + e.url + "/api/v3/"}
	plan := e.stanch(env, "plan", "--playbook", "testdata/github-resolve.yaml", "--alert", "testdata/github-alert.json")
	require.Equal(t, 0, plan.code, plan.stdout+plan.stderr)
	require.Contains(t, plan.stdout, "would resolve secret-scanning alert acme/payments-service#42 (now open) as revoked")
	require.Contains(t, plan.stdout, "PATCH repos/acme/payments-service/secret-scanning/alerts/42")
	require.Zero(t, e.sb.Count("UpdateSecretScanningAlert"), "plan changes nothing")
	require.Equal(t, 1, e.sb.Count("GetSecretScanningAlert"))
}
