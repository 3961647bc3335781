package runner

import (
	"context"
	"fmt"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/playbooks"
)

// Report returns what people are shown about a run: its alert and each step
// of its playbook with its state, outputs and approval so far.
func (r *Runner) Report(ctx context.Context, runID string) (actions.Report, error) {
	run, err := r.store.Run(ctx, runID)
	if err != nil {
		return actions.Report{}, err
	}
	pb, err := r.playbook(run)
	if err != nil {
		return actions.Report{}, fmt.Errorf("report on run %s: playbook %s no longer loads: %w", run.ID, run.Playbook, err)
	}
	records, err := r.store.Steps(ctx, run.ID)
	if err != nil {
		return actions.Report{}, err
	}
	approvals, err := r.store.Approvals(ctx, run.ID)
	if err != nil {
		return actions.Report{}, err
	}
	rep := actions.Report{RunID: run.ID, Playbook: run.Playbook, Status: string(run.Status), StartedAt: run.CreatedAt, FinishedAt: run.FinishedAt, Alert: run.Alert,
		Generation: run.Generation, Owner: run.Owner}
	if rep.Journal.Seq, rep.Journal.Hash, err = r.store.lastEntry(ctx, run.ID); err != nil {
		return actions.Report{}, err
	}
	if Terminal(run.Status) {
		rep.Ended = run.Error
	}
	if !run.ClosedAt.IsZero() {
		rep.Closed = &actions.Closure{By: run.ClosedBy, At: run.ClosedAt, Note: run.CloseNote}
	}
	for _, step := range pb.Steps {
		sr := actions.StepReport{ID: step.ID, Action: step.Action, Status: string(StepPending)}
		if rec, ok := records[step.ID]; ok {
			sr.Status, sr.Outcome, sr.Message, sr.Error, sr.Outputs = string(rec.Status), rec.Outcome, rec.Message, rec.Error, rec.Outputs
		}
		if a, ok := approvals[step.ID]; ok {
			if a.Decision == "" && run.WaitingStep == step.ID && run.Status == RunWaitingApproval {
				sr.Status = string(StepWaitingApproval)
			}
			ar := &actions.ApprovalReport{Approvers: a.Approvers, Message: a.Message, Deadline: a.Deadline, Channel: a.Channel, EscalatedAt: a.EscalatedAt,
				OnTimeout: onTimeout(step, a),
				Decision:  a.Decision, DecidedBy: a.DecidedBy, DecidedAt: a.DecidedAt, Via: a.Via,
				Effects: a.Effects, Plan: a.Plan, Generation: a.Generation}
			if step.Approval != nil {
				ar.OnDeny = step.Approval.OnDeny
			}
			if a.Escalation != nil && !a.EscalatedAt.IsZero() {
				ar.EscalatedTo = a.Escalation.Channel
			}
			sr.Approval = ar
		}
		rep.Steps = append(rep.Steps, sr)
	}
	return rep, nil
}

// onTimeout is what happens when an approval's current deadline passes.
func onTimeout(step *playbooks.Step, a Approval) string {
	if step.Approval == nil {
		return playbooks.OnTimeoutDeny
	}
	if step.Approval.OnTimeout == playbooks.OnTimeoutEscalate && !a.EscalatedAt.IsZero() {
		return playbooks.OnTimeoutDeny // the second round ends in a denial
	}
	return step.Approval.OnTimeout
}
