package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/riverqueue/river"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/internal/crashpoint"
	"github.com/stanchhq/stanch/playbooks"
)

type runWorker struct {
	river.WorkerDefaults[RunArgs]
	r *Runner
}

// Work advances one run as far as it can: to its end, or to a step that
// waits for approval, where the job sleeps (snoozes) without holding a
// worker until a decision wakes it or the approval times out.
func (w *runWorker) Work(ctx context.Context, job *river.Job[RunArgs]) error {
	// Approvals wake the run through the job that parked it.
	if err := w.r.store.SetJob(ctx, job.Args.RunID, job.ID); err != nil {
		return err
	}
	err := w.r.advance(ctx, job.Args.RunID, job.Args.Queue)
	if err != nil && ctx.Err() != nil {
		// Shutting down mid-run is not a failure: make the job available to
		// the next process at once, without using up an attempt.
		return river.JobSnooze(0)
	}
	return err
}

// stepFailure ends a run because a step failed.
type stepFailure struct {
	step string
	err  string
}

func (r *Runner) advance(ctx context.Context, runID, queue string) error {
	run, err := r.store.Run(ctx, runID)
	if err != nil {
		return err
	}
	if Terminal(run.Status) {
		return nil
	}
	log := r.log.With("run", run.ID, "playbook", run.Playbook)
	pb, err := playbooks.Parse(run.PlaybookFile, run.PlaybookSource, r.cfg.Registry)
	if err != nil {
		// The playbook was valid when the run started; an action it uses is
		// gone from this build. Nothing can be done without a human.
		return r.finish(ctx, run, RunFailed, "", fmt.Sprintf("playbook %s no longer loads: %v", run.Playbook, err))
	}
	records, err := r.store.Steps(ctx, run.ID)
	if err != nil {
		return err
	}
	run.notify = r.cfg.Notifier != nil && r.cfg.Notifier.Wants(pb)
	resumed := run.Status != RunPending
	if run.Status != RunRunning {
		event, detail := "run_started", "started"
		if resumed {
			event, detail = "run_resumed", "resumed from "+run.Status
		}
		if err := r.store.UpdateRun(ctx, run.ID, RunUpdate{Status: RunRunning, Event: event, Detail: detail}); err != nil {
			return err
		}
	} else {
		resumed = len(records) > 0
		if resumed {
			if err := r.store.UpdateRun(ctx, run.ID, RunUpdate{Status: RunRunning, Event: "run_resumed", Detail: "resumed after the process running it stopped"}); err != nil {
				return err
			}
		}
	}
	if resumed {
		r.emit(Event{Kind: EventRunResumed, RunID: run.ID})
	} else {
		r.emit(Event{Kind: EventRunStarted, RunID: run.ID})
	}

	scope := pb.Scope(run.Alert, playbooks.RunInfo{ID: run.ID, Playbook: run.Playbook, StartedAt: run.CreatedAt})
	var failure *stepFailure
	for seq, step := range pb.Steps {
		if rec, ok := records[step.ID]; ok && stepFinished(rec.Status) {
			scope.Steps[step.ID] = playbooks.StepState{Status: rec.Status, Outcome: rec.Outcome, Outputs: rec.Outputs}
			if (rec.Status == StepFailed || rec.Status == StepDenied) && step.OnError != "continue" {
				failure = &stepFailure{step: step.ID, err: rec.Error}
				break
			}
			continue
		}
		if a, ok := r.cfg.Registry.Lookup(step.Action); ok && a.Spec().Slow && queue != QueueInvestigation {
			// Hand the rest of the run to the investigation workers; this
			// containment worker is free for the next alert.
			if err := r.enqueueOn(ctx, run.ID, QueueInvestigation); err != nil {
				return err
			}
			if err := r.store.UpdateRun(ctx, run.ID, RunUpdate{Status: RunRunning, Event: "run_moved", Detail: "to the investigation queue for step " + step.ID}); err != nil {
				return err
			}
			return nil
		}
		if step.Delay > 0 {
			due, err := r.store.DelayStep(ctx, run.ID, step.ID, seq, step.Action, r.cfg.Now().Add(step.Delay))
			if err != nil {
				return err
			}
			if wait := due.Sub(r.cfg.Now()); wait > 0 {
				// Sleep without holding a worker; River wakes the job.
				r.emit(Event{Kind: EventStepDelayed, RunID: run.ID, StepID: step.ID, Action: step.Action, Deadline: due})
				return river.JobSnooze(wait)
			}
		}
		crashpoint.Hit("before:" + step.ID)
		st, err := r.runStep(ctx, log, run, seq, step, scope)
		var park *parked
		if errors.As(err, &park) {
			if err := r.store.UpdateRun(ctx, run.ID, RunUpdate{Status: RunWaitingApproval, WaitingStep: step.ID, Event: "run_waiting_approval", Detail: "step " + step.ID}); err != nil {
				return err
			}
			// A decision that landed while this job was still running could
			// not wake it; look once more before sleeping.
			if a, err := r.store.Approval(ctx, run.ID, step.ID); err == nil && a.Decision != "" {
				return r.advance(ctx, runID, queue)
			}
			r.emit(Event{Kind: EventRunParked, RunID: run.ID, StepID: step.ID, Status: RunWaitingApproval, Deadline: park.deadline})
			return river.JobSnooze(max(time.Until(park.deadline), time.Second))
		}
		if err != nil {
			return err // store trouble: River retries the job, finished steps stay finished
		}
		crashpoint.Hit("after:" + step.ID)
		scope.Steps[step.ID] = st
		if (st.Status == StepFailed || st.Status == StepDenied) && step.OnError != "continue" {
			rec := r.stepRecordError(ctx, run.ID, step.ID)
			failure = &stepFailure{step: step.ID, err: rec}
			break
		}
	}
	if failure != nil {
		status := RunFailed
		if scope.Steps[failure.step].Status == StepDenied {
			status = RunCancelled
		}
		return r.finish(ctx, run, status, failure.step, failure.err)
	}
	return r.finish(ctx, run, RunSucceeded, "", "")
}

