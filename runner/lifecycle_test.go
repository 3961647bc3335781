package runner

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/playbooks"
)

// alertIn is a leak whose alert says the key is in account: what a
// GuardDuty finding or a hand-written alert may say, rightly or not.
func alertIn(id, account string) alert.Alert {
	a := testAlert(id)
	a.Credential.Account = account
	a.DedupKey += ":" + account
	return a
}

func journalOf(t *testing.T, b *bundle, runID string) []string {
	t.Helper()
	entries, err := b.runner.Store().Journal(context.Background(), runID)
	require.NoError(t, err)
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = strings.Join(strings.Fields(e.Event+" "+e.StepID+" "+e.Detail), " ")
	}
	return out
}

func hasEntry(journal []string, prefix string) bool {
	for _, e := range journal {
		if strings.HasPrefix(e, prefix) {
			return true
		}
	}
	return false
}

// waitWaiting waits until the run waits for approval of step.
func (b *bundle) waitWaiting(t *testing.T, runID, step string) Run {
	t.Helper()
	var run Run
	b.waitFor(t, func() bool {
		run = b.waitStatus(t, runID, RunWaitingApproval, RunSucceeded, RunFailed, RunCancelled)
		return run.WaitingStep == step
	}, "run %s waits for %s", runID, step)
	return run
}

// waitStep waits until a step of the run has status.
func (b *bundle) waitStep(t *testing.T, runID, step string, status StepStatus) {
	t.Helper()
	b.waitFor(t, func() bool {
		steps, err := b.runner.Store().Steps(context.Background(), runID)
		require.NoError(t, err)
		return steps[step].Status == status
	}, "step %s of %s is %s", step, runID, status)
}

func (b *bundle) waitFor(t *testing.T, cond func() bool, what string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		require.True(t, time.Now().Before(deadline), "waited 30s for: "+fmt.Sprintf(what, args...))
		time.Sleep(20 * time.Millisecond)
	}
}

const ownerPlaybook = `
name: owner
steps:
  - id: identify
    action: test.identify
    with: {credential: "${{ alert.credential.id }}", account: "444455556666", user: ci-bot}
  - id: rotate
    action: test.touch
    with: {name: rotate}
  - id: delete
    action: test.touch
    with: {name: delete, account: "${{ alert.credential.account }}"}
`

// Once a step has found who owns the credential, a step that leaves the
// account and user out acts on the owner, and one that names another
// account is refused before its action runs.
func TestStepsActOnTheIdentifiedOwner(t *testing.T) {
	t.Parallel()
	for name, open := range testDatabases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := newBundle(t, open)
			run := submitOne(t, b, b.playbook(t, ownerPlaybook), alertIn("AKIAIOSFODNN7EXAMPLE", "111122223333"))
			run = b.waitStatus(t, run.ID, RunSucceeded, RunFailed)
			require.Equal(t, RunFailed, run.Status)
			require.Equal(t, "delete", run.FailedStep)
			require.Contains(t, run.Error, "step delete would act on account 111122223333 (parameter account), but the credential AKIAIOSFODNN7EXAMPLE belongs to user ci-bot in account 444455556666 (identified by step identify); nothing was changed")
			require.Equal(t, 1, b.world.Effect("rotate@444455556666/ci-bot"), "rotate acted on the owner without being told")
			require.Zero(t, b.world.Effect("delete@111122223333/ci-bot"), "nothing in the other account")
			require.Zero(t, b.world.Effect("delete@444455556666/ci-bot"))
			require.Equal(t, actions.Owner{Account: "444455556666", User: "ci-bot", Credential: "AKIAIOSFODNN7EXAMPLE", By: "identify"}, run.Owner)
			journal := journalOf(t, b, run.ID)
			require.Contains(t, journal, "owner_identified identify AKIAIOSFODNN7EXAMPLE belongs to user ci-bot in account 444455556666: every later step acts there")
			require.True(t, hasEntry(journal, "effect rotate touched rotate of user ci-bot in account 444455556666"), "%v", journal)
		})
	}
}

func TestExplicitTargetActsWhereItSays(t *testing.T) {
	t.Parallel()
	b := newBundle(t, testDatabases(t)["sqlite"])
	pb := b.playbook(t, strings.Replace(ownerPlaybook, "  - id: delete\n    action: test.touch\n", "  - id: delete\n    action: test.touch\n    target: explicit\n", 1))
	run := submitOne(t, b, pb, alertIn("AKIAIOSFODNN7EXAMPLE", "111122223333"))
	run = b.waitStatus(t, run.ID, RunSucceeded, RunFailed)
	require.Equal(t, RunSucceeded, run.Status, run.Error)
	require.Equal(t, 1, b.world.Effect("delete@111122223333/"), "told to act elsewhere on purpose, it does")
}

