package runner

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/playbooks"
)

// PlannedStep is what a run would do at one step.
type PlannedStep struct {
	ID     string
	Action string
	// WillRun is false when the step's condition is false (Reason says why)
	// or when it cannot be planned (Error says why).
	WillRun bool
	Reason  string
	// Approval, when set, says who must approve first.
	Approval string
	Summary  string
	Calls    []actions.Call
	// Effects are the changes the step would make, in words people
	// approve; a step waiting for approval shows them to its approvers.
	Effects []actions.Effect
	// Settled says the step would change nothing (already, noop): a step
	// with an approval then asks nobody.
	Settled actions.Outcome
	// Pending says why the step can only be decided or planned at run time.
	Pending string
	Error   string
}

// PlanReport is the plan of one playbook for one alert.
type PlanReport struct {
	Playbook string
	Matched  bool
	Reason   string
	Steps    []PlannedStep
}

// Plan evaluates pb against a the way a run would, calling every action's
// read-only Plan, and changes nothing. Outputs that a step's reads determine
// feed the conditions and parameters of the steps after it.
func Plan(ctx context.Context, reg *actions.Registry, pb *playbooks.Playbook, a alert.Alert) (PlanReport, error) {
	rep := PlanReport{Playbook: pb.Name}
	ok, reason, err := pb.Match(a)
	if err != nil {
		return rep, fmt.Errorf("match playbook %s: %w", pb.Name, err)
	}
	rep.Matched, rep.Reason = ok, reason
	if !ok {
		return rep, nil
	}
	scope := pb.Scope(a, playbooks.RunInfo{ID: "run_plan", Playbook: pb.Name, StartedAt: time.Now().UTC()})
	var owner actions.Owner // as a run would learn it from an identifying step's plan
	// Steps whose outputs only a real run produces (their Plan cannot
	// compute them): later steps that need them are planned at run time.
	var unknown []string
	for _, step := range pb.Steps {
		ps := PlannedStep{ID: step.ID, Action: step.Action}
		state := playbooks.StepState{Status: string(StepSucceeded), Outcome: string(actions.Done), Outputs: map[string]any{}}
		ps.WillRun, ps.Reason, err = step.Enabled(scope)
		switch {
		case err != nil && len(unknown) > 0:
			// Most likely it reads an output that only a real run produces.
			ps.Pending = fmt.Sprintf("decided at run time: it depends on what %s return", strings.Join(unknown, ", "))
			state = playbooks.StepState{Status: string(StepSucceeded), Outcome: string(actions.Done)}
		case err != nil:
			ps.Error = err.Error()
			state = playbooks.StepState{Status: string(StepFailed), Outcome: OutcomeFailed}
		case !ps.WillRun:
			state = playbooks.StepState{Status: string(StepSkipped), Outcome: OutcomeSkipped}
		default:
			if step.Approval != nil {
				ps.Approval = fmt.Sprintf("waits for approval by %v (times out after %s, then %s)", step.Approval.Approvers, step.Approval.Timeout, step.Approval.OnTimeout)
			}
			if step.Delay > 0 {
				ps.Approval = strings.TrimSpace(ps.Approval + fmt.Sprintf(" starts %s after the steps before it", step.Delay))
			}
			planned, perr := planStep(ctx, reg, step, scope, owner)
			switch {
			case perr != nil && len(unknown) > 0 && !isPermanentPlanError(perr):
				ps.Pending = fmt.Sprintf("planned at run time: its parameters depend on what %s return (%v)", strings.Join(unknown, ", "), perr)
			case perr != nil:
				ps.Error = perr.Error()
				state = playbooks.StepState{Status: string(StepFailed), Outcome: OutcomeFailed}
			default:
				ps.Summary, ps.Calls, ps.Effects, ps.Settled = planned.Summary, planned.Calls, planned.Effects(), planned.Settled
				if planned.Owner != nil && !owner.Known() {
					owner = *planned.Owner
					owner.By = step.ID
				}
				if planned.Outputs != nil {
					state.Outputs = planned.Outputs
				} else {
					unknown = append(unknown, step.ID)
				}
			}
		}
		scope.Steps[step.ID] = state
		rep.Steps = append(rep.Steps, ps)
	}
	return rep, nil
}

func planStep(ctx context.Context, reg *actions.Registry, step *playbooks.Step, scope playbooks.Scope, owner actions.Owner) (actions.Plan, error) {
	action, ok := reg.Lookup(step.Action)
	if !ok {
		return actions.Plan{}, fmt.Errorf("action %s is not in this build of stanch", step.Action)
	}
	with, err := step.Params(scope)
	if err != nil {
		return actions.Plan{}, err
	}
	if step.Target != playbooks.TargetExplicit {
		if err := actions.ApplyOwner(action.Spec(), step.ID, with, owner); err != nil {
			return actions.Plan{}, err
		}
	}
	params, err := action.Decode(with)
	if err != nil {
		return actions.Plan{}, fmt.Errorf("step %s: %w", step.ID, err)
	}
	actx, cancel := context.WithTimeout(ctx, step.Timeout)
	defer cancel()
	return action.Plan(actx, actions.Env{RunID: "run_plan", StepID: step.ID, Attempt: 1, IdempotencyKey: "plan/" + step.ID, Owner: owner}, params)
}

// isPermanentPlanError reports errors that no run-time value could fix,
// such as an access denial: those are real problems in a plan.
func isPermanentPlanError(err error) bool {
	var ae *actions.Error
	return errors.As(err, &ae) && ae.Kind == actions.KindPermanent
}