func (r *Runner) stepRecordError(ctx context.Context, runID, stepID string) string {
	recs, err := r.store.Steps(ctx, runID)
	if err != nil {
		return ""
	}
	return recs[stepID].Error
}

func (r *Runner) finish(ctx context.Context, run Run, status, failedStep, errText string) error {
	detail := status
	if failedStep != "" {
		detail = fmt.Sprintf("%s at step %s: %s", status, failedStep, errText)
	}
	if err := r.store.UpdateRun(ctx, run.ID, RunUpdate{Status: status, FailedStep: failedStep, Error: errText, Event: "run_" + status, Detail: detail}); err != nil {
		return err
	}
	r.emit(Event{Kind: EventRunFinished, RunID: run.ID, Status: status, StepID: failedStep, Error: errText})
	r.notify(ctx, run, "finished")
	return nil
}

// parked says a step waits for approval until deadline.
type parked struct{ deadline time.Time }

func (p *parked) Error() string { return "waiting for approval" }

// runStep executes one step to a final state, which it records. It returns
// a *parked error when the step waits for approval, and other errors only
// for store failures.
func (r *Runner) runStep(ctx context.Context, log *slog.Logger, run Run, seq int, step *playbooks.Step, scope playbooks.Scope) (playbooks.StepState, error) {
	end := func(e StepEnd) (playbooks.StepState, error) {
		e.Seq, e.Action = seq, step.Action
		if err := r.store.FinishStep(ctx, run.ID, step.ID, e); err != nil {
			return playbooks.StepState{}, err
		}
		kind := map[string]EventKind{StepSucceeded: EventStepSucceeded, StepFailed: EventStepFailed, StepSkipped: EventStepSkipped, StepDenied: EventStepDenied}[e.Status]
		r.emit(Event{Kind: kind, RunID: run.ID, StepID: step.ID, Action: step.Action, Attempt: e.Attempt, Outcome: e.Outcome, Message: e.Message, Error: e.Error})
		r.notify(ctx, run, "")
		return playbooks.StepState{Status: e.Status, Outcome: e.Outcome, Outputs: e.Outputs}, nil
	}

	ok, reason, err := step.Enabled(scope)
	if err != nil {
		return end(StepEnd{Status: StepFailed, Outcome: "failed", Error: err.Error()})
	}
	if !ok {
		return end(StepEnd{Status: StepSkipped, Outcome: "skipped", Message: reason})
	}

	if step.Approval != nil {
		decision, err := r.awaitApproval(ctx, run, step, scope)
		if err != nil {
			return playbooks.StepState{}, err
		}
		if decision.Decision == Denied {
			return end(StepEnd{Status: StepDenied, Outcome: "denied", Message: fmt.Sprintf("denied by %s via %s", decision.DecidedBy, decision.Via), Error: fmt.Sprintf("step %s was denied by %s", step.ID, decision.DecidedBy)})
		}
	}

	action, ok := r.cfg.Registry.Lookup(step.Action)
	if !ok {
		return end(StepEnd{Status: StepFailed, Outcome: "failed", Error: fmt.Sprintf("action %s is not in this build of stanch", step.Action)})
	}
	with, err := step.Params(scope)
	if err != nil {
		return end(StepEnd{Status: StepFailed, Outcome: "failed", Error: err.Error()})
	}
	params, err := action.Decode(with)
	if err != nil {
		return end(StepEnd{Status: StepFailed, Outcome: "failed", Error: fmt.Sprintf("step %s: %v", step.ID, err)})
	}

	spec := action.Spec()
	var lastErr error
	attempt := 0
	for {
		var stepStarted time.Time
		attempt, stepStarted, err = r.store.BeginAttempt(ctx, run.ID, step.ID, seq, step.Action)
		if err != nil {
			return playbooks.StepState{}, err
		}
		if attempt > step.Retry.Attempts {
			// Earlier attempts died with their process; do not start more
			// than the playbook allows.
			msg := fmt.Sprintf("step %s used all %d attempts", step.ID, step.Retry.Attempts)
			if lastErr != nil {
				msg += ": " + lastErr.Error()
			}
			return end(StepEnd{Attempt: attempt - 1, Status: StepFailed, Outcome: "failed", Error: msg})
		}
		r.emit(Event{Kind: EventStepStarted, RunID: run.ID, StepID: step.ID, Action: step.Action, Attempt: attempt})
		started := time.Now()
		res, err := r.doAttempt(ctx, run, step, action, params, attempt, stepStarted)
		if err == nil {
			crashpoint.Hit("done:" + step.ID) // the effect happened; the journal does not know yet
			outputs := publicOutputs(spec, res.Outputs)
			outcome := string(res.Outcome)
			if outcome == "" {
				outcome = string(actions.Done)
			}
			log.Info("step succeeded", "step", step.ID, "action", step.Action, "attempt", attempt, "outcome", outcome, "took", time.Since(started))
			st, err := end(StepEnd{Attempt: attempt, Status: StepSucceeded, Outcome: outcome, Message: res.Message, Outputs: outputs})
			// Secret outputs reach later steps of this execution only.
			st.Outputs = res.Outputs
			return st, err
		}
		lastErr = err
		if ctx.Err() != nil {
			return playbooks.StepState{}, ctx.Err() // shutting down: the job resumes later
		}
		kind := actions.KindOf(err)
		if kind == actions.KindPermanent || attempt >= step.Retry.Attempts {
			log.Warn("step failed", "step", step.ID, "action", step.Action, "attempt", attempt, "kind", kind.String(), "error", alert.RedactText(err.Error()))
			return end(StepEnd{Attempt: attempt, Status: StepFailed, Outcome: "failed", Error: fmt.Sprintf("%s (%s, attempt %d of %d)", err, kind, attempt, step.Retry.Attempts)})
		}
		wait := backoff(step.Retry, attempt)
		if err := r.store.AttemptFailed(ctx, run.ID, step.ID, attempt, err, wait); err != nil {
			return playbooks.StepState{}, err
		}
		r.emit(Event{Kind: EventStepRetrying, RunID: run.ID, StepID: step.ID, Action: step.Action, Attempt: attempt, Error: err.Error(), Duration: wait})
		select {
		case <-ctx.Done():
			return playbooks.StepState{}, ctx.Err()
		case <-time.After(wait):
		}
	}
}