func TestASecondOwnerStopsTheRun(t *testing.T) {
	t.Parallel()
	b := newBundle(t, testDatabases(t)["sqlite"])
	pb := b.playbook(t, `
name: two-owners
steps:
  - id: identify
    action: test.identify
    with: {credential: "${{ alert.credential.id }}", account: "444455556666", user: ci-bot}
  - id: identify_again
    action: test.identify
    with: {credential: "${{ alert.credential.id }}", account: "111122223333", user: ci-bot}
  - id: rotate
    action: test.touch
    with: {name: rotate}
`)
	run := submitOne(t, b, pb, testAlert("AKIAIOSFODNN7EXAMPLE"))
	run = b.waitStatus(t, run.ID, RunSucceeded, RunFailed)
	require.Equal(t, RunFailed, run.Status)
	require.Equal(t, "identify_again", run.FailedStep)
	require.Contains(t, run.Error, "one run acts on one owner")
	require.Zero(t, b.world.Effect("rotate@444455556666/ci-bot")+b.world.Effect("rotate@111122223333/ci-bot"))
}

const effectsPlaybook = `
name: effects
steps:
  - id: identify
    action: test.identify
    with: {credential: "${{ alert.credential.id }}", account: "444455556666", user: ci-bot}
  - id: contain
    action: test.mark
    with: {name: contain}
  - id: again
    action: test.mark
    approval: {approvers: [alice], timeout: 1h}
    with: {name: contain}
  - id: rotate
    action: test.touch
    approval: {approvers: [alice], timeout: 1h, on_deny: skip}
    with: {name: rotate}
  - id: delete
    action: test.mark
    approval: {approvers: [alice], timeout: 1h}
    with: {name: delete}
`

// An approval states every effect the step will have, from its plan, in the
// owner's account; a step whose plan changes nothing asks nobody; a denial
// with on_deny: skip lets the run go on.
func TestApprovalsStateEffectsAndDenialsMaySkip(t *testing.T) {
	t.Parallel()
	for name, open := range testDatabases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := newBundle(t, open)
			run := submitOne(t, b, b.playbook(t, effectsPlaybook), testAlert("AKIAIOSFODNN7EXAMPLE"))
			run = b.waitStatus(t, run.ID, RunWaitingApproval)
			require.Equal(t, "rotate", run.WaitingStep, "`again` would change nothing: nobody was asked")
			steps, err := b.runner.Store().Steps(ctx, run.ID)
			require.NoError(t, err)
			require.Equal(t, StepSucceeded, steps["again"].Status)
			require.Equal(t, "already", steps["again"].Outcome)
			require.Contains(t, steps["again"].Message, "no approval asked: contain is already marked")
			_, err = b.runner.Store().Approval(ctx, run.ID, "again")
			require.ErrorIs(t, err, ErrNotFound)

			rotate, err := b.runner.Store().Approval(ctx, run.ID, "rotate")
			require.NoError(t, err)
			require.Equal(t, []actions.Effect{{Description: "touch rotate of user ci-bot in account 444455556666"}}, rotate.Effects)
			require.Equal(t, "would touch ci-bot in 444455556666", rotate.Plan)

			_, _, err = b.runner.Decide(ctx, Decision{RunID: run.ID, StepID: "rotate", Decision: Denied, By: "alice", Via: "cli"})
			require.NoError(t, err)
			run = b.waitWaiting(t, run.ID, "delete")
			del, err := b.runner.Store().Approval(ctx, run.ID, "delete")
			require.NoError(t, err)
			require.Equal(t, []actions.Effect{{Description: "mark delete", Irreversible: true}}, del.Effects)
			require.Equal(t, "mark delete (irreversible)", del.Effects[0].String())
			_, _, err = b.runner.Decide(ctx, Decision{RunID: run.ID, StepID: "delete", Decision: Approved, By: "alice", Via: "cli"})
			require.NoError(t, err)
			run = b.waitStatus(t, run.ID, RunSucceeded, RunFailed, RunCancelled)
			require.Equal(t, RunSucceeded, run.Status, "the denied step was skipped and the run went on")
			require.Zero(t, b.world.Effect("rotate@444455556666/ci-bot"))
			require.Equal(t, 1, b.world.Effect("delete"))
			steps, err = b.runner.Store().Steps(ctx, run.ID)
			require.NoError(t, err)
			require.Equal(t, StepDenied, steps["rotate"].Status)
			require.Contains(t, steps["rotate"].Message, "the run goes on without it (on_deny: skip)")
			journal := journalOf(t, b, run.ID)
			require.Contains(t, journal, "approval_not_needed again the step would change nothing: contain is already marked")
			for _, e := range journal {
				require.False(t, strings.HasPrefix(e, "run_resumed"), "nothing stopped: %s", e)
			}
			require.Contains(t, journal, "run_continued after the decision on step rotate")
		})
	}
}

