package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx" for creating per-test databases
	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/internal/testkit"
	"github.com/stanchhq/stanch/playbooks"
)

// testDatabases returns the stores the runner's tests run on: SQLite
// always, PostgreSQL when STANCH_TEST_POSTGRES names a server (make test and
// CI start one). It is the one way every runner test opens a store:
// testkit.StoreURLs makes the stores, which it opens here, since testkit
// cannot import the runner its tests are in.
func testDatabases(t *testing.T) map[string]func(t *testing.T) *Database {
	out := map[string]func(t *testing.T) *Database{}
	for name, storeURL := range testkit.StoreURLs(t) {
		out[name] = func(t *testing.T) *Database { return openTestDatabase(t, storeURL(t)) }
	}
	return out
}

// openTestDatabase opens the store at url until the test ends.
func openTestDatabase(t *testing.T, url string) *Database {
	t.Helper()
	db, err := OpenDatabase(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

type bundle struct {
	db     *Database
	world  *testkit.World
	reg    *actions.Registry
	runner *Runner
	events chan Event
}

func newBundle(t *testing.T, open func(t *testing.T) *Database) *bundle {
	t.Helper()
	b := &bundle{db: open(t), world: testkit.NewWorld(), events: make(chan Event, 1000)}
	b.reg = b.world.Registry(t)
	b.runner = b.start(t)
	return b
}

func (b *bundle) start(t *testing.T) *Runner {
	return b.startWith(t, 0)
}

func (b *bundle) startWith(t *testing.T, workers int) *Runner {
	t.Helper()
	ctx := context.Background()
	r, err := New(ctx, Config{DB: b.db, Registry: b.reg, Workers: workers, Observer: func(e Event) {
		select {
		case b.events <- e:
		default:
		}
	}})
	require.NoError(t, err)
	require.NoError(t, r.Start(ctx))
	t.Cleanup(func() { _ = r.Stop(context.Background()) })
	return r
}

func (b *bundle) playbook(t *testing.T, src string) *playbooks.Playbook {
	t.Helper()
	pb, err := playbooks.Parse("test.yaml", []byte(src), b.reg)
	require.NoError(t, err)
	return pb
}

func testAlert(id string) alert.Alert {
	a := alert.Alert{Source: alert.SourceManual, Credential: alert.Credential{ID: id}}
	a.Normalise(time.Now())
	return a
}

// waitStatus waits until the run reaches one of the statuses.
func (b *bundle) waitStatus(t *testing.T, runID string, statuses ...RunStatus) Run {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		run, err := b.runner.Store().Run(context.Background(), runID)
		require.NoError(t, err)
		for _, s := range statuses {
			if run.Status == s {
				return run
			}
		}
		require.True(t, time.Now().Before(deadline), "run %s stuck in %s, want %v", runID, run.Status, statuses)
		time.Sleep(20 * time.Millisecond)
	}
}

func submitOne(t *testing.T, b *bundle, pb *playbooks.Playbook, a alert.Alert) Run {
	t.Helper()
	sub, err := b.runner.Submit(context.Background(), a, []*playbooks.Playbook{pb})
	require.NoError(t, err)
	require.Len(t, sub.Started, 1)
	return sub.Started[0]
}

const twoSteps = `
name: two-steps
steps:
  - id: first
    action: test.mark
    with: {name: first}
  - id: second
    action: test.mark
    with:
      name: ${{ "second-after-" + steps.first.outputs.name }}
`

func TestRunExecutesStepsInOrderAndJournals(t *testing.T) {
	t.Parallel()
	for name, open := range testDatabases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := newBundle(t, open)
			run := submitOne(t, b, b.playbook(t, twoSteps), testAlert("AKIAIOSFODNN7EXAMPLE"))
			run = b.waitStatus(t, run.ID, RunSucceeded, RunFailed)
			require.Equal(t, RunSucceeded, run.Status)
			require.Equal(t, 1, b.world.Effect("first"))
			require.Equal(t, 1, b.world.Effect("second-after-first"))

			steps, err := b.runner.Store().Steps(context.Background(), run.ID)
			require.NoError(t, err)
			require.Equal(t, StepSucceeded, steps["first"].Status)
			require.Equal(t, "done", steps["first"].Outcome)
			require.Equal(t, "first", steps["first"].Outputs["name"])
			require.NotContains(t, steps["first"].Outputs, "secret", "secret outputs are never stored")

			journal, err := b.runner.Store().Journal(context.Background(), run.ID)
			require.NoError(t, err)
			var events []string
			for _, e := range journal {
				events = append(events, e.Event+":"+e.StepID)
			}
			require.Equal(t, []string{"run_created:", "run_started:", "attempt_started:first", "step_succeeded:first", "attempt_started:second", "step_succeeded:second", "run_succeeded:"}, events)
		})
	}
}

