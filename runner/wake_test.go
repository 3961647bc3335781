package runner

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/alert"
)

// startWithoutPoll replaces b's runner with one whose workers poll for jobs
// once an hour: whatever it does within a test, someone woke it for. It
// first works one run to its end, so that the fetch River's workers make
// when they start is behind them.
func (b *bundle) startWithoutPoll(t *testing.T, configure func(*Config)) *Runner {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, b.runner.Stop(ctx))
	cfg := Config{DB: b.db, Registry: b.reg, fetchPoll: time.Hour, Observer: func(e Event) {
		select {
		case b.events <- e:
		default:
		}
	}}
	if configure != nil {
		configure(&cfg)
	}
	r, err := New(ctx, cfg)
	require.NoError(t, err)
	require.NoError(t, r.Start(ctx))
	t.Cleanup(func() { _ = r.Stop(context.Background()) })
	b.runner = r
	first := submitOne(t, b, b.playbook(t, twoSteps), testAlert("AKIAFIRSTRUNEXAMPLE0"))
	require.Equal(t, RunSucceeded, b.waitStatus(t, first.ID, RunSucceeded, RunFailed).Status)
	return r
}

// kinds returns the kinds of the events seen so far for a run, in order.
func (b *bundle) kinds(runID string) []EventKind {
	var out []EventKind
	for {
		select {
		case e := <-b.events:
			if e.RunID == runID {
				out = append(out, e.Kind)
			}
		default:
			return out
		}
	}
}

// requireInOrder checks that want appear in got, in that order.
func requireInOrder(t *testing.T, got []string, want ...string) {
	t.Helper()
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	require.Equal(t, len(want), i, "want %v in this order within %v", want, got)
}

// An alert's runs and their jobs are committed in a transaction of the
// store's own; the intake then wakes the workers, who do not wait for
// their poll.
func TestIntakeWakesTheWorkers(t *testing.T) {
	t.Parallel()
	for name, open := range testDatabases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := newBundle(t, open)
			b.startWithoutPoll(t, nil)
			run := submitOne(t, b, b.playbook(t, twoSteps), testAlert("AKIAIOSFODNN7EXAMPLE"))
			require.Equal(t, RunSucceeded, b.waitStatus(t, run.ID, RunSucceeded, RunFailed).Status)
			require.Equal(t, []EventKind{EventRunStarted, EventStepStarted, EventStepSucceeded, EventStepStarted, EventStepSucceeded, EventRunFinished}, b.kinds(run.ID))
		})
	}
}

// A decision wakes the run it was waiting for, a cancellation the job of a
// parked run, and a run that reaches a slow step moves to the
// investigation queue: none waits for the workers' poll.
func TestDecisionsCancellationsAndMovesWakeTheWorkers(t *testing.T) {
	t.Parallel()
	for name, open := range testDatabases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := newBundle(t, open)
			b.startWithoutPoll(t, nil)
			pb := b.playbook(t, `
name: approve-then-investigate
steps:
  - id: contain
    action: test.mark
    with: {name: contain}
  - id: destroy
    action: test.mark
    approval: {approvers: [alice], timeout: 1h}
    with: {name: destroy}
  - id: query
    action: test.slow
    with: {for: 1ms}
`)
			decided := submitOne(t, b, pb, testAlert("AKIAIOSFODNN7EXAMPLE"))
			cancelled := submitOne(t, b, pb, testAlert("AKIAI44QH8DHBEXAMPLE"))
			b.waitStatus(t, decided.ID, RunWaitingApproval)
			b.waitStatus(t, cancelled.ID, RunWaitingApproval)

			_, first, err := b.runner.Decide(ctx, Decision{RunID: decided.ID, StepID: "destroy", Decision: Approved, By: "alice", Via: "cli"})
			require.NoError(t, err)
			require.True(t, first)
			run := b.waitStatus(t, decided.ID, RunSucceeded, RunFailed)
			require.Equal(t, RunSucceeded, run.Status)
			require.Equal(t, 1, b.world.Effect("slow"))
			journal, err := b.runner.Store().Journal(ctx, decided.ID)
			require.NoError(t, err)
			var events []string
			for _, e := range journal {
				events = append(events, e.Event)
			}
			requireInOrder(t, events, "run_waiting_approval", "approval_approved", "run_continued", "run_moved", "run_succeeded")

			parked, err := b.runner.Store().Run(ctx, cancelled.ID)
			require.NoError(t, err)
			// The run reads waiting before its job has finished parking;
			// a job still running is not woken (its worker decides what
			// it does next), so cancel once it sleeps.
			require.Eventually(t, func() bool {
				job, err := b.runner.client.JobGet(ctx, parked.JobID)
				require.NoError(t, err)
				return job.State == rivertype.JobStateScheduled
			}, 30*time.Second, 20*time.Millisecond, "the parked job sleeps")
			_, err = b.runner.Cancel(ctx, cancelled.ID, "bob", "false alarm")
			require.NoError(t, err)
			require.Eventually(t, func() bool {
				job, err := b.runner.client.JobGet(ctx, parked.JobID)
				require.NoError(t, err)
				return job.State == rivertype.JobStateCompleted
			}, 30*time.Second, 20*time.Millisecond, "the parked job woke, saw the run ended and finished")
		})
	}
}