const retryPlaybook = `
name: retry-me
steps:
  - id: contain
    action: test.mark
    with: {name: contain}
  - id: flaky
    action: test.mark
    retry: {attempts: 1}
    with: {name: flaky, fail: 1}
  - id: destroy
    action: test.mark
    approval: {approvers: [alice], timeout: 1h}
    with: {name: destroy}
`

// People retry a failed run, cancel a waiting one, retry it again and close
// the incident; each is journalled with who did it, and refused where it
// makes no sense.
func TestRunLifecycle(t *testing.T) {
	t.Parallel()
	for name, open := range testDatabases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := newBundle(t, open)
			run := submitOne(t, b, b.playbook(t, retryPlaybook), testAlert("AKIAIOSFODNN7EXAMPLE"))
			run = b.waitStatus(t, run.ID, RunFailed, RunSucceeded)
			require.Equal(t, "flaky", run.FailedStep, "throttled once, with no retry left")

			_, err := b.runner.Cancel(ctx, run.ID, "bob", "")
			require.ErrorIs(t, err, ErrLifecycle, "a failed run has nothing to cancel")
			require.ErrorContains(t, err, "already ended")
			_, err = b.runner.Retry(ctx, run.ID, "nope", "alice")
			require.ErrorContains(t, err, `has no step "nope"; its steps are contain, flaky, destroy`)

			run, err = b.runner.Retry(ctx, run.ID, "", "alice")
			require.NoError(t, err)
			require.Equal(t, 1, run.Generation)
			run = b.waitStatus(t, run.ID, RunWaitingApproval)
			require.Equal(t, "destroy", run.WaitingStep)
			require.Equal(t, 1, b.world.Effect("contain"), "finished steps before the retried one are not repeated")
			require.Equal(t, 1, b.world.Effect("flaky"))

			_, err = b.runner.Retry(ctx, run.ID, "", "alice")
			require.ErrorContains(t, err, "waiting for approval of step destroy: only a failed or cancelled run is retried; cancel it first")

			run, err = b.runner.Cancel(ctx, run.ID, "bob", "handled by hand")
			require.NoError(t, err)
			require.Equal(t, RunCancelled, run.Status)
			require.Equal(t, "cancelled by bob: handled by hand", run.Error)
			_, _, err = b.runner.Decide(ctx, Decision{RunID: run.ID, StepID: "destroy", Decision: Approved, By: "alice", Via: "cli"})
			require.ErrorIs(t, err, ErrNotWaiting, "a cancelled run's approval cannot be decided")
			require.ErrorContains(t, err, "has ended")
			require.Zero(t, b.world.Effect("destroy"))

			// Retried from the step it was waiting on: asked again.
			run, err = b.runner.Retry(ctx, run.ID, "", "carol")
			require.NoError(t, err)
			require.Equal(t, 2, run.Generation)
			run = b.waitStatus(t, run.ID, RunWaitingApproval)
			fresh, err := b.runner.Store().Approval(ctx, run.ID, "destroy")
			require.NoError(t, err)
			require.Empty(t, fresh.Decision)
			_, _, err = b.runner.Decide(ctx, Decision{RunID: run.ID, StepID: "destroy", Decision: Approved, By: "alice", Via: "cli"})
			require.NoError(t, err)
			run = b.waitStatus(t, run.ID, RunSucceeded, RunFailed, RunCancelled)
			require.Equal(t, RunSucceeded, run.Status)
			require.Equal(t, 1, b.world.Effect("destroy"))

			_, err = b.runner.Retry(ctx, run.ID, "", "alice")
			require.ErrorContains(t, err, "succeeded: there is nothing to retry")
			run, err = b.runner.Close(ctx, run.ID, "carol", "keys rotated, consumers updated")
			require.NoError(t, err)
			require.Equal(t, "carol", run.ClosedBy)
			require.Equal(t, RunSucceeded, run.Status, "closing keeps how it ended")
			_, err = b.runner.Close(ctx, run.ID, "carol", "again")
			require.ErrorContains(t, err, "was already closed by carol")

			journal := journalOf(t, b, run.ID)
			for _, want := range []string{
				"run_retried flaky by alice from step flaky (retry 1)",
				"run_cancelled destroy cancelled by bob: handled by hand",
				"run_retried destroy by carol from step destroy (retry 2)",
				"run_closed by carol: keys rotated, consumers updated",
			} {
				require.Contains(t, journal, want)
			}
		})
	}
}