func TestDuplicateAlertStartsNoSecondRun(t *testing.T) {
	t.Parallel()
	for name, open := range testDatabases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := newBundle(t, open)
			pb := b.playbook(t, twoSteps)
			a := testAlert("AKIAIOSFODNN7EXAMPLE")
			first := submitOne(t, b, pb, a)
			b.waitStatus(t, first.ID, RunSucceeded)

			again, err := b.runner.Submit(context.Background(), a, []*playbooks.Playbook{pb})
			require.NoError(t, err)
			require.Empty(t, again.Started)
			require.Len(t, again.Existing, 1)
			require.Equal(t, first.ID, again.Existing[0].ID)
			require.Equal(t, 1, b.world.Effect("first"))
			runs, err := b.runner.Store().ListRuns(context.Background(), ListFilter{})
			require.NoError(t, err)
			require.Len(t, runs, 1)
		})
	}
}

func TestRetryableErrorsAreRetriedAndPermanentOnesFailTheStep(t *testing.T) {
	t.Parallel()
	for name, open := range testDatabases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := newBundle(t, open)
			pb := b.playbook(t, `
name: flaky
steps:
  - id: flaky
    action: test.mark
    with: {name: flaky, fail: 2}
    retry: {attempts: 3, backoff: 1ms, max_backoff: 5ms}
  - id: broken
    action: test.mark
    with: {name: broken, permanent: "access denied for `+testkit.Secret+`"}
    retry: {attempts: 5, backoff: 1ms}
  - id: never
    action: test.mark
    with: {name: never}
`)
			run := submitOne(t, b, pb, testAlert("AKIAIOSFODNN7EXAMPLE"))
			run = b.waitStatus(t, run.ID, RunFailed, RunSucceeded)
			require.Equal(t, RunFailed, run.Status)
			require.Equal(t, "broken", run.FailedStep)
			require.Contains(t, run.Error, "access denied")
			require.Contains(t, run.Error, "permanent, attempt 1 of 5")
			require.NotContains(t, run.Error, testkit.Secret)
			require.Equal(t, 1, b.world.Effect("flaky"))
			require.Equal(t, 0, b.world.Effect("never"))

			steps, err := b.runner.Store().Steps(context.Background(), run.ID)
			require.NoError(t, err)
			require.Equal(t, 3, steps["flaky"].Attempts)
			require.Equal(t, 1, steps["broken"].Attempts, "permanent errors are not retried")
			require.NotContains(t, steps, "never")

			journal, err := b.runner.Store().Journal(context.Background(), run.ID)
			require.NoError(t, err)
			failed := 0
			for _, e := range journal {
				require.NotContains(t, e.Detail, testkit.Secret)
				if e.Event == "attempt_failed" {
					failed++
					require.Contains(t, e.Detail, "throttled")
				}
			}
			require.Equal(t, 2, failed)
		})
	}
}

func TestOnErrorContinue(t *testing.T) {
	t.Parallel()
	b := newBundle(t, testDatabases(t)["sqlite"])
	pb := b.playbook(t, `
name: keep-going
steps:
  - id: broken
    action: test.mark
    with: {name: broken, permanent: nope}
    on_error: continue
  - id: after
    action: test.mark
    if: steps.broken.outcome == "failed"
    with: {name: after}
`)
	run := submitOne(t, b, pb, testAlert("AKIAIOSFODNN7EXAMPLE"))
	run = b.waitStatus(t, run.ID, RunFailed, RunSucceeded)
	require.Equal(t, RunSucceeded, run.Status)
	require.Equal(t, 1, b.world.Effect("after"))
}

const approvalPlaybook = `
name: approve-me
steps:
  - id: contain
    action: test.mark
    with: {name: contain}
  - id: destroy
    action: test.mark
    approval:
      approvers: [alice, bob]
      timeout: %s
      on_timeout: %s
      message: "Destroy ${{ alert.credential.id }}?"
    with: {name: destroy}
`

