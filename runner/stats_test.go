package runner

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/playbooks"
)

// eventsOf returns the events received so far of the kinds asked.
func (b *bundle) eventsOf(kinds ...EventKind) []Event {
	var out []Event
	for {
		select {
		case e := <-b.events:
			for _, k := range kinds {
				if e.Kind == k {
					out = append(out, e)
				}
			}
		default:
			return out
		}
	}
}

// collectUntil collects events of kinds until one for which last is true
// has arrived (the run's status is committed before its event is sent:
// waiting on the status alone races the event), then what else is queued.
func (b *bundle) collectUntil(t *testing.T, last func(Event) bool, kinds ...EventKind) []Event {
	t.Helper()
	var out []Event
	deadline := time.After(30 * time.Second)
	for {
		select {
		case e := <-b.events:
			for _, k := range kinds {
				if e.Kind == k {
					out = append(out, e)
				}
			}
			if last(e) {
				return append(out, b.eventsOf(kinds...)...)
			}
		case <-deadline:
			t.Fatalf("the awaited event never came; got %+v", out)
		}
	}
}

func TestContainedOnceByTheFirstContainmentStep(t *testing.T) {
	t.Parallel()
	for name, open := range testDatabases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := newBundle(t, open)
			pb := b.playbook(t, `
name: contain
steps:
  - id: look
    action: test.mark
    with: {name: look}
  - id: skipped
    action: test.contain
    if: "false"
    with: {name: x}
  - id: deactivate
    action: test.contain
    with: {name: key}
  - id: revoke
    action: test.contain
    with: {name: sessions}
`)
			a := alert.Alert{Source: alert.SourceGuardDuty, Credential: alert.Credential{ID: "AKIAIOSFODNN7EXAMPLE"}, ReceivedAt: time.Now().Add(-3 * time.Second)}
			a.Normalise(time.Now())
			run := submitOne(t, b, pb, a)
			b.waitStatus(t, run.ID, RunSucceeded)

			var contained, finished, submitted, steps []Event
			for _, e := range b.collectUntil(t, func(e Event) bool { return e.Kind == EventRunFinished && e.RunID == run.ID },
				EventRunContained, EventRunFinished, EventAlertSubmitted, EventStepSucceeded) {
				switch e.Kind {
				case EventRunContained:
					contained = append(contained, e)
				case EventRunFinished:
					finished = append(finished, e)
				case EventAlertSubmitted:
					submitted = append(submitted, e)
				case EventStepSucceeded:
					steps = append(steps, e)
				}
			}
			require.Len(t, contained, 1, "the first containment step that succeeds, not the skipped one, not the next")
			require.Equal(t, "deactivate", contained[0].StepID)
			require.Equal(t, "contain", contained[0].Playbook)
			require.Equal(t, alert.SourceGuardDuty, contained[0].Source)
			require.GreaterOrEqual(t, contained[0].Duration, 3*time.Second, "from the alert's receipt")
			require.Len(t, finished, 1)
			require.Equal(t, "contain", finished[0].Playbook)
			require.Len(t, submitted, 1)
			require.Equal(t, Event{Kind: EventAlertSubmitted, Source: alert.SourceGuardDuty, Outcome: AlertStarted, At: submitted[0].At}, submitted[0])
			require.Len(t, steps, 3)
			for _, e := range steps {
				require.Positive(t, e.Duration, "step %s ran an attempt", e.StepID)
			}

			// Again: a redelivery.
			_, err := b.runner.Submit(context.Background(), a, nil)
			require.NoError(t, err)
			sub, err := b.runner.Submit(context.Background(), a, []*playbooks.Playbook{pb})
			require.NoError(t, err)
			require.Len(t, sub.Existing, 1)
			var outcomes []string
			for _, e := range b.eventsOf(EventAlertSubmitted) {
				outcomes = append(outcomes, e.Outcome)
			}
			require.Equal(t, []string{AlertUnmatched, AlertDuplicate}, outcomes)
		})
	}
}

func TestStepAPIErrorsAreEvents(t *testing.T) {
	t.Parallel()
	for name, open := range testDatabases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := newBundle(t, open)
			pb := b.playbook(t, `
name: refused
steps:
  - id: deactivate
    action: test.refused
    with: {name: key}
`)
			run := submitOne(t, b, pb, testAlert("AKIAIOSFODNN7EXAMPLE"))
			b.waitStatus(t, run.ID, RunFailed)
			apiErrors := b.eventsOf(EventStepAPIError)
			require.Len(t, apiErrors, 1)
			require.Equal(t, actions.APIError{Provider: "aws", Service: "iam", Code: "AccessDenied"}, apiErrors[0].API)
			require.Equal(t, "test.refused", apiErrors[0].Action)
		})
	}
}

func TestStatsCountWhatIsOpen(t *testing.T) {
	t.Parallel()
	for name, open := range testDatabases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := newBundle(t, open)
			ctx := context.Background()
			st, err := b.runner.Store().Stats(ctx)
			require.NoError(t, err)
			require.Equal(t, map[RunStatus]int{RunPending: 0, RunRunning: 0, RunWaitingApproval: 0}, st.Runs)
			require.Zero(t, st.ApprovalsWaiting)
			require.True(t, st.OldestApproval.IsZero())
			require.Len(t, st.Jobs, 3)
			for queue, states := range st.Jobs {
				require.Len(t, states, 4, queue)
			}

			pb := b.playbook(t, `
name: approve
steps:
  - id: deactivate
    action: test.contain
    with: {name: key}
    approval:
      approvers: [alice]
      timeout: 1h
`)
			before := time.Now()
			run := submitOne(t, b, pb, testAlert("AKIAIOSFODNN7EXAMPLE"))
			b.waitStatus(t, run.ID, RunWaitingApproval)
			deadline := time.Now().Add(30 * time.Second)
			for {
				// The job goes to sleep a moment after the run says it waits.
				st, err = b.runner.Store().Stats(ctx)
				require.NoError(t, err)
				if st.Jobs[QueueContainment]["scheduled"] == 1 {
					break
				}
				require.True(t, time.Now().Before(deadline), "the run's job never slept: %v", st.Jobs)
				time.Sleep(20 * time.Millisecond)
			}
			require.Equal(t, 1, st.Runs[RunWaitingApproval])
			require.Equal(t, 1, st.ApprovalsWaiting)
			require.WithinRange(t, st.OldestApproval, before.Add(-time.Millisecond), time.Now())

			_, _, err = b.runner.Decide(ctx, Decision{RunID: run.ID, StepID: "deactivate", Decision: Approved, By: "alice", Via: "cli"})
			require.NoError(t, err)
			b.waitStatus(t, run.ID, RunSucceeded)
			st, err = b.runner.Store().Stats(ctx)
			require.NoError(t, err)
			require.Zero(t, st.Runs[RunWaitingApproval])
			require.Zero(t, st.ApprovalsWaiting)
			for {
				// The job completes a moment after the run ends.
				st, err = b.runner.Store().Stats(ctx)
				require.NoError(t, err)
				containment := st.Jobs[QueueContainment]
				if containment["scheduled"]+containment["running"]+containment["available"]+containment["retryable"] == 0 {
					break
				}
				require.True(t, time.Now().Before(deadline), "the run's job never finished: %v", st.Jobs)
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}
