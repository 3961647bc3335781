package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/alert"
	plant "github.com/stanchhq/stanch/internal/planted"
	"github.com/stanchhq/stanch/record"
)

// The token hand-off: stanch ingest beside a stanch serve that works the
// SQLite store hands serve the values of the tokens it read, over the
// socket beside the store, before it submits their alerts.

// waitOnlyRun waits until the store's one run has status want.
func (e *e2e) waitOnlyRun(t *testing.T, want string, log *syncBuffer) record.RunInfo {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if runs := e.tokenRuns(t); len(runs) == 1 && runs[0].Status == want {
			return runs[0]
		} else if time.Now().After(deadline) {
			t.Fatalf("the run never became %s: %+v; log:\n%s", want, runs, log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestTokenValuesHandedToServe: a gitleaks report with a Slack token,
// ingested while stanch serve works the store: ingest hands the value to
// serve and says so, and serve's run revokes the token in the sandbox.
func TestTokenValuesHandedToServe(t *testing.T) {
	t.Parallel()
	p := tokenProviders[1]
	require.Equal(t, "slack", p.name)
	e := newTokenE2E(t)
	_, cmd, log := e.startServeWith(t, p.playbook(e), "unused-eventbridge-secret")
	socket := filepath.Join(e.dir, "stanch.db.values")
	fi, err := os.Stat(socket)
	require.NoError(t, err, "serve listens beside the store; log:\n%s", log.String())
	require.Equal(t, os.ModeSocket|0o600, fi.Mode()&(os.ModeType|os.ModePerm))

	res := e.ingestToken(p, e.tokenReport(t, p))
	require.Equal(t, 0, res.code, "stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
	require.Contains(t, res.stderr, fmt.Sprintf("handed 1 token value(s) to the stanch process %d that works this store\n", cmd.Process.Pid))
	require.Contains(t, res.stdout, "another stanch process works this store and runs them")

	e.waitOnlyRun(t, "succeeded", log)
	stopServe(t, cmd, log)
	_, err = os.Stat(socket)
	require.ErrorIs(t, err, os.ErrNotExist, "serve removes its socket at exit")
	require.Contains(t, log.String(), alert.Fingerprint(p.value), "serve logs what it took, by fingerprint")
	e.requireRevokedOnce(t, p, "done", res.stdout, res.stderr, log.String())
}

// TestIngestSaysTokenValuesCannotBeHanded: when the process that works
// the store takes no values (here its socket's path is taken by a file),
// ingest still stores the alert, names the token that process cannot
// revoke and what to do, and exits 1.
func TestIngestSaysTokenValuesCannotBeHanded(t *testing.T) {
	t.Parallel()
	p := tokenProviders[1]
	e := newTokenE2E(t)
	socket := filepath.Join(e.dir, "stanch.db.values")
	require.NoError(t, os.WriteFile(socket, nil, 0o600))
	_, cmd, log := e.startServeWith(t, p.playbook(e), "unused-eventbridge-secret")

	res := e.ingestToken(p, e.tokenReport(t, p))
	require.Equal(t, exitFailed, res.code, "stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
	holder := fmt.Sprintf("stanch process %d (it holds ", cmd.Process.Pid)
	require.Contains(t, res.stderr, "could not hand 1 token value(s) to "+holder)
	require.Contains(t, res.stderr, "nothing answers on "+socket)
	require.Contains(t, res.stderr, "  "+alert.Fingerprint(p.value)+"\n")
	require.Contains(t, res.stderr, "stop that process and run this command again")
	require.Contains(t, res.stderr, "1 token(s) cannot be revoked by "+holder)
	require.Contains(t, res.stdout, "1 alert(s) stored", "the alert is on record all the same")
	require.Contains(t, log.String(), "token hand-off off", "serve said it takes no values")

	e.waitOnlyRun(t, "failed", log)
	stopServe(t, cmd, log)
	require.True(t, e.sb.TokenActive(p.value), "serve could not revoke it")
	require.True(t, strings.Contains(res.stderr, "revoke each token by hand"))
	plant.RequireNone(t, "the outputs", res.stdout, res.stderr, log.String())
	plant.RequireNone(t, "the store", dbFiles(t, e))
}

// TestDetachedRunHandsTokenValues: stanch run --detach of an alert file
// holding a Slack token, beside stanch serve: the value goes to serve
// before the run is stored, and serve revokes the token.
func TestDetachedRunHandsTokenValues(t *testing.T) {
	t.Parallel()
	p := tokenProviders[1]
	e := newTokenE2E(t)
	_, cmd, log := e.startServeWith(t, p.playbook(e), "unused-eventbridge-secret")
	file := filepath.Join(e.dir, "slack-token.json")
	require.NoError(t, os.WriteFile(file, []byte(`{"source":"manual","kind":"credential_exposed","severity":"critical",
"title":"Slack token in a paste","credential":{"provider":"slack","kind":"token","id":"`+p.value+`"}}`), 0o600))
	res := e.stanch(e.env, "run", "--detach", "--playbook", p.playbook(e), "--alert", file, "--database", e.db)
	require.Equal(t, 0, res.code, "stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
	require.Contains(t, res.stderr, fmt.Sprintf("handed 1 token value(s) to the stanch process %d that works this store\n", cmd.Process.Pid))
	require.NotContains(t, res.stderr, "note:", "no warning that serve lacks the value")
	e.waitOnlyRun(t, "succeeded", log)
	stopServe(t, cmd, log)
	require.False(t, e.sb.TokenActive(p.value))
	require.Equal(t, 1, e.sb.EffectiveCount(p.revokeOp))
	plant.RequireNone(t, "the outputs", res.stdout, res.stderr, log.String())
	plant.RequireNone(t, "the store", dbFiles(t, e))
}
