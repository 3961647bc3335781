package runner

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"
	"github.com/stanchhq/stanch/internal/testkit"
	"github.com/stretchr/testify/require"
)

// waitJournal waits until a run's journal holds n entries of event.
func (b *bundle) waitJournal(t *testing.T, runID, event string, n int) []Entry {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		journal, err := b.runner.Store().Journal(context.Background(), runID)
		require.NoError(t, err)
		if countEvents(journal, event) >= n {
			return journal
		}
		require.True(t, time.Now().Before(deadline), "run %s never journalled %s %d times", runID, event, n)
		time.Sleep(20 * time.Millisecond)
	}
}

func countEvents(journal []Entry, event string) int {
	n := 0
	for _, e := range journal {
		if e.Event == event {
			n++
		}
	}
	return n
}

// waitJob waits until the run's job satisfies ok.
func (b *bundle) waitJob(t *testing.T, jobID int64, what string, ok func(job *rivertype.JobRow) bool) *rivertype.JobRow {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		job, err := b.runner.client.JobGet(context.Background(), jobID)
		require.NoError(t, err)
		if ok(job) {
			return job
		}
		require.True(t, time.Now().Before(deadline), "job %d: %s; it is %s, due %s", jobID, what, job.State, job.ScheduledAt)
		time.Sleep(20 * time.Millisecond)
	}
}

// eventsUntil collects a run's events until one of kind last.
func (b *bundle) eventsUntil(t *testing.T, runID string, last EventKind) []EventKind {
	t.Helper()
	var out []EventKind
	timeout := time.After(30 * time.Second)
	for {
		select {
		case e := <-b.events:
			if e.RunID != runID {
				continue
			}
			out = append(out, e.Kind)
			if e.Kind == last {
				return out
			}
		case <-timeout:
			require.Failf(t, "no event", "run %s never sent %s; it sent %v", runID, last, out)
		}
	}
}

// A step whose attempt failed sleeps until its next attempt with River's
// snooze: the run stays running, its job sleeps, and the one worker is free
// for another alert. A job woken before the attempt is due goes back to
// sleep without starting it.
func TestRetryingStepHoldsNoWorker(t *testing.T) {
	t.Parallel()
	for name, open := range testDatabases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := newBundle(t, open)
			require.NoError(t, b.runner.Stop(ctx))
			b.runner = b.startWith(t, 1) // one worker: a held worker would block the second run

			throttled := submitOne(t, b, b.playbook(t, `
name: throttled
steps:
  - id: throttled
    action: test.mark
    with: {name: throttled, fail: 1}
    retry: {attempts: 2, backoff: 1h, max_backoff: 1h}
`), testAlert("AKIAIOSFODNN7EXAMPLE"))
			b.waitJournal(t, throttled.ID, "attempt_failed", 1)
			run, err := b.runner.Store().Run(ctx, throttled.ID)
			require.NoError(t, err)
			b.waitJob(t, run.JobID, "sleeps until the next attempt", func(job *rivertype.JobRow) bool {
				return job.State == rivertype.JobStateScheduled && job.ScheduledAt.After(time.Now().Add(20*time.Minute))
			})
			run, err = b.runner.Store().Run(ctx, throttled.ID)
			require.NoError(t, err)
			require.Equal(t, RunRunning, run.Status, "a run between two attempts is running")
			require.Equal(t, handoffRetrying, run.Handoff)
			st, err := b.runner.Store().Stats(ctx)
			require.NoError(t, err)
			require.Equal(t, 1, st.Runs[RunRunning])
			require.Equal(t, 1, st.Jobs[QueueContainment]["scheduled"])
			require.Zero(t, st.Jobs[QueueContainment]["running"], "no worker holds the run")

			quick := submitOne(t, b, b.playbook(t, twoSteps), testAlert("AKIAI44QH8DHBEXAMPLE"))
			require.Equal(t, RunSucceeded, b.waitStatus(t, quick.ID, RunSucceeded, RunFailed).Status)

			// Woken early (as a decision or a cancellation would), the job
			// looks, finds the attempt not yet due, and sleeps again.
			_, err = b.runner.wakeJob(ctx, run.JobID)
			require.NoError(t, err)
			b.waitJob(t, run.JobID, "went back to sleep", func(job *rivertype.JobRow) bool {
				var meta struct {
					Snoozes int `json:"snoozes"`
				}
				_ = json.Unmarshal(job.Metadata, &meta)
				return job.State == rivertype.JobStateScheduled && meta.Snoozes >= 2
			})
			steps, err := b.runner.Store().Steps(ctx, throttled.ID)
			require.NoError(t, err)
			require.Equal(t, 1, steps["throttled"].Attempts, "no attempt starts before it is due")
			require.Equal(t, StepRunning, steps["throttled"].Status)
			journal, err := b.runner.Store().Journal(ctx, throttled.ID)
			require.NoError(t, err)
			require.Equal(t, 1, countEvents(journal, "attempt_started"))
			require.Zero(t, countEvents(journal, "run_resumed"), "sleeping between attempts is not a crash")
			require.Zero(t, b.world.Effect("throttled"))

			_, err = b.runner.Cancel(ctx, throttled.ID, "bob", "enough")
			require.NoError(t, err)
			b.waitJob(t, run.JobID, "woke, saw the run ended and finished", func(job *rivertype.JobRow) bool {
				return job.State == rivertype.JobStateCompleted
			})
			require.Zero(t, b.world.Effect("throttled"))
		})
	}
}

