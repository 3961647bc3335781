package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/internal/planted"
)

// runToRotateAndCrash runs playbook up to the rotate step's approval, then
// approves it with stanch killed at rotate:delivered:0 (after the first
// destination's write, before the journal knows). It returns both results
// and the approval to run again, which resumes the run.
func runToRotateAndCrash(t *testing.T, e *e2e, env []string, playbook, what string) (waiting, crashed result, runID string, approve func() result) {
	t.Helper()
	waiting = e.stanch(env, "run", "--playbook", playbook, "--alert", e.example("alerts/manual-aws-key.json"), "--database", e.db)
	require.Equal(t, 3, waiting.code, waiting.stdout+waiting.stderr)
	i := strings.Index(waiting.stdout, "stanch approve ")
	require.GreaterOrEqual(t, i, 0, waiting.stdout)
	fields := strings.Fields(waiting.stdout[i:])
	runID = fields[2]
	step := fields[3]
	crashed = e.stanch(append(env, "STANCH_CRASHPOINT=rotate:delivered:0"), "approve", runID, step, "--by", "security-oncall", "--database", e.db)
	require.True(t, crashed.killed, "want SIGKILL after the %s write: %s%s", what, crashed.stdout, crashed.stderr)
	return waiting, crashed, runID, func() result {
		return e.stanch(env, "approve", runID, step, "--by", "security-oncall", "--database", e.db)
	}
}

// requireOnlyInStores checks that the new key's secret half (and any other
// secret given after it) is in no output of results and in none of
// stanch's database files, and that the secret half is in no call the
// sandbox logged.
func requireOnlyInStores(t *testing.T, e *e2e, results []result, secretHalf string, others ...string) {
	t.Helper()
	require.Len(t, secretHalf, 40)
	secrets := append([]string{secretHalf}, others...)
	for _, r := range results {
		for _, s := range secrets {
			require.NotContains(t, r.stdout+r.stderr, s)
		}
	}
	files, err := filepath.Glob(filepath.Join(e.dir, "stanch.db*"))
	require.NoError(t, err)
	for _, f := range files {
		if info, err := os.Lstat(f); err == nil && !info.Mode().IsRegular() {
			continue // the token hand-off socket
		}
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, s := range secrets {
			require.NotContains(t, string(data), s, f)
		}
		planted.RequireNone(t, filepath.Base(f), data)
	}
	for _, c := range e.sb.Calls() {
		for k, v := range c.Params {
			require.NotContains(t, v, secretHalf, "%s %s", c.Action, k)
		}
	}
}