func TestApprovalParksRunAndDecisionResumesIt(t *testing.T) {
	t.Parallel()
	for name, open := range testDatabases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := newBundle(t, open)
			pb := b.playbook(t, fmt.Sprintf(approvalPlaybook, "1h", "deny"))
			run := submitOne(t, b, pb, testAlert("AKIAIOSFODNN7EXAMPLE"))
			run = b.waitStatus(t, run.ID, RunWaitingApproval)
			require.Equal(t, "destroy", run.WaitingStep)
			require.Equal(t, 1, b.world.Effect("contain"))
			require.Equal(t, 0, b.world.Effect("destroy"))

			pending, err := b.runner.Store().Approval(ctx, run.ID, "destroy")
			require.NoError(t, err)
			require.Equal(t, "Destroy AKIAIOSFODNN7EXAMPLE?", pending.Message)
			require.Equal(t, []string{"alice", "bob"}, pending.Approvers)

			_, _, err = b.runner.Decide(ctx, Decision{RunID: run.ID, StepID: "destroy", Decision: Approved, By: "mallory", Via: "cli"})
			require.ErrorIs(t, err, ErrNotApprover)
			_, _, err = b.runner.Decide(ctx, Decision{RunID: run.ID, StepID: "contain", Decision: Approved, By: "alice", Via: "cli"})
			require.ErrorIs(t, err, ErrNotWaiting)

			a, first, err := b.runner.Decide(ctx, Decision{RunID: run.ID, StepID: "destroy", Decision: Approved, By: "alice", Via: "cli"})
			require.NoError(t, err)
			require.True(t, first)
			require.Equal(t, "alice", a.DecidedBy)
			run = b.waitStatus(t, run.ID, RunSucceeded, RunFailed)
			require.Equal(t, RunSucceeded, run.Status)
			require.Equal(t, 1, b.world.Effect("destroy"))

			a, first, err = b.runner.Decide(ctx, Decision{RunID: run.ID, StepID: "destroy", Decision: Denied, By: "bob", Via: "cli"})
			require.NoError(t, err)
			require.False(t, first, "the first decision wins")
			require.Equal(t, Approved, a.Decision)

			journal, err := b.runner.Store().Journal(ctx, run.ID)
			require.NoError(t, err)
			var seen []string
			for _, e := range journal {
				if strings.HasPrefix(e.Event, "approval_") {
					seen = append(seen, e.Event+" "+e.Detail)
				}
			}
			require.Equal(t, []string{
				"approval_requested approvers alice, bob; times out " + pending.Deadline.Format(time.RFC3339) + "; if approved: mark destroy (irreversible)",
				"approval_refused mallory is not an approver (via cli)",
				"approval_approved by alice via cli",
			}, seen)
		})
	}
}

func TestApprovalSurvivesRestart(t *testing.T) {
	t.Parallel()
	for name, open := range testDatabases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := newBundle(t, open)
			pb := b.playbook(t, fmt.Sprintf(approvalPlaybook, "1h", "deny"))
			run := submitOne(t, b, pb, testAlert("AKIAIOSFODNN7EXAMPLE"))
			b.waitStatus(t, run.ID, RunWaitingApproval)
			require.NoError(t, b.runner.Stop(ctx))

			b.runner = b.start(t) // a new process on the same store
			_, _, err := b.runner.Decide(ctx, Decision{RunID: run.ID, StepID: "destroy", Decision: Denied, By: "bob", Via: "cli"})
			require.NoError(t, err)
			run = b.waitStatus(t, run.ID, RunCancelled, RunSucceeded, RunFailed)
			require.Equal(t, RunCancelled, run.Status)
			require.Equal(t, "destroy", run.FailedStep)
			require.Contains(t, run.Error, "denied by bob")
			require.Equal(t, 0, b.world.Effect("destroy"))
			require.Equal(t, 1, b.world.Effect("contain"), "finished steps are not repeated after a restart")
		})
	}
}

