package runner

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/playbooks"
)

// budgetSpent is a provider's "come back at": GitHub's hourly budget of
// credential revocations, say.
type budgetSpent struct{ wait time.Duration }

func (e *budgetSpent) Error() string             { return "budget spent" }
func (e *budgetSpent) RetryAfter() time.Duration { return e.wait }

type deferParams struct {
	Refusals int `json:"refusals"`
}

type deferOutputs struct{}

// A step that a provider sends away until a time it names waits for that
// time, however many times, without running out of attempts, and then
// goes on.
func TestAStepSentAwayWaitsWithoutUsingItsAttempts(t *testing.T) {
	for name, open := range testDatabases(t) {
		t.Run(name, func(t *testing.T) {
			var mu sync.Mutex
			calls := 0
			budgeted := actions.New(actions.Definition[deferParams, deferOutputs]{
				Name: "test.budgeted",
				PlanFunc: func(context.Context, actions.Env, *deferParams) (actions.PlanOf[deferOutputs], error) {
					return actions.PlanOf[deferOutputs]{Summary: "would call"}, nil
				},
				DoFunc: func(_ context.Context, _ actions.Env, p *deferParams) (actions.ResultOf[deferOutputs], error) {
					mu.Lock()
					defer mu.Unlock()
					calls++
					if calls <= p.Refusals {
						return actions.ResultOf[deferOutputs]{}, actions.Retryable(&budgetSpent{wait: 50 * time.Millisecond})
					}
					return actions.ResultOf[deferOutputs]{Outcome: actions.Done, Message: "called"}, nil
				},
			})
			reg, err := actions.NewRegistry(budgeted)
			require.NoError(t, err)
			db := open(t)
			ctx := context.Background()
			r, err := New(ctx, Config{DB: db, Registry: reg})
			require.NoError(t, err)
			require.NoError(t, r.Start(ctx))
			t.Cleanup(func() { _ = r.Stop(context.Background()) })
			pb, err := playbooks.Parse("budget.yaml", []byte(`
name: budget
steps:
  - id: revoke
    action: test.budgeted
    retry: {attempts: 1}
    with: {refusals: 3}
`), reg)
			require.NoError(t, err)
			sub, err := r.Submit(ctx, testAlert("AKIAIOSFODNN7BUDGET1"), []*playbooks.Playbook{pb})
			require.NoError(t, err)
			run := waitRun(t, r, sub.Started[0].ID, RunSucceeded, RunFailed)
			require.Equal(t, RunSucceeded, run.Status, "run: %+v", run)
			entries := journalEvents(t, r, run.ID)
			require.Equal(t, 3, count(entries, "attempt_deferred"), "journal: %+v", entries)
			steps, err := r.Store().Steps(ctx, run.ID)
			require.NoError(t, err)
			require.Equal(t, 1, steps["revoke"].Attempts, "waiting for the budget is not an attempt")
			require.True(t, errors.As(actions.Retryable(&budgetSpent{}), new(RetryAfter)))
		})
	}
}