// A deferred alert (a GitHub alert whose key is fetched on a worker) is
// committed with its job in a transaction; its worker is woken too.
func TestDeferredAlertsWakeTheWorkers(t *testing.T) {
	t.Parallel()
	for name, open := range testDatabases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := newBundle(t, open)
			pb := b.playbook(t, twoSteps)
			b.startWithoutPoll(t, func(c *Config) {
				c.Playbooks = append(c.Playbooks, pb)
				c.Resolvers = map[string]Resolver{"test.ref": func(_ context.Context, ref json.RawMessage) ([]alert.Alert, error) {
					var key string
					if err := json.Unmarshal(ref, &key); err != nil {
						return nil, err
					}
					return []alert.Alert{testAlert(key)}, nil
				}}
			})
			require.NoError(t, b.runner.Defer(ctx, "test.ref", "test:1", []byte(`"AKIAIOSFODNN7EXAMPLE"`)))
			a := testAlert("AKIAIOSFODNN7EXAMPLE")
			require.Eventually(t, func() bool {
				run, err := b.runner.Store().RunByDedup(ctx, a.DedupKey, pb.Name)
				return err == nil && run.Status == RunSucceeded
			}, 30*time.Second, 20*time.Millisecond)
		})
	}
}

// Idle, with runs parked on approvals, the embedded store is written to by
// nobody: no leader elected again, no periodic job, no sweep that writes,
// no outbox. Several sweeps, and as many checks for due jobs and polls by
// the workers, happen within the window.
func TestIdleRunnerWritesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newBundle(t, testDatabases(t)["sqlite"])
	require.NoError(t, b.runner.Stop(ctx))
	swept := make(chan struct{}, 100)
	r, err := New(ctx, Config{DB: b.db, Registry: b.reg})
	require.NoError(t, err)
	r.afterSweep = func() { swept <- struct{}{} }
	require.NoError(t, r.Start(ctx))
	t.Cleanup(func() { _ = r.Stop(context.Background()) })
	b.runner = r

	pb := b.playbook(t, fmt.Sprintf(approvalPlaybook, "1h", "deny"))
	var parked []Run
	for _, key := range []string{"AKIAIOSFODNN7EXAMPLE", "AKIAI44QH8DHBEXAMPLE", "AKIAJ55RI9EICEXAMPLE"} {
		parked = append(parked, submitOne(t, b, pb, testAlert(key)))
	}
	for _, run := range parked {
		run = b.waitStatus(t, run.ID, RunWaitingApproval)
		// Asleep once River has recorded the snooze.
		require.Eventually(t, func() bool {
			got, err := b.runner.Store().Run(ctx, run.ID)
			require.NoError(t, err)
			if got.JobID == 0 {
				return false
			}
			job, err := b.runner.client.JobGet(ctx, got.JobID)
			require.NoError(t, err)
			return job.State == rivertype.JobStateScheduled
		}, 30*time.Second, 20*time.Millisecond)
	}

	// A connection of the test's own: data_version changes when another
	// connection commits.
	other, err := sql.Open("sqlite", "file:"+b.db.Path)
	require.NoError(t, err)
	defer other.Close()
	conn, err := other.Conn(ctx)
	require.NoError(t, err)
	defer conn.Close()
	version := func() int64 {
		var v int64
		require.NoError(t, conn.QueryRowContext(ctx, `PRAGMA data_version`).Scan(&v))
		return v
	}
	wal := func() int64 {
		fi, err := os.Stat(b.db.Path + "-wal")
		require.NoError(t, err)
		return fi.Size()
	}
	for len(swept) > 0 {
		<-swept
	}
	before, walBefore := version(), wal()
	for range 3 {
		<-swept
	}
	require.Equal(t, before, version(), "nothing committed while idle")
	require.Equal(t, walBefore, wal(), "the WAL did not grow while idle")
}