// A short retry is started when it is due, not at the workers' next poll:
// these workers poll once an hour.
func TestRetryIsWokenWhenDue(t *testing.T) {
	t.Parallel()
	for name, open := range testDatabases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := newBundle(t, open)
			b.startWithoutPoll(t, nil)
			flaky := submitOne(t, b, b.playbook(t, `
name: flaky
steps:
  - id: flaky
    action: test.mark
    with: {name: flaky, fail: 2}
    retry: {attempts: 3, backoff: 20ms, max_backoff: 50ms}
`), testAlert("AKIAIOSFODNN7EXAMPLE"))
			run := b.waitStatus(t, flaky.ID, RunSucceeded, RunFailed)
			require.Equal(t, RunSucceeded, run.Status)
			require.Equal(t, 1, b.world.Effect("flaky"))
			steps, err := b.runner.Store().Steps(ctx, run.ID)
			require.NoError(t, err)
			require.Equal(t, 3, steps["flaky"].Attempts)
			journal, err := b.runner.Store().Journal(ctx, run.ID)
			require.NoError(t, err)
			var events []string
			for _, e := range journal {
				events = append(events, e.Event+":"+e.StepID)
			}
			require.Equal(t, []string{"run_created:", "run_started:", "attempt_started:flaky", "attempt_failed:flaky", "attempt_started:flaky", "attempt_failed:flaky",
				"attempt_started:flaky", "step_succeeded:flaky", "run_succeeded:"}, events, "the journal reads as when the worker slept between attempts")
			require.Equal(t, []EventKind{EventRunStarted, EventStepStarted, EventStepRetrying, EventStepStarted, EventStepRetrying, EventStepStarted, EventStepSucceeded, EventRunFinished},
				b.eventsUntil(t, run.ID, EventRunFinished))
		})
	}
}

// Secret outputs live in a pass's memory only: a step retried after a step
// that handed it one sleeps in its pass, and gets the secret on its next
// attempt.
func TestRetryAfterASecretOutputKeepsIt(t *testing.T) {
	t.Parallel()
	b := newBundle(t, testDatabases(t)["sqlite"])
	run := submitOne(t, b, b.playbook(t, `
name: mint-and-use
steps:
  - id: mint
    action: test.mark
    with: {name: mint}
  - id: use
    action: test.mark
    with: {name: "${{ steps.mint.outputs.secret }}", fail: 1}
    retry: {attempts: 2, backoff: 1ms}
`), testAlert("AKIAIOSFODNN7EXAMPLE"))
	run = b.waitStatus(t, run.ID, RunSucceeded, RunFailed)
	require.Equal(t, RunSucceeded, run.Status, run.Error)
	require.Equal(t, 1, b.world.Effect(testkit.Secret))
	steps, err := b.runner.Store().Steps(context.Background(), run.ID)
	require.NoError(t, err)
	require.Equal(t, 2, steps["use"].Attempts)
}
