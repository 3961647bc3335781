package npm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/internal/planted"
	"github.com/stanchhq/stanch/internal/testkit"
	"github.com/stanchhq/stanch/leaked"
)

// verdaccio is an independent npm registry (https://verdaccio.org): these
// tests revoke tokens it issued, through the same npm.revoke_token as
// against the sandbox. .ci/verdaccio.sh installs the version CI runs.

// verdaccioPassword is the test user's password: a planted secret, so that
// planted.RequireNone finds it should it travel anywhere.
const verdaccioPassword = planted.NoUpper

// TestRevokeNPMTokenVerdaccio creates a user and a publish token at
// verdaccio as `npm adduser` and `npm token create` do, then revokes the
// token with npm.revoke_token: identify, revoke, verify, and a second run
// that finds it refused already. verdaccio issues two formats of token
// (its legacy AES ones, the default, and JWTs when security.api.jwt is
// set): both.
func TestRevokeNPMTokenVerdaccio(t *testing.T) {
	t.Parallel()
	bin := verdaccioBinary(t)
	for _, tc := range []struct {
		name, security string
		cidr           []string
	}{
		{"legacy tokens", "", []string{"127.0.0.0/8"}},
		{"jwt tokens", "security:\n  api:\n    jwt:\n      sign:\n        expiresIn: 1h\n", []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := startVerdaccio(t, bin, tc.security)
			login := reg.adduser(t, "alice", verdaccioPassword)
			token, key := reg.createToken(t, login, verdaccioPassword, tc.cidr)

			rec := &recorder{secret: token}
			act := revokeToken(Options{RegistryURL: reg.url + "/", HTTPClient: &http.Client{Transport: rec}})
			env, logs := testkit.LoggedEnv("run-npm-verdaccio")
			with := map[string]any{"credential": leaked.Process.Remember(token)}

			plan, err := testkit.PlanAction(t, act, env, with)
			require.NoError(t, err)
			require.Len(t, plan.Calls, 4)
			require.Equal(t, "alice", plan.Outputs["username"])
			rec.take(t, "plan")

			res, err := testkit.RunAction(t, act, env, with)
			require.NoError(t, err)
			require.Equal(t, actions.Done, res.Outcome, res.Message)
			require.Equal(t, "alice", res.Outputs["username"], "identify: GET /-/whoami")
			require.Equal(t, true, res.Outputs["revoked"])
			require.Equal(t, false, res.Outputs["readonly"])
			require.NotEmpty(t, res.Outputs["created"])
			require.Equal(t, tc.cidr, res.Outputs["cidr_whitelist"], "verdaccio lists it as cidr")
			run := rec.take(t, "run")
			require.Len(t, run, 4, "whoami, list, delete, whoami: %v", run)
			require.Equal(t, "GET /-/whoami 200", run[0].String())
			require.Equal(t, "GET /-/npm/v1/tokens 200", run[1].String())
			// verdaccio keys a token by a random id, not its SHA-512: the
			// action finds it by its shortened form in the listing.
			require.Equal(t, "DELETE /-/npm/v1/tokens/token/"+key, run[2].Method+" "+run[2].Path)
			require.True(t, run[2].Status >= 200 && run[2].Status <= 299, "delete: %v", run[2])
			require.Equal(t, "GET /-/whoami", run[3].Method+" "+run[3].Path)
			require.Contains(t, []int{http.StatusUnauthorized, http.StatusForbidden}, run[3].Status, "verify: the registry refuses the token")

			// Independently of the action: the token is refused and no longer listed.
			status, _ := reg.get(t, token, "/-/whoami")
			require.Contains(t, []int{http.StatusUnauthorized, http.StatusForbidden}, status)
			status, body := reg.get(t, login, "/-/npm/v1/tokens")
			require.Equal(t, http.StatusOK, status)
			require.NotContains(t, body, key)

			again, err := testkit.RunAction(t, act, env, with)
			require.NoError(t, err)
			require.Equal(t, actions.Already, again.Outcome, again.Message)
			second := rec.take(t, "second run")
			require.Len(t, second, 1, "only the check: %v", second)

			values := []any{plan, res, again, logs.String(), rec.all()}
			planted.RequireNone(t, "plans, results, logs and the calls made", values...)
			requireNoPiece(t, token, "plans, results, logs and the calls made", values...)
		})
	}
}