func TestApprovalTimesOutByPolicy(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{"deny", "approve"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			b := newBundle(t, testDatabases(t)["sqlite"])
			pb := b.playbook(t, fmt.Sprintf(approvalPlaybook, "1s", policy))
			run := submitOne(t, b, pb, testAlert("AKIAIOSFODNN7EXAMPLE"))
			b.waitStatus(t, run.ID, RunWaitingApproval)
			run = b.waitStatus(t, run.ID, RunSucceeded, RunCancelled, RunFailed)
			a, err := b.runner.Store().Approval(context.Background(), run.ID, "destroy")
			require.NoError(t, err)
			require.Equal(t, "timeout", a.DecidedBy)
			if policy == "approve" {
				require.Equal(t, RunSucceeded, run.Status)
				require.Equal(t, 1, b.world.Effect("destroy"))
			} else {
				require.Equal(t, RunCancelled, run.Status)
				require.Equal(t, 0, b.world.Effect("destroy"))
			}
		})
	}
}

func TestSecondProcessOnSQLiteIsRefused(t *testing.T) {
	t.Parallel()
	b := newBundle(t, testDatabases(t)["sqlite"])
	other, err := OpenDatabase(context.Background(), "file:"+b.db.Path)
	require.NoError(t, err)
	defer other.Close()
	r, err := New(context.Background(), Config{DB: other, Registry: b.reg})
	require.NoError(t, err)
	err = r.Start(context.Background())
	require.True(t, errors.Is(err, ErrBusy), "got %v", err)
	require.Contains(t, err.Error(), fmt.Sprint(os.Getpid()))
}

func TestOpenDatabaseRejectsUnknownURLs(t *testing.T) {
	t.Parallel()
	_, err := OpenDatabase(context.Background(), "mysql://x")
	require.ErrorIs(t, err, ErrDatabaseURL)
	require.Contains(t, err.Error(), "want file:PATH")
}

func TestDelayedStepSleepsWithoutHoldingAWorker(t *testing.T) {
	t.Parallel()
	for name, open := range testDatabases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := newBundle(t, open)
			require.NoError(t, b.runner.Stop(ctx))
			b.runner = b.startWith(t, 1) // one worker: a held worker would block the second run

			delayed := b.playbook(t, `
name: sweep-later
steps:
  - id: first
    action: test.mark
    with: {name: first}
  - id: again
    action: test.mark
    delay: 2s
    with: {name: again}
`)
			slow := submitOne(t, b, delayed, testAlert("AKIAIOSFODNN7EXAMPLE"))
			deadline := time.Now().Add(20 * time.Second)
			for b.world.Effect("first") == 0 {
				require.True(t, time.Now().Before(deadline))
				time.Sleep(10 * time.Millisecond)
			}
			quick := submitOne(t, b, b.playbook(t, twoSteps), testAlert("AKIAI44QH8DHBEXAMPLE"))
			b.waitStatus(t, quick.ID, RunSucceeded)

			run := b.waitStatus(t, slow.ID, RunSucceeded, RunFailed)
			require.Equal(t, RunSucceeded, run.Status)
			steps, err := b.runner.Store().Steps(ctx, run.ID)
			require.NoError(t, err)
			require.GreaterOrEqual(t, steps["again"].StartedAt.Sub(steps["first"].EndedAt), 2*time.Second)
			// Read from the records, not raced against the clock: the one
			// worker took the second run while the first slept; a held
			// worker would have started it only after "again" ended.
			quickSteps, err := b.runner.Store().Steps(ctx, quick.ID)
			require.NoError(t, err)
			require.True(t, quickSteps["first"].StartedAt.Before(steps["again"].StartedAt), "the second run started while the delayed one slept")
			journal, err := b.runner.Store().Journal(ctx, run.ID)
			require.NoError(t, err)
			var delayedSeen bool
			for _, e := range journal {
				delayedSeen = delayedSeen || (e.Event == "step_delayed" && e.StepID == "again")
				require.NotEqual(t, "run_resumed", e.Event, "waking for a delayed step is not a resume: nothing stopped")
			}
			require.True(t, delayedSeen)
		})
	}
}