func (r *Runner) doAttempt(ctx context.Context, run Run, step *playbooks.Step, action actions.Action, params any, attempt int, stepStarted time.Time) (res actions.Result, err error) {
	actx, cancel := context.WithTimeout(ctx, step.Timeout)
	defer cancel()
	defer func() {
		// A panicking action must not take the run's journal down with it.
		if p := recover(); p != nil {
			err = actions.Permanent(fmt.Errorf("action %s panicked: %v", step.Action, p))
		}
	}()
	env := actions.Env{
		RunID:          run.ID,
		StepID:         step.ID,
		Attempt:        attempt,
		IdempotencyKey: run.ID + "/" + step.ID,
		StepStartedAt:  stepStarted,
		Progress: func(msg string) {
			r.emit(Event{Kind: EventStepProgress, RunID: run.ID, StepID: step.ID, Action: step.Action, Attempt: attempt, Message: msg})
		},
		Logger: r.log.With("run", run.ID, "step", step.ID, "action", step.Action),
		Report: func(ctx context.Context) (actions.Report, error) { return r.Report(ctx, run.ID) },
	}
	res, err = action.Do(actx, env, params)
	if err != nil && errors.Is(actx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		err = actions.Retryable(fmt.Errorf("step %s timed out after %s: %w", step.ID, step.Timeout, err))
	}
	return res, err
}

