package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/playbooks"
)

// A step runs in phases: prepare (is it enabled; its parameters), the
// approval gate when it has one, then its attempts (attempt.go). Each phase
// either hands on to the next or ends the step with what to record.

// stepRun is one step being run by a pass over its run.
type stepRun struct {
	r    *Runner
	run  *Run
	log  *slog.Logger
	seq  int
	step *playbooks.Step
}

// runStep executes one step to a final state, which it records. It returns
// a *parked error when the step waits for approval, a *retryDue error when
// an attempt failed and the next one is due later, and other errors only
// for store failures. A step that finds who owns the credential sets
// run.Owner for the steps after it.
func (r *Runner) runStep(ctx context.Context, ex *execution, seq int, step *playbooks.Step) (playbooks.StepState, error) {
	s := &stepRun{r: r, run: &ex.run, log: ex.log, seq: seq, step: step}
	action, params, end := s.prepare(ex.scope)
	if end != nil {
		return s.end(ctx, *end)
	}
	if step.Approval != nil {
		end, err := s.approve(ctx, ex.scope, action, params)
		if err != nil {
			return playbooks.StepState{}, err
		}
		if end != nil {
			return s.end(ctx, *end)
		}
	}
	// A step whose attempt failed comes back here on the job's next pass:
	// the phases before its attempts are pure, or recorded (the decision),
	// and let it through again.
	// Secret outputs of earlier steps live in this pass's memory only: a
	// pass that holds some sleeps between attempts itself rather than
	// leave them behind.
	return s.attempts(ctx, action, params, !ex.secrets)
}

// prepare decides whether the step runs and builds its parameters; it
// returns the end to record instead when it does not run. Parameters come
// before any approval: nobody is asked about a step that cannot run, and
// approvers see what it would do.
func (s *stepRun) prepare(scope playbooks.Scope) (actions.Action, any, *StepEnd) {
	ok, reason, err := s.step.Enabled(scope)
	if err != nil {
		return nil, nil, failed(err.Error())
	}
	if !ok {
		return nil, nil, &StepEnd{Status: StepSkipped, Outcome: OutcomeSkipped, Message: reason}
	}
	action, params, err := s.r.stepParams(s.step, scope, s.run.Owner)
	if err != nil {
		return nil, nil, failed(err.Error())
	}
	return action, params, nil
}

// approve is the approval gate: nil when the step was approved and runs,
// the end to record when it was denied or needs no approval (its plan
// changes nothing), or a *parked error while the decision is pending.
func (s *stepRun) approve(ctx context.Context, scope playbooks.Scope, action actions.Action, params any) (*StepEnd, error) {
	decision, err := s.r.awaitApproval(ctx, *s.run, s.step, scope, action, params)
	var settled *settledPlan
	switch {
	case errors.As(err, &settled):
		return &StepEnd{Status: StepSucceeded, Outcome: string(settled.outcome), Message: "no approval asked: " + settled.summary}, nil
	case err != nil:
		return nil, err
	case decision.Decision == Denied && !stops(s.step, StepDenied):
		by := Approver{ID: decision.DecidedBy, Name: decision.DecidedByName}
		return &StepEnd{Status: StepDenied, Outcome: OutcomeDenied, Message: fmt.Sprintf("denied by %s via %s; the run goes on without it (on_deny: skip)", by, decision.Via)}, nil
	case decision.Decision == Denied:
		by := Approver{ID: decision.DecidedBy, Name: decision.DecidedByName}
		return &StepEnd{Status: StepDenied, Outcome: OutcomeDenied, Message: fmt.Sprintf("denied by %s via %s", by, decision.Via),
			Error: fmt.Sprintf("step %s was denied by %s", s.step.ID, by)}, nil
	}
	return nil, nil
}

// failed is the end of a step that failed with msg.
func failed(msg string) *StepEnd {
	return &StepEnd{Status: StepFailed, Outcome: OutcomeFailed, Error: msg}
}

// stepEndEvents are the events of a step's final statuses.
var stepEndEvents = map[StepStatus]EventKind{StepSucceeded: EventStepSucceeded, StepFailed: EventStepFailed, StepSkipped: EventStepSkipped, StepDenied: EventStepDenied}

// end records the step's final state with its journal entry, then tells
// observers and whoever shows the run.
func (s *stepRun) end(ctx context.Context, e StepEnd) (playbooks.StepState, error) {
	e.Seq, e.Action = s.seq, s.step.Action
	if err := s.r.store.FinishStep(ctx, s.run.ID, s.step.ID, e); err != nil {
		return playbooks.StepState{}, err
	}
	s.r.emit(Event{Kind: stepEndEvents[e.Status], RunID: s.run.ID, StepID: s.step.ID, Action: s.step.Action, Attempt: e.Attempt, Outcome: e.Outcome, Message: e.Message, Error: e.Error,
		Duration: s.r.attemptClock.stop(*s.run, s.step.ID)})
	s.r.notify(ctx, *s.run, "")
	return playbooks.StepState{Status: string(e.Status), Outcome: e.Outcome, Outputs: e.Outputs}, nil
}

// stepParams looks the step's action up and builds its parameters: the
// templates expanded, the owner's account, principal and credential filled
// in where the playbook left them out (and anything else refused, unless
// the step says `target: explicit`), decoded strictly.
func (r *Runner) stepParams(step *playbooks.Step, scope playbooks.Scope, owner actions.Owner) (actions.Action, any, error) {
	action, ok := r.cfg.Registry.Lookup(step.Action)
	if !ok {
		return nil, nil, fmt.Errorf("action %s is not in this build of stanch", step.Action)
	}
	with, err := step.Params(scope)
	if err != nil {
		return nil, nil, err
	}
	if step.Target != playbooks.TargetExplicit {
		if err := actions.ApplyOwner(action.Spec(), step.ID, with, owner); err != nil {
			return nil, nil, err
		}
	}
	params, err := action.Decode(with)
	if err != nil {
		return nil, nil, fmt.Errorf("step %s: %w", step.ID, err)
	}
	return action, params, nil
}
