package runner

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/apicall"
	"github.com/stanchhq/stanch/internal/planted"
	"github.com/stanchhq/stanch/playbooks"
)

// call is a provider call as the recording transport would hand it.
func call(op, outcome string) apicall.Call {
	return apicall.Call{Service: "iam", Operation: op, Account: "111122223333", Region: "us-east-1", RequestID: "req-" + op, Outcome: outcome, At: time.Now().UTC(), Duration: time.Millisecond}
}

// The calls a step's action makes reach the run's record attributed to
// the step and attempt: those made before an effect with the effect, the
// rest when the attempt ends; an attempt sent away and run again goes on
// numbering its calls; the read-only calls of the plan shown to approvers
// are attempt 0.
func TestTheCallsOfEveryAttemptAreRecorded(t *testing.T) {
	for name, open := range testDatabases(t) {
		t.Run(name, func(t *testing.T) {
			var mu sync.Mutex
			rounds := 0
			var atEffect []Call // what the store held when the effect was recorded
			var r *Runner
			calling := actions.New(actions.Definition[deferParams, deferOutputs]{
				Name: "test.calling",
				PlanFunc: func(ctx context.Context, _ actions.Env, _ *deferParams) (actions.PlanOf[deferOutputs], error) {
					apicall.Record(ctx, call("GetUser", apicall.OK))
					return actions.PlanOf[deferOutputs]{Summary: "would update"}, nil
				},
				DoFunc: func(ctx context.Context, env actions.Env, _ *deferParams) (actions.ResultOf[deferOutputs], error) {
					mu.Lock()
					defer mu.Unlock()
					rounds++
					apicall.Record(ctx, call("ListAccessKeys", apicall.OK))
					if rounds == 1 {
						apicall.Record(ctx, call("UpdateAccessKey", apicall.Failed))
						return actions.ResultOf[deferOutputs]{}, actions.Retryable(&budgetSpent{wait: 10 * time.Millisecond})
					}
					apicall.Record(ctx, call("UpdateAccessKey", apicall.OK))
					env.Record(actions.Effect{Description: "updated"})
					var err error
					atEffect, err = r.Store().Calls(ctx, env.RunID)
					require.NoError(t, err)
					apicall.Record(ctx, call("ListAccessKeys", apicall.OK))
					return actions.ResultOf[deferOutputs]{Outcome: actions.Done}, nil
				},
			})
			reg, err := actions.NewRegistry(calling)
			require.NoError(t, err)
			ctx := context.Background()
			r, err = New(ctx, Config{DB: open(t), Registry: reg})
			require.NoError(t, err)
			require.NoError(t, r.Start(ctx))
			t.Cleanup(func() { _ = r.Stop(context.Background()) })
			pb, err := playbooks.Parse("calls.yaml", []byte(`
name: calls
steps:
  - id: update
    action: test.calling
    retry: {attempts: 1}
    approval: {approvers: [alice], timeout: 1h}
`), reg)
			require.NoError(t, err)
			sub, err := r.Submit(ctx, testAlert("AKIAIOSFODNN7CALLS01"), []*playbooks.Playbook{pb})
			require.NoError(t, err)
			id := sub.Started[0].ID
			waitRun(t, r, id, RunWaitingApproval)
			_, _, err = r.Decide(ctx, Decision{RunID: id, StepID: "update", Decision: Approved, By: "alice", Via: "cli"})
			require.NoError(t, err)
			run := waitRun(t, r, id, RunSucceeded, RunFailed)
			require.Equal(t, RunSucceeded, run.Status, "%+v", run)

			calls, err := r.Store().Calls(ctx, id)
			require.NoError(t, err)
			type seen struct {
				Attempt, N  int
				Op, Outcome string
			}
			var got []seen
			for _, c := range calls {
				require.Equal(t, "update", c.StepID)
				require.Equal(t, "req-"+c.Operation, c.RequestID)
				require.Equal(t, "111122223333", c.Account)
				got = append(got, seen{c.Attempt, c.N, c.Operation, c.Outcome})
			}
			require.Equal(t, []seen{
				{0, 0, "GetUser", "ok"},
				{1, 0, "ListAccessKeys", "ok"},
				{1, 1, "UpdateAccessKey", "failed"},
				{1, 2, "ListAccessKeys", "ok"},
				{1, 3, "UpdateAccessKey", "ok"},
				{1, 4, "ListAccessKeys", "ok"},
			}, got)
			require.Len(t, atEffect, 5, "the calls up to the effect were stored with it")
		})
	}
}