func TestAlertsAboutTheSameCredentialJoinTheOpenRun(t *testing.T) {
	t.Parallel()
	for name, open := range testDatabases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := newBundle(t, open)
			pb := b.playbook(t, fmt.Sprintf(approvalPlaybook, "1h", "deny"))
			github := testAlert("AKIAIOSFODNN7EXAMPLE")
			first := submitOne(t, b, pb, github)
			b.waitStatus(t, first.ID, RunWaitingApproval)

			health := alert.Alert{Source: alert.SourceHealth, DedupKey: "health:arn:event/1", Credential: alert.Credential{ID: "AKIAIOSFODNN7EXAMPLE"}}
			health.Normalise(time.Now())
			sub, err := b.runner.Submit(ctx, health, []*playbooks.Playbook{pb})
			require.NoError(t, err)
			require.Empty(t, sub.Started, "no second containment")
			require.Len(t, sub.Joined, 1)
			require.Equal(t, first.ID, sub.Joined[0].ID)
			require.Equal(t, 1, b.world.Effect("contain"))

			journal, err := b.runner.Store().Journal(ctx, first.ID)
			require.NoError(t, err)
			var joined bool
			for _, e := range journal {
				joined = joined || (e.Event == "alert_joined" && strings.Contains(e.Detail, "health:arn:event/1 from health"))
			}
			require.True(t, joined, "the join is in the incident's timeline")
			// And in the incident's record: the alert that started the run,
			// then the one that joined it, each as it was received.
			alerts, err := b.runner.Store().RunAlerts(ctx, first.ID)
			require.NoError(t, err)
			require.Len(t, alerts, 2)
			require.Equal(t, "started", alerts[0].Relation)
			require.Equal(t, github.DedupKey, alerts[0].Alert.DedupKey)
			require.Equal(t, "joined", alerts[1].Relation)
			require.Equal(t, "health:arn:event/1", alerts[1].Alert.DedupKey)
			require.Equal(t, alert.SourceHealth, alerts[1].Alert.Source)
			require.False(t, alerts[1].ReceivedAt.Before(alerts[0].ReceivedAt))
			// Submitted again, the joined alert is a duplicate: listed once.
			_, err = b.runner.Submit(ctx, health, []*playbooks.Playbook{pb})
			require.NoError(t, err)
			alerts, err = b.runner.Store().RunAlerts(ctx, first.ID)
			require.NoError(t, err)
			require.Len(t, alerts, 2)

			// Once the run is over, a new alert about the key starts a new run.
			_, _, err = b.runner.Decide(ctx, Decision{RunID: first.ID, StepID: "destroy", Decision: Denied, By: "alice", Via: "cli"})
			require.NoError(t, err)
			b.waitStatus(t, first.ID, RunCancelled)
			later := alert.Alert{Source: alert.SourceGuardDuty, DedupKey: "guardduty:x", Credential: alert.Credential{ID: "AKIAIOSFODNN7EXAMPLE"}}
			later.Normalise(time.Now())
			sub, err = b.runner.Submit(ctx, later, []*playbooks.Playbook{pb})
			require.NoError(t, err)
			require.Len(t, sub.Started, 1)

			// A playbook can opt out.
			solo := b.playbook(t, "name: solo\ncorrelate: false\nsteps:\n  - id: m\n    action: test.mark\n    with: {name: solo}\n    approval: {approvers: [alice]}\n")
			s1, err := b.runner.Submit(ctx, testAlert("AKIAI44QH8DHBEXAMPLE"), []*playbooks.Playbook{solo})
			require.NoError(t, err)
			other := alert.Alert{Source: alert.SourceHealth, DedupKey: "health:2", Credential: alert.Credential{ID: "AKIAI44QH8DHBEXAMPLE"}}
			other.Normalise(time.Now())
			s2, err := b.runner.Submit(ctx, other, []*playbooks.Playbook{solo})
			require.NoError(t, err)
			require.Len(t, s1.Started, 1)
			require.Len(t, s2.Started, 1, "correlate: false starts a run per alert")
		})
	}
}

func TestSlowStepsNeverDelayContainment(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newBundle(t, testDatabases(t)["sqlite"])
	require.NoError(t, b.runner.Stop(ctx))
	b.runner = b.startWith(t, 1) // one containment worker
	investigate := b.playbook(t, `
name: investigate
steps:
  - id: contain
    action: test.mark
    with: {name: contain-first}
  - id: query
    action: test.slow
    with: {gated: true}
`)
	slow := submitOne(t, b, investigate, testAlert("AKIAIOSFODNN7EXAMPLE"))
	deadline := time.Now().Add(20 * time.Second)
	for b.world.Effect("contain-first") == 0 {
		require.True(t, time.Now().Before(deadline))
		time.Sleep(10 * time.Millisecond)
	}
	// The slow step cannot finish until the gate opens: the second alert
	// is contained while it still runs, or never (if it held the one
	// containment worker).
	quick := submitOne(t, b, b.playbook(t, twoSteps), testAlert("AKIAI44QH8DHBEXAMPLE"))
	b.waitStatus(t, quick.ID, RunSucceeded)
	require.Zero(t, b.world.Effect("slow"))
	b.world.OpenGate()

	run := b.waitStatus(t, slow.ID, RunSucceeded, RunFailed)
	require.Equal(t, RunSucceeded, run.Status)
	require.Equal(t, 1, b.world.Effect("slow"))
	journal, err := b.runner.Store().Journal(ctx, run.ID)
	require.NoError(t, err)
	var events []string
	for _, e := range journal {
		events = append(events, e.Event)
	}
	require.Contains(t, events, "run_moved")
	require.NotContains(t, events, "run_resumed", "moving to the investigation queue is not a resume: nothing stopped")
}

