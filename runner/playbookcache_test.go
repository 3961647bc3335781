package runner

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// Every path that needs a run's playbook (its jobs, Report for the Slack
// sync, Retry) takes the one parsed when the run's job first did: a
// stand_in put in the cache in its place is what they all see.
func TestEveryPathTakesTheParsedPlaybook(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newBundle(t, testDatabases(t)["sqlite"])
	run := submitOne(t, b, b.playbook(t, `
name: broken
steps:
  - id: broken
    action: test.mark
    with: {name: broken, permanent: nope}
`), testAlert("AKIAIOSFODNN7EXAMPLE"))
	run = b.waitStatus(t, run.ID, RunFailed, RunSucceeded)
	require.Equal(t, RunFailed, run.Status)

	first, err := b.runner.playbook(run)
	require.NoError(t, err)
	again, err := b.runner.playbook(run)
	require.NoError(t, err)
	require.Same(t, first, again, "parsed once")
	b.runner.parsed.mu.Lock()
	require.Len(t, b.runner.parsed.by, 1, "the job parsed it once")
	b.runner.parsed.by[run.PlaybookFile+"\x00"+string(run.PlaybookSource)] = b.playbook(t, "name: broken\nsteps:\n  - id: stand_in\n    action: test.mark\n    with: {name: x}\n")
	b.runner.parsed.mu.Unlock()

	rep, err := b.runner.Report(ctx, run.ID)
	require.NoError(t, err)
	require.Len(t, rep.Steps, 1)
	require.Equal(t, "stand_in", rep.Steps[0].ID, "Report reads the cached playbook")
	_, err = b.runner.Retry(ctx, run.ID, "", "alice")
	require.ErrorIs(t, err, ErrLifecycle)
	require.Contains(t, err.Error(), `has no step "broken"`, "Retry reads the cached playbook")
}
