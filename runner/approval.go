package runner

import (
	"context"
	"errors"
	"time"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/apicall"
	"github.com/stanchhq/stanch/playbooks"
)

// A step with an approval asks once, plans itself so that the request states
// its effects, and then sleeps (the job snoozes) until a decision or the
// deadline; the timeout policy decides when nobody did.

// parked says a step waits for approval until deadline.
type parked struct{ deadline time.Time }

func (p *parked) Error() string { return "waiting for approval" }

// settledPlan says a step's plan found nothing to change, so nobody is asked
// to approve it and it does not run.
type settledPlan struct {
	outcome actions.Outcome
	summary string
}

func (s *settledPlan) Error() string { return "nothing to change: " + s.summary }

// awaitApproval returns the decision on a step's approval, deciding by the
// timeout policy once the deadline passes, or a *parked error while the
// decision is pending. The first time, it plans the step so that the
// request states every effect the step would have; a plan that finds
// nothing to change (the key already gone) asks nobody and ends with a
// *settledPlan error.
func (r *Runner) awaitApproval(ctx context.Context, run Run, step *playbooks.Step, scope playbooks.Scope, action actions.Action, params any) (Approval, error) {
	a, err := r.store.Approval(ctx, run.ID, step.ID)
	if errors.Is(err, ErrNotFound) {
		msg, merr := step.ApprovalMessage(scope)
		if merr != nil {
			msg = "approve step " + step.ID + "? (message failed: " + merr.Error() + ")"
		}
		req := ApprovalRequest{Approvers: step.Approval.Approvers, Message: msg, Deadline: r.cfg.Now().Add(step.Approval.Timeout), Channel: step.Approval.Channel, Generation: run.Generation}
		if e := step.Approval.Escalate; e != nil {
			req.Escalation = &Escalation{Channel: e.Channel, Approvers: e.Approvers, Timeout: e.Timeout}
		}
		plan, perr := r.planForApproval(ctx, run, step, action, params)
		switch {
		case perr != nil:
			req.Plan = "its effects could not be planned: " + perr.Error()
		case plan.Settled != "":
			r.journal(ctx, run.ID, step.ID, "approval_not_needed", "the step would change nothing: "+plan.Summary)
			return Approval{}, &settledPlan{outcome: plan.Settled, summary: plan.Summary}
		default:
			req.Plan, req.Effects = plan.Summary, plan.Effects()
		}
		a, err = r.store.RequestApproval(ctx, run.ID, step.ID, req)
		if err != nil {
			return Approval{}, err
		}
		r.emit(Event{Kind: EventStepWaiting, RunID: run.ID, StepID: step.ID, Action: step.Action, Message: a.Message, Deadline: a.Deadline, Effects: a.Effects})
		r.notify(ctx, run, "approval/"+step.ID+"/requested")
	} else if err != nil {
		return Approval{}, err
	}
	if a.Decision != "" {
		return a, nil
	}
	if r.cfg.Now().Before(a.Deadline) {
		return Approval{}, &parked{deadline: a.Deadline}
	}
	if a.Escalation != nil && a.EscalatedAt.IsZero() {
		a, escalated, err := r.store.Escalate(ctx, run.ID, step.ID)
		if err != nil {
			return Approval{}, err
		}
		if escalated {
			r.emit(Event{Kind: EventStepEscalated, RunID: run.ID, StepID: step.ID, Action: step.Action, Message: "escalated to " + a.Escalation.Channel, Deadline: a.Deadline})
			// Shown whoever applies the deadline: the notify job is for the
			// process that serves Slack, this one or another.
			r.notifyAlways(ctx, run, "approval/"+step.ID+"/escalated")
		}
		if a.Decision != "" {
			return a, nil
		}
		return Approval{}, &parked{deadline: a.Deadline}
	}
	decision := Denied
	if step.Approval.OnTimeout == playbooks.OnTimeoutApprove {
		decision = Approved
	}
	a, first, err := r.store.Decide(ctx, run.ID, step.ID, decision, Approver{ID: "timeout"}, "timeout")
	if first {
		r.notifyAlways(ctx, run, "approval/"+step.ID+"/decided")
	}
	return a, err
}

// planForApproval plans the step the way `stanch plan` would, read-only,
// bounded by the step's timeout.
func (r *Runner) planForApproval(ctx context.Context, run Run, step *playbooks.Step, action actions.Action, params any) (actions.Plan, error) {
	pctx, cancel := context.WithTimeout(ctx, min(step.Timeout, time.Minute))
	defer cancel()
	// The plan's read-only calls are the run's too: recorded as attempt 0,
	// the one before the step's first.
	calls := &callLog{}
	plan, err := action.Plan(apicall.WithRecorder(pctx, calls.add), r.env(run, step, Attempt{Number: 1, StepStarted: r.cfg.Now()}), params)
	r.saveCalls(ctx, run, step, 0, calls.unsaved())
	return plan, err
}