const escalatingPlaybook = `
name: escalate-me
steps:
  - id: destroy
    action: test.mark
    approval:
      approvers: [alice]
      timeout: 1s
      on_timeout: escalate
      channel: "#sec-oncall"
      escalate:
        channel: "#sec-leads"
        approvers: [S0LEADS]
        timeout: %s
    with: {name: destroy}
`

// Nobody decides in time: the approval goes to its second round, where a
// member of the escalation's user group may decide; a second timeout denies.
func TestApprovalEscalates(t *testing.T) {
	t.Parallel()
	t.Run("decided in the second round", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		b := newBundle(t, testDatabases(t)["sqlite"])
		pb := b.playbook(t, fmt.Sprintf(escalatingPlaybook, "1h"))
		run := submitOne(t, b, pb, testAlert("AKIAIOSFODNN7EXAMPLE"))
		b.waitStatus(t, run.ID, RunWaitingApproval)
		var a Approval
		require.Eventually(t, func() bool {
			var err error
			a, err = b.runner.Store().Approval(ctx, run.ID, "destroy")
			return err == nil && !a.EscalatedAt.IsZero()
		}, 10*time.Second, 50*time.Millisecond)
		require.Equal(t, []string{"alice", "S0LEADS"}, a.Approvers)
		require.Equal(t, "#sec-oncall", a.Channel)
		require.Equal(t, "#sec-leads", a.Escalation.Channel)
		require.Empty(t, a.Decision)

		// Not in the group: refused. In it: decides.
		_, _, err := b.runner.Decide(ctx, Decision{RunID: run.ID, StepID: "destroy", Decision: Approved, By: "U0MALLORY", Via: "slack"})
		require.ErrorIs(t, err, ErrNotApprover)
		a, first, err := b.runner.Decide(ctx, Decision{RunID: run.ID, StepID: "destroy", Decision: Approved, By: "U0CAROL", Via: "slack", MemberOf: []string{"S0LEADS"}})
		require.NoError(t, err)
		require.True(t, first)
		require.Equal(t, "U0CAROL", a.DecidedBy)
		run = b.waitStatus(t, run.ID, RunSucceeded, RunFailed, RunCancelled)
		require.Equal(t, RunSucceeded, run.Status)
		require.Equal(t, 1, b.world.Effect("destroy"))

		journal, err := b.runner.Store().Journal(ctx, run.ID)
		require.NoError(t, err)
		var events []string
		for _, e := range journal {
			if strings.HasPrefix(e.Event, "approval_") {
				events = append(events, e.Event)
			}
		}
		require.Equal(t, []string{"approval_requested", "approval_escalated", "approval_refused", "approval_approved"}, events)

		rep, err := b.runner.Report(ctx, run.ID)
		require.NoError(t, err)
		step, ok := rep.Step("destroy")
		require.True(t, ok)
		require.Equal(t, "#sec-leads", step.Approval.EscalatedTo)
		require.Equal(t, "U0CAROL", step.Approval.DecidedBy)
	})
	t.Run("nobody decides", func(t *testing.T) {
		t.Parallel()
		b := newBundle(t, testDatabases(t)["sqlite"])
		pb := b.playbook(t, fmt.Sprintf(escalatingPlaybook, "1s"))
		run := submitOne(t, b, pb, testAlert("AKIAIOSFODNN7EXAMPLE"))
		run = b.waitStatus(t, run.ID, RunSucceeded, RunFailed, RunCancelled)
		require.Equal(t, RunCancelled, run.Status)
		a, err := b.runner.Store().Approval(context.Background(), run.ID, "destroy")
		require.NoError(t, err)
		require.False(t, a.EscalatedAt.IsZero(), "escalated before it was denied")
		require.Equal(t, "timeout", a.DecidedBy)
		require.Equal(t, Denied, a.Decision)
	})
}