// Closing an open incident cancels it first; a closed one is not retried.
func TestCloseAnOpenRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newBundle(t, testDatabases(t)["sqlite"])
	run := submitOne(t, b, b.playbook(t, fmt.Sprintf(approvalPlaybook, "1h", "deny")), testAlert("AKIAIOSFODNN7EXAMPLE"))
	run = b.waitStatus(t, run.ID, RunWaitingApproval)
	run, err := b.runner.Close(ctx, run.ID, "dave", "false positive: a test key")
	require.NoError(t, err)
	require.Equal(t, RunCancelled, run.Status)
	require.Equal(t, "false positive: a test key", run.CloseNote)
	_, err = b.runner.Retry(ctx, run.ID, "", "dave")
	require.ErrorContains(t, err, "a closed incident is not retried")
	journal := journalOf(t, b, run.ID)
	require.Contains(t, journal, "run_cancelled destroy cancelled by dave: closed: false positive: a test key")
	require.Contains(t, journal, "run_closed by dave: false positive: a test key")
}

// A run cancelled while a step is in flight finishes that step, records it,
// and starts nothing after it.
func TestCancelStopsBetweenSteps(t *testing.T) {
	t.Parallel()
	for name, open := range testDatabases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := newBundle(t, open)
			pb := b.playbook(t, `
name: long
steps:
  - id: query
    action: test.slow
    with: {gated: true}
  - id: after
    action: test.mark
    with: {name: after}
`)
			run := submitOne(t, b, pb, testAlert("AKIAIOSFODNN7EXAMPLE"))
			b.waitStep(t, run.ID, "query", StepRunning)
			_, err := b.runner.Retry(ctx, run.ID, "", "alice")
			require.ErrorIs(t, err, ErrLifecycle)
			run, err = b.runner.Cancel(ctx, run.ID, "bob", "")
			require.NoError(t, err)
			_, err = b.runner.Retry(ctx, run.ID, "", "alice")
			require.ErrorContains(t, err, "still finishing the step", "no second worker on the step in flight")
			b.world.OpenGate()
			b.waitStep(t, run.ID, "query", StepSucceeded)
			run = b.waitStatus(t, run.ID, RunCancelled)
			require.Equal(t, "cancelled by bob", run.Error)
			require.Zero(t, b.world.Effect("after"), "nothing starts after a cancel")
		})
	}
}

// stanch ingest beside stanch serve: a runner that another process works
// the store for still takes alerts, and that process runs them.
func TestSubmitBesideTheProcessThatWorksTheStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newBundle(t, testDatabases(t)["sqlite"])
	other, err := OpenDatabase(ctx, "file:"+b.db.Path)
	require.NoError(t, err)
	defer other.Close()
	beside, err := New(ctx, Config{DB: other, Registry: b.reg})
	require.NoError(t, err)
	require.True(t, errors.Is(beside.Start(ctx), ErrBusy))

	sub, err := beside.Submit(ctx, testAlert("AKIAIOSFODNN7EXAMPLE"), nil)
	require.NoError(t, err, "no playbook: nothing started, but no error either")
	require.Empty(t, sub.Started)
	sub, err = beside.Submit(ctx, testAlert("AKIAIOSFODNN7EXAMPLE"), []*playbooks.Playbook{b.playbook(t, twoSteps)})
	require.NoError(t, err)
	require.Len(t, sub.Started, 1)
	run := b.waitStatus(t, sub.Started[0].ID, RunSucceeded, RunFailed)
	require.Equal(t, RunSucceeded, run.Status, "the process working the store ran it")
}