// A call edited, deleted or added in the store after it was recorded
// breaks the run's chain where its calls_recorded entry is; untouched
// calls verify.
func TestVerifyJournalNamesTamperedCalls(t *testing.T) {
	t.Parallel()
	for name, open := range testDatabases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db := open(t)
			s := NewStore(db, nil)
			require.NoError(t, s.Migrate(ctx))
			runs := []string{"run_clean", "run_edit", "run_delete", "run_add", "run_extra"}
			for _, run := range runs {
				appendEntries(t, s, run, 2)
				require.NoError(t, s.AddCalls(ctx, run, "deactivate", 1, []apicall.Call{call("ListAccessKeys", apicall.OK), call("UpdateAccessKey", apicall.OK)}))
				require.NoError(t, s.AddCalls(ctx, run, "deactivate", 1, []apicall.Call{call("ListAccessKeys", apicall.OK)}))
			}
			// A call recorded after one made later (a batch's request)
			// verifies all the same.
			late, early := call("POST /credentials/revoke", apicall.OK), call("GET /user", apicall.OK)
			early.At = late.At.Add(-time.Minute)
			require.NoError(t, s.AddCalls(ctx, "run_clean", "revoke", 1, []apicall.Call{late, early}))
			tamper(t, db,
				`UPDATE stanch_calls SET outcome = 'failed' WHERE run_id = 'run_edit' AND n = 1`,
				`DELETE FROM stanch_calls WHERE run_id = 'run_delete' AND n = 0`,
				`UPDATE stanch_calls SET n = 5 WHERE run_id = 'run_add' AND n = 2`,
				`INSERT INTO stanch_calls (run_id, step_id, attempt, n, service, operation, account, region, request_id, outcome, error, at, duration)
					VALUES ('run_extra', 'deactivate', 1, 3, 'iam', 'DeleteAccessKey', '111122223333', 'us-east-1', 'req-x', 'ok', '', 1, 1)`,
			)
			problems := map[string][]string{}
			for _, run := range runs {
				c, err := s.VerifyJournal(ctx, run)
				require.NoError(t, err)
				for _, b := range c.Breaks {
					problems[run] = append(problems[run], fmt.Sprintf("%d %s", b.Seq, b.Problem))
				}
			}
			require.Empty(t, problems["run_clean"])
			require.Equal(t, []string{"3 edited"}, problems["run_edit"], "the first calls entry (seq 3) anchors the edited call")
			require.Equal(t, []string{"3 edited"}, problems["run_delete"])
			require.Equal(t, []string{"4 edited", "0 inserted"}, problems["run_add"], "a call moved out of its entry's numbers")
			require.Equal(t, []string{"0 inserted"}, problems["run_extra"])
		})
	}
}

// A secret in what a call's record would keep (a token in a path, an
// error that quotes one) never reaches the store or the journal.
func TestNoSecretReachesTheCallRecords(t *testing.T) {
	t.Parallel()
	for name, open := range testDatabases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := NewStore(open(t), nil)
			require.NoError(t, s.Migrate(ctx))
			var calls []apicall.Call
			for _, secret := range append(append([]string{}, planted.All...), planted.AllTokens...) {
				c := call("GET /tokens/"+secret, apicall.Failed)
				c.Error = "refused " + secret
				calls = append(calls, c)
			}
			require.NoError(t, s.AddCalls(ctx, "run_planted", "revoke", 1, calls))
			stored, err := s.Calls(ctx, "run_planted")
			require.NoError(t, err)
			require.Len(t, stored, len(calls))
			journal, err := s.Journal(ctx, "run_planted")
			require.NoError(t, err)
			planted.RequireNone(t, "stored calls", stored)
			planted.RequireNone(t, "journal", journal)
			check, err := s.VerifyJournal(ctx, "run_planted")
			require.NoError(t, err)
			require.True(t, check.OK(), "%+v", check.Breaks)
		})
	}
}

// When the calls cannot be written (here their table is gone), the step
// goes on, its effect is still journalled, and the loss is an event
// (stanch_call_records_lost_total) with how many calls the record lacks.
func TestLostCallRecordsAreCountedNotSilent(t *testing.T) {
	t.Parallel()
	for name, open := range testDatabases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			database := open(t)
			var mu sync.Mutex
			lost := map[string]int{} // step → calls lost
			breaking := actions.New(actions.Definition[deferParams, deferOutputs]{
				Name: "test.breaking",
				PlanFunc: func(context.Context, actions.Env, *deferParams) (actions.PlanOf[deferOutputs], error) {
					return actions.PlanOf[deferOutputs]{Summary: "would update"}, nil
				},
				DoFunc: func(ctx context.Context, env actions.Env, _ *deferParams) (actions.ResultOf[deferOutputs], error) {
					_, err := database.SQL.ExecContext(ctx, `DROP TABLE stanch_calls`)
					require.NoError(t, err)
					apicall.Record(ctx, call("UpdateAccessKey", apicall.OK))
					env.Record(actions.Effect{Description: "updated"})
					apicall.Record(ctx, call("ListAccessKeys", apicall.OK), call("ListAccessKeys", apicall.OK))
					return actions.ResultOf[deferOutputs]{Outcome: actions.Done}, nil
				},
			})
			reg, err := actions.NewRegistry(breaking)
			require.NoError(t, err)
			r, err := New(ctx, Config{DB: database, Registry: reg, Observer: func(e Event) {
				if e.Kind == EventCallsLost {
					mu.Lock()
					defer mu.Unlock()
					lost[e.StepID] += e.Calls
				}
			}})
			require.NoError(t, err)
			require.NoError(t, r.Start(ctx))
			t.Cleanup(func() { _ = r.Stop(context.Background()) })
			pb, err := playbooks.Parse("lost.yaml", []byte("name: lost\nsteps:\n  - id: update\n    action: test.breaking\n"), reg)
			require.NoError(t, err)
			sub, err := r.Submit(ctx, testAlert("AKIAIOSFODNN7LOST001"), []*playbooks.Playbook{pb})
			require.NoError(t, err)
			run := waitRun(t, r, sub.Started[0].ID, RunSucceeded, RunFailed)
			require.Equal(t, RunSucceeded, run.Status, "%+v", run)
			entries := journalEvents(t, r, run.ID)
			require.Equal(t, 1, count(entries, "effect"), "the effect is journalled without its calls: %v", entries)
			mu.Lock()
			defer mu.Unlock()
			require.Equal(t, map[string]int{"update": 3}, lost)
		})
	}
}
