package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/alert"
	plant "github.com/stanchhq/stanch/internal/planted"
	"github.com/stanchhq/stanch/record"
)

// The crash tests at each token revocation's boundary: stanch is killed
// (SIGKILL) right after the provider accepted the revocation and before
// the journal recorded it. The process that takes the run over finds the
// token refused already: one effective revocation, and the run succeeds
// with the revoke step's outcome "already".
//
// After the crash the token's value is gone: stanch keeps it in memory
// only. For a GitHub token the restarted stanch serve reads it again from
// the secret-scanning alert. For a token from a scanner report the value is
// in the report only, so the restart is `stanch ingest` of the same report:
// it remembers the value while reading the report, resumes the crashed run
// (the same alert, the same dedup key: no second run), and the run ends
// "already". A process that takes the run over without the report cannot
// revoke, nor check, the token: the step fails for good and says that stanch
// never stores token values (TestTokenCrashRestartWithoutValue).

// TestTokenCrashAfterRevocation: one crash per scanner-report provider.
func TestTokenCrashAfterRevocation(t *testing.T) {
	t.Parallel()
	for _, p := range tokenProviders[1:] {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			e := newTokenE2E(t)
			report := e.tokenReport(t, p)
			crashed := e.ingestToken(p, report, "STANCH_CRASHPOINT="+p.point)
			require.True(t, crashed.killed, "want SIGKILL at %s; exit %d\n%s%s", p.point, crashed.code, crashed.stdout, crashed.stderr)
			require.False(t, e.sb.TokenActive(p.value), "the crash came after the provider took the revocation")
			require.Equal(t, 1, e.sb.EffectiveCount(p.revokeOp))

			resumed := e.ingestToken(p, report)
			require.Equal(t, 0, resumed.code, "stdout:\n%s\nstderr:\n%s", resumed.stdout, resumed.stderr)
			require.Contains(t, resumed.stdout, "0 run(s) started, 1 already existed")
			require.Contains(t, resumed.stdout, "resumed after the process running it stopped")
			show := e.requireRevokedOnce(t, p, "already", crashed.stdout, crashed.stderr, resumed.stdout, resumed.stderr)
			require.Equal(t, 1, e.sb.Count(p.revokeOp), "the resumed step checked first and sent no second revocation")
			require.Equal(t, 2, stepOf(show, "revoke").Attempts)
		})
	}
}

// TestTokenCrashAfterGitHubRevocation kills stanch serve right after
// GitHub accepted POST /credentials/revoke; the restarted server reads the
// token again from the secret-scanning alert, finds it refused (GET /user
// 401), and resolves the alert: one revocation request.
func TestTokenCrashAfterGitHubRevocation(t *testing.T) {
	t.Parallel()
	p := tokenProviders[0]
	e := newTokenE2E(t)
	env := e.env
	e.env = append(slices.Clone(env), "STANCH_CRASHPOINT="+p.point)
	base, cmd, log := e.serveTokens(t)
	postTokenAlert(t, base, "d-1")
	requireKilled(t, cmd, log)
	require.False(t, e.sb.TokenActive(p.value))
	require.Equal(t, 1, e.sb.EffectiveCount(p.revokeOp))
	got, _ := e.sb.GitHubAlert(tokenAlertRepo, tokenAlertNumber)
	require.Equal(t, "open", got.State, "killed before the alert was resolved")
	fetched := e.sb.Count("GetSecretScanningAlert")

	e.env = env
	_, cmd2, log2 := e.serveTokens(t)
	e.waitResolved(t, log2)
	stopServe(t, cmd2, log2)
	show := e.requireRevokedOnce(t, p, "already", log.String(), log2.String())
	require.Equal(t, 1, e.sb.Count(p.revokeOp), "one request: the resumed step found the token refused")
	require.Greater(t, e.sb.Count("GetSecretScanningAlert"), fetched, "the value was read again from the alert")
	require.Contains(t, stepOf(show, "revoke").Message, "GitHub already refuses")
}

// requireKilled waits for a stanch serve to die of the crash point.
func requireKilled(t *testing.T, cmd *exec.Cmd, log *syncBuffer) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		require.Error(t, err)
		require.Contains(t, err.Error(), "killed", log.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("stanch serve did not crash; log:\n%s", log.String())
	}
}

// TestTokenCrashRestartWithoutValue: a process that takes over a crashed
// run without the report (here stanch serve) has no value for a Slack
// token from a scanner report: the step fails for good, says why and how a
// person revokes the token, and nothing is revoked twice. Ingesting the
// report again then finds the failed run (no second run).
func TestTokenCrashRestartWithoutValue(t *testing.T) {
	t.Parallel()
	p := tokenProviders[1]
	e := newTokenE2E(t)
	report := e.tokenReport(t, p)
	crashed := e.ingestToken(p, report, "STANCH_CRASHPOINT="+p.point)
	require.True(t, crashed.killed, "exit %d\n%s%s", crashed.code, crashed.stdout, crashed.stderr)

	_, cmd, log := e.startServeWith(t, p.playbook(e), "unused-eventbridge-secret")
	deadline := time.Now().Add(30 * time.Second)
	var runs []record.RunInfo
	for {
		if out := e.stanch(nil, "runs", "list", "--json", "--database", e.db); out.code == 0 && strings.Contains(out.stdout, `"failed"`) {
			break
		}
		require.True(t, time.Now().Before(deadline), "the run never ended; log:\n%s", log.String())
		time.Sleep(50 * time.Millisecond)
	}
	stopServe(t, cmd, log)
	runs = e.tokenRuns(t)
	require.Len(t, runs, 1)
	require.Equal(t, "failed", runs[0].Status)
	show, printed := e.showRun(t, runs[0].ID)
	revoke := stepOf(show, "revoke")
	require.Contains(t, revoke.Error, "stanch never stores token values")
	require.Contains(t, revoke.Error, "A person can revoke it")
	require.False(t, e.sb.TokenActive(p.value))
	require.Equal(t, 1, e.sb.EffectiveCount(p.revokeOp))
	require.Equal(t, 1, e.sb.Count(p.revokeOp))

	again := e.ingestToken(p, report)
	require.Contains(t, again.stdout, "1 already existed", again.stdout+again.stderr)
	require.Len(t, e.tokenRuns(t), 1)
	require.Equal(t, alert.Fingerprint(p.value), runs[0].Credential)
	plant.RequireNone(t, "outputs", crashed.stdout, crashed.stderr, log.String(), printed, again.stdout, again.stderr)
	plant.RequireNone(t, "the store", dbFiles(t, e))
}