// A store created by an earlier stanch, before approvals had channels,
// is brought up to date once; later starts change nothing.
func TestStoreMigratesOlderApprovals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testDatabases(t)["sqlite"](t)
	_, err := db.SQL.ExecContext(ctx, `CREATE TABLE stanch_approvals (
		run_id TEXT NOT NULL, step_id TEXT NOT NULL, approvers TEXT NOT NULL DEFAULT '', message TEXT NOT NULL DEFAULT '',
		requested_at BIGINT NOT NULL, deadline BIGINT NOT NULL, decision TEXT NOT NULL DEFAULT '', decided_by TEXT NOT NULL DEFAULT '',
		decided_at BIGINT NOT NULL DEFAULT 0, via TEXT NOT NULL DEFAULT '', PRIMARY KEY (run_id, step_id))`)
	require.NoError(t, err)
	_, err = db.SQL.ExecContext(ctx, `INSERT INTO stanch_approvals (run_id, step_id, approvers, requested_at, deadline) VALUES ('run_old', 'destroy', 'alice', 1, 2)`)
	require.NoError(t, err)
	store := NewStore(db, nil)
	require.NoError(t, store.Migrate(ctx))
	require.NoError(t, store.Migrate(ctx), "a second start finds nothing to do")
	a, err := store.Approval(ctx, "run_old", "destroy")
	require.NoError(t, err)
	require.Equal(t, []string{"alice"}, a.Approvers)
	require.Empty(t, a.Channel)
	require.Nil(t, a.Escalation)
}

// Alerts submitted at the same moment are committed together; each still
// gets exactly its own run, and copies of one alert arriving together
// start one run between them.
func TestConcurrentSubmissionsShareCommits(t *testing.T) {
	t.Parallel()
	for name, open := range testDatabases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := newBundle(t, open)
			pb := b.playbook(t, `
name: one-step
steps:
  - id: contain
    action: test.mark
    with: {name: "${{ alert.credential.id }}"}
`)
			const distinct, copies = 100, 10
			var wg sync.WaitGroup
			var started, existing atomic.Int64
			for i := range distinct + copies {
				id := fmt.Sprintf("AKIABATCH%011d", i)
				if i >= distinct {
					id = "AKIABATCHDUPLICATE01"
				}
				wg.Go(func() {
					sub, err := b.runner.Submit(ctx, testAlert(id), []*playbooks.Playbook{pb})
					if err != nil {
						t.Error(err)
						return
					}
					started.Add(int64(len(sub.Started)))
					existing.Add(int64(len(sub.Existing)))
				})
			}
			wg.Wait()
			require.EqualValues(t, distinct+1, started.Load())
			require.EqualValues(t, copies-1, existing.Load())
			require.Eventually(t, func() bool {
				runs, err := b.runner.Store().ListRuns(ctx, ListFilter{Limit: 1000})
				require.NoError(t, err)
				done := 0
				for _, r := range runs {
					if r.Status == RunSucceeded {
						done++
					}
				}
				return done == distinct+1
			}, 30*time.Second, 20*time.Millisecond)
			require.Equal(t, 1, b.world.Effect("AKIABATCHDUPLICATE01"))
			require.Equal(t, 1, b.world.Effect("AKIABATCH00000000042"))
		})
	}
}

// A decision recorded by a process that died before it could wake the run
// (here: written to the store directly) still resumes the run within
// seconds, not at the approval's deadline an hour later.
func TestDecisionWithoutWakeStillResumes(t *testing.T) {
	t.Parallel()
	for name, open := range testDatabases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := newBundle(t, open)
			pb := b.playbook(t, fmt.Sprintf(approvalPlaybook, "1h", "deny"))
			run := submitOne(t, b, pb, testAlert("AKIAIOSFODNN7EXAMPLE"))
			b.waitStatus(t, run.ID, RunWaitingApproval)
			time.Sleep(300 * time.Millisecond) // let the job go to sleep
			_, first, err := b.runner.Store().Decide(ctx, run.ID, "destroy", Approved, Approver{ID: "alice", Name: "alice"}, "cli")
			require.NoError(t, err)
			require.True(t, first)
			run = b.waitStatus(t, run.ID, RunSucceeded, RunFailed)
			require.Equal(t, RunSucceeded, run.Status)
			require.Equal(t, 1, b.world.Effect("destroy"))
		})
	}
}
