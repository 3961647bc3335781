package github

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/internal/testkit"
	"github.com/stanchhq/stanch/playbooks"
	"github.com/stanchhq/stanch/sandbox"
)

// The actions' tests point the real go-github client at the sandbox's
// GitHub REST emulation.

const (
	token     = "ghp_sandboxTokenForStanchTests0000000000"
	repo      = "acme/payments-service"
	secretKey = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	appID     = 4242
	install   = 777
)

const seedYAML = `
accounts:
  - id: "111122223333"
    users:
      - ` + sandbox.ResponderSeedUser + `
github:
  token: ` + token + `
  alerts:
    - repo: acme/payments-service
      number: 42
      secret_type: aws_secret_access_key
      secret: ` + secretKey + `
      locations: [{path: deploy/settings.py, line: 12, commit: 4f1c9d2a7e3b5c6d8e9f0a1b2c3d4e5f6a7b8c9d}]
    - repo: acme/payments-service
      number: 43
      secret_type: aws_access_key_id
      secret: AKIAI44QH8DHBEXAMPLE
      state: resolved
      resolution: false_positive
      resolution_comment: a test fixture
`

// appKeys is one key pair for every test's App: generating RSA keys is
// slow.
var appKeys = sync.OnceValues(func() ([2]string, error) {
	pub, priv, err := sandbox.NewGitHubAppKey()
	return [2]string{pub, string(priv)}, err
})

type bundle struct {
	sb  *sandbox.Sandbox
	url string // the API base, …/api/v3/
	// wire holds the body of every response to a GET.
	wire *recorder
	log  *bytes.Buffer
}

// setup starts a sandbox; apps are added to its seed.
func setup(t *testing.T, apps ...sandbox.SeedGitHubApp) *bundle {
	t.Helper()
	seed := testkit.Seed(t, seedYAML)
	seed.GitHub.Apps = apps
	return setupSeed(t, seed)
}

// setupSeed starts a sandbox holding seed.
func setupSeed(t *testing.T, seed sandbox.Seed) *bundle {
	t.Helper()
	sb := testkit.Sandbox(t, seed)
	return &bundle{sb: sb.Sandbox, url: sb.GitHubAPI(), wire: &recorder{}, log: &bytes.Buffer{}}
}

// app returns the seeded App's entry and its private key.
func testApp(t *testing.T, ttl string) (sandbox.SeedGitHubApp, []byte) {
	t.Helper()
	keys, err := appKeys()
	require.NoError(t, err)
	return sandbox.SeedGitHubApp{ID: appID, InstallationID: install, PublicKey: keys[0], TokenTTL: ttl}, []byte(keys[1])
}

func (b *bundle) tokenOptions() Options {
	return Options{APIURL: b.url, Token: token, Transport: b.wire}
}

func (b *bundle) actions(t *testing.T, opts Options) map[string]actions.Action {
	t.Helper()
	out := map[string]actions.Action{}
	for _, a := range Actions(NewProvider(opts)) {
		out[a.Spec().Name] = a
	}
	return out
}

func (b *bundle) env(runID string) actions.Env {
	return actions.Env{RunID: runID, StepID: "step", Attempt: 1, Logger: slog.New(slog.NewTextHandler(b.log, &slog.HandlerOptions{Level: slog.LevelDebug}))}
}

// noSecret fails when the seeded secret literal reached the client, the
// logs, or any of texts.
func (b *bundle) noSecret(t *testing.T, texts ...any) {
	t.Helper()
	require.NotContains(t, b.wire.String(), secretKey, "a read brought the secret literal")
	require.NotContains(t, b.log.String(), secretKey)
	for _, text := range texts {
		require.NotContains(t, fmt.Sprint(text), secretKey)
	}
}

// recorder is an http.RoundTripper that keeps a copy of the body of every
// response to a GET. (The PATCH of an alert answers with the whole alert,
// secret included, as GitHub documents; stanch does not decode it.)
type recorder struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if req.Method != http.MethodGet {
		return res, nil
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.buf.Write(body)
	r.buf.WriteByte('\n')
	r.mu.Unlock()
	res.Body = io.NopCloser(bytes.NewReader(body))
	return res, nil
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.String()
}

// TestExamplesAreValidSteps loads each action's example as a playbook step,
// and builds the actions without credentials.
func TestExamplesAreValidSteps(t *testing.T) {
	t.Parallel()
	as := Actions(NewProvider(Options{}))
	reg, err := actions.NewRegistry(as...)
	require.NoError(t, err)
	for _, a := range as {
		spec := a.Spec()
		require.NotEmpty(t, spec.Permissions, spec.Name)
		var doc strings.Builder
		doc.WriteString("name: example\nsteps:\n")
		for _, line := range strings.Split(strings.TrimRight(spec.Example, "\n"), "\n") {
			doc.WriteString("  " + line + "\n")
		}
		_, err := playbooks.Parse(spec.Name+".yaml", []byte(doc.String()), reg)
		require.NoError(t, err, "%s:\n%s", spec.Name, doc.String())
	}
}