// TestRevokeNPMLoginTokenVerdaccio: verdaccio does not list the token a
// login (`npm adduser`) returns, and answers 200 to its deletion by value
// without deleting it (a legacy login token lasts until the password
// changes; with no generated token the answer is 500 "user not found"
// instead). The step must not claim success: it fails, retryably, saying
// so, and it deletes none of the user's other tokens.
func TestRevokeNPMLoginTokenVerdaccio(t *testing.T) {
	t.Parallel()
	bin := verdaccioBinary(t)
	reg := startVerdaccio(t, bin, "")
	login := reg.adduser(t, "bob", verdaccioPassword)
	other, otherKey := reg.createToken(t, login, verdaccioPassword, []string{})

	rec := &recorder{secret: login}
	act := revokeToken(Options{RegistryURL: reg.url, HTTPClient: &http.Client{Transport: rec}})
	env, logs := testkit.LoggedEnv("run-npm-verdaccio-login")
	res, err := testkit.RunAction(t, act, env, map[string]any{"credential": leaked.Process.Remember(login)})
	require.Error(t, err)
	require.Equal(t, actions.KindRetryable, actions.KindOf(err))
	require.Contains(t, err.Error(), "still accepts")
	require.Contains(t, err.Error(), "verdaccio does not")
	calls := rec.take(t, "login token")
	require.Len(t, calls, 4, "%v", calls)
	require.Equal(t, "DELETE /-/npm/v1/tokens/token/{token} 200", calls[2].String())
	require.Equal(t, "GET /-/whoami 200", calls[3].String())
	status, _ := reg.get(t, other, "/-/whoami")
	require.Equal(t, http.StatusOK, status, "bob's other token is not deleted in its place")
	_, body := reg.get(t, login, "/-/npm/v1/tokens")
	require.Contains(t, body, otherKey)

	values := []any{res, err, logs.String(), calls}
	planted.RequireNone(t, "results, errors, logs and the calls made", values...)
	requireNoPiece(t, login, "results, errors, logs and the calls made", values...)
	requireNoPiece(t, other, "results, errors, logs and the calls made", values...)
}

// TestShows: a listing's shortened token is taken for the token only when
// it shows enough of it, as verdaccio ("abcde...vwxyz") and npm ("abcdef…")
// shorten it.
func TestShows(t *testing.T) {
	t.Parallel()
	const value = "NTUwMmM3YmE4YTdmOTM3N2ZiOWI5ZDZlzM2Nm"
	for shown, want := range map[string]bool{
		"NTUwM...zM2Nm": true,
		"NTUwM…zM2Nm":   true,
		"NTUwMmM3…":     true,
		"NTUwMmM3":      true,
		value:           true,
		"NTUwM...zM2Nn": false, // another token's end
		"NTUwX...zM2Nm": false,
		"NTUwMm…":       false, // 6 characters: too few to tell tokens apart
		"":              false,
		"...":           false,
	} {
		require.Equal(t, want, shows(shown, value), shown)
	}
}

// verdaccioBinary finds verdaccio on PATH, or skips the test.
func verdaccioBinary(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("verdaccio")
	if err != nil {
		t.Skip("verdaccio is not on PATH: `source .ci/verdaccio.sh && install_verdaccio` installs the pinned version with npm and puts it on PATH (.ci/run does, so CI runs this test)")
	}
	return bin
}

type verdaccio struct {
	url string
	log *syncBuffer

	mu     sync.Mutex
	tokens []string // issued: never in the test's output
}

// redacted is verdaccio's log without the tokens it issued (its request
// log shows a DELETE by value's path).
func (v *verdaccio) redacted() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	text := v.log.String()
	for _, tok := range v.tokens {
		text = strings.ReplaceAll(text, tok, "{token}")
	}
	return text
}

func (v *verdaccio) issued(token string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.tokens = append(v.tokens, token)
}