// awaitApproval returns the decision on a step's approval, deciding by the
// timeout policy once the deadline passes, or a *parked error while the
// decision is pending.
func (r *Runner) awaitApproval(ctx context.Context, run Run, step *playbooks.Step, scope playbooks.Scope) (Approval, error) {
	a, err := r.store.Approval(ctx, run.ID, step.ID)
	if errors.Is(err, ErrNotFound) {
		msg, merr := step.ApprovalMessage(scope)
		if merr != nil {
			msg = "approve step " + step.ID + "? (message failed: " + merr.Error() + ")"
		}
		req := ApprovalRequest{Approvers: step.Approval.Approvers, Message: msg, Deadline: r.cfg.Now().Add(step.Approval.Timeout), Channel: step.Approval.Channel}
		if e := step.Approval.Escalate; e != nil {
			req.Escalation = &Escalation{Channel: e.Channel, Approvers: e.Approvers, Timeout: e.Timeout}
		}
		a, err = r.store.RequestApproval(ctx, run.ID, step.ID, req)
		if err != nil {
			return Approval{}, err
		}
		r.emit(Event{Kind: EventStepWaiting, RunID: run.ID, StepID: step.ID, Action: step.Action, Message: a.Message, Deadline: a.Deadline})
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
			r.notify(ctx, run, "approval/"+step.ID+"/escalated")
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
	a, first, err := r.store.Decide(ctx, run.ID, step.ID, decision, "timeout", "timeout")
	if first {
		r.notify(ctx, run, "approval/"+step.ID+"/decided")
	}
	return a, err
}

// backoff is the exponential delay before attempt+1, with jitter so that
// many runs throttled together do not retry together.
func backoff(p playbooks.Retry, attempt int) time.Duration {
	d := p.Backoff << (attempt - 1)
	if d <= 0 || (p.MaxBackoff > 0 && d > p.MaxBackoff) {
		d = p.MaxBackoff
	}
	if d <= 0 {
		return 0
	}
	half := d / 2
	return half + rand.N(half+1)
}

// publicOutputs drops outputs the action declares secret and redacts
// secret-looking text, so that nothing secret reaches the store.
func publicOutputs(spec actions.Spec, outputs map[string]any) map[string]any {
	secret := map[string]bool{}
	for _, o := range spec.Outputs {
		if o.Secret {
			secret[o.Name] = true
		}
	}
	out := make(map[string]any, len(outputs))
	for k, v := range outputs {
		if secret[k] {
			continue
		}
		if s, ok := v.(string); ok {
			v = alert.RedactText(s)
		}
		out[k] = v
	}
	return out
}