// startVerdaccio starts verdaccio on a free port with its storage and
// htpasswd file in a temporary folder and no uplink; security is more
// of its YAML configuration.
func startVerdaccio(t *testing.T, bin, security string) *verdaccio {
	t.Helper()
	dir := t.TempDir()
	config := fmt.Sprintf(`storage: %s
auth:
  htpasswd:
    file: %s
    max_users: 10
uplinks: {}
packages:
  '**':
    access: $authenticated
    publish: $authenticated
web:
  enable: false
log: {type: stdout, format: json, level: http}
%s`, filepath.Join(dir, "storage"), filepath.Join(dir, "htpasswd"), security)
	configPath := filepath.Join(dir, "config.yaml")
	require.NoError(t, os.WriteFile(configPath, []byte(config), 0o600))

	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())

	v := &verdaccio{url: "http://" + addr, log: &syncBuffer{}}
	cmd := exec.Command(bin, "--config", configPath, "--listen", addr)
	cmd.Stdout, cmd.Stderr = v.log, v.log
	cmd.Dir = dir
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("verdaccio's log:\n%s", v.redacted())
		}
	})

	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-done:
			t.Fatalf("verdaccio exited before it answered:\n%s", v.log.String())
		default:
		}
		if res, err := http.Get(v.url + "/-/ping"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return v
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("verdaccio did not answer /-/ping within a minute:\n%s", v.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// send makes one request to verdaccio with a bearer token (if any) and a
// JSON body (if any), and returns the status and body.
func (v *verdaccio) send(t *testing.T, method, path, token string, body any) (int, string) {
	t.Helper()
	var r io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		require.NoError(t, err)
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, v.url+path, r)
	require.NoError(t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, string(data)
}

func (v *verdaccio) get(t *testing.T, token, path string) (int, string) {
	t.Helper()
	return v.send(t, http.MethodGet, path, token, nil)
}

// adduser creates a user as `npm adduser` does and returns its login token.
func (v *verdaccio) adduser(t *testing.T, name, password string) string {
	t.Helper()
	status, body := v.send(t, http.MethodPut, "/-/user/org.couchdb.user:"+name, "", map[string]any{
		"_id": "org.couchdb.user:" + name, "name": name, "password": password,
		"type": "user", "roles": []string{}, "date": time.Now().UTC().Format(time.RFC3339),
	})
	require.Equal(t, http.StatusCreated, status, body)
	var out struct {
		Token string `json:"token"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &out))
	require.NotEmpty(t, out.Token, "adduser answered no token")
	v.issued(out.Token)
	return out.Token
}

// createToken creates a publish token as `npm token create` does and
// returns it and the key verdaccio lists it by.
func (v *verdaccio) createToken(t *testing.T, login, password string, cidr []string) (token, key string) {
	t.Helper()
	status, body := v.send(t, http.MethodPost, "/-/npm/v1/tokens", login, map[string]any{
		"password": password, "readonly": false, "cidr_whitelist": cidr,
	})
	require.Equal(t, http.StatusOK, status, "POST /-/npm/v1/tokens")
	var out struct {
		Token string `json:"token"`
		Key   string `json:"key"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &out))
	require.NotEmpty(t, out.Token)
	require.NotEmpty(t, out.Key)
	v.issued(out.Token)
	return out.Token, out.Key
}

// exchange is one request the action made and the status it got; the
// token is replaced by {token} in the path.
type exchange struct {
	Method, Path string
	Status       int
	Body         string
}

func (e exchange) String() string { return fmt.Sprintf("%s %s %d", e.Method, e.Path, e.Status) }

// recorder is the action's HTTP transport: it records each exchange.
type recorder struct {
	secret string
	mu     sync.Mutex
	calls  []exchange
	from   int
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	data, _ := io.ReadAll(res.Body)
	res.Body.Close()
	res.Body = io.NopCloser(bytes.NewReader(data))
	body := strings.Join(strings.Fields(string(data)), " ")
	r.mu.Lock()
	r.calls = append(r.calls, exchange{Method: req.Method, Path: strings.ReplaceAll(req.URL.Path, r.secret, "{token}"), Status: res.StatusCode, Body: body})
	r.mu.Unlock()
	return res, nil
}

// take returns the exchanges since the last take, and logs them (what
// verdaccio answered).
func (r *recorder) take(t *testing.T, what string) []exchange {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	got := append([]exchange(nil), r.calls[r.from:]...)
	r.from = len(r.calls)
	for _, e := range got {
		t.Logf("%s: %s → %s", what, e, e.Body)
	}
	return got
}

func (r *recorder) all() []exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]exchange(nil), r.calls...)
}

// requireNoPiece fails the test if any of values holds PieceLength
// characters in a row of secret (a token verdaccio made, which
// planted.RequireNone does not know), as fmt's %+v or JSON shows it.
func requireNoPiece(t *testing.T, secret, where string, values ...any) {
	t.Helper()
	for _, v := range values {
		text := fmt.Sprintf("%+v", v)
		if data, err := json.Marshal(v); err == nil {
			text += "\n" + string(data)
		}
		if e, ok := v.(error); ok {
			text += "\n" + e.Error()
		}
		for i := 0; i+planted.PieceLength <= len(secret); i++ {
			if strings.Contains(text, secret[i:i+planted.PieceLength]) {
				t.Errorf("%q, part of the token verdaccio issued, is in %s", secret[i:i+planted.PieceLength], where)
				break
			}
		}
	}
}

// syncBuffer is a bytes.Buffer safe for verdaccio's output and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
