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
	// River keeps the error of every attempt in the store.
	return alert.RedactError(w.work(ctx, job))
}

func (w *runWorker) work(ctx context.Context, job *river.Job[RunArgs]) error {
	run, err := w.r.store.Run(ctx, job.Args.RunID)
	if err != nil {
		return err
	}
	if Terminal(run.Status) || run.Generation != job.Args.Generation {
		// Ended (cancelled, say) while this job waited, or retried since:
		// the job of the run's current generation works it.
		return nil
	}
	// Approvals wake the run through the job that parked it.
	if err := w.r.store.SetJob(ctx, run.ID, job.ID); err != nil {
		return err
	}
	err = w.r.advance(ctx, run, job.Args.Queue)
	if errors.Is(err, ErrRunEnded) {
		return nil // someone ended the run while this step ran
	}
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

// stops reports whether a step that ended with status ends the run: a
// failure unless its on_error is continue, a denial unless its approval's
// on_deny is skip (or its on_error continue).
func stops(step *playbooks.Step, status string) bool {
	switch {
	case step.OnError == playbooks.OnErrorContinue:
		return false
	case status == StepFailed:
		return true
	case status == StepDenied:
		return step.Approval == nil || step.Approval.OnDeny != playbooks.OnDenySkip
	}
	return false
}

func (r *Runner) advance(ctx context.Context, run Run, queue string) error {
	log := r.log.With("run", run.ID, "playbook", run.Playbook)
	pb, err := r.playbook(run)
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
	if err := r.begin(ctx, run, records); err != nil {
		return err
	}

	scope := pb.Scope(run.Alert, playbooks.RunInfo{ID: run.ID, Playbook: run.Playbook, StartedAt: run.CreatedAt})
	var failure *stepFailure
	for seq, step := range pb.Steps {
		if rec, ok := records[step.ID]; ok && stepFinished(rec.Status) {
			scope.Steps[step.ID] = playbooks.StepState{Status: rec.Status, Outcome: rec.Outcome, Outputs: rec.Outputs}
			if stops(step, rec.Status) {
				failure = &stepFailure{step: step.ID, err: rec.Error}
				break
			}
			continue
		}
		// People may cancel a run between two steps; the step in flight
		// when they did finished, and nothing more starts.
		if now, err := r.store.Run(ctx, run.ID); err != nil {
			return err
		} else if Terminal(now.Status) || now.Generation != run.Generation {
			return nil
		}
		if a, ok := r.cfg.Registry.Lookup(step.Action); ok && a.Spec().Slow && queue != QueueInvestigation {
			// Hand the rest of the run to the investigation workers; this
			// containment worker is free for the next alert.
			// Marked first, so that the next worker, which may start at
			// once, knows nothing died.
			if err := r.store.UpdateRun(ctx, run.ID, RunUpdate{Status: RunRunning, Handoff: handoffMoved, Event: "run_moved", Detail: "to the investigation queue for step " + step.ID}); err != nil {
				return err
			}
			return r.enqueueOn(ctx, run, QueueInvestigation)
		}
		if step.Delay > 0 {
			due, err := r.store.DelayStep(ctx, run.ID, step.ID, seq, step.Action, r.cfg.Now().Add(step.Delay))
			if err != nil {
				return err
			}
			if wait := due.Sub(r.cfg.Now()); wait > 0 {
				if err := r.store.UpdateRun(ctx, run.ID, RunUpdate{Status: RunRunning, Handoff: handoffDelayed}); err != nil {
					return err
				}
				// Sleep without holding a worker; River wakes the job.
				r.emit(Event{Kind: EventStepDelayed, RunID: run.ID, StepID: step.ID, Action: step.Action, Deadline: due})
				return river.JobSnooze(wait)
			}
		}
		crashpoint.Hit("before:" + step.ID)
		st, err := r.runStep(ctx, log, &run, seq, step, scope)
		var park *parked
		if errors.As(err, &park) {
			if err := r.store.UpdateRun(ctx, run.ID, RunUpdate{Status: RunWaitingApproval, WaitingStep: step.ID, Event: "run_waiting_approval", Detail: "step " + step.ID}); err != nil {
				return err
			}
			// A decision that landed while this job was still running could
			// not wake it; look once more before sleeping.
			if a, err := r.store.Approval(ctx, run.ID, step.ID); err == nil && a.Decision != "" {
				again, err := r.store.Run(ctx, run.ID)
				if err != nil {
					return err
				}
				return r.advance(ctx, again, queue)
			}
			r.emit(Event{Kind: EventRunParked, RunID: run.ID, StepID: step.ID, Status: RunWaitingApproval, Deadline: park.deadline})
			return river.JobSnooze(max(time.Until(park.deadline), time.Second))
		}
		if err != nil {
			return err // store trouble: River retries the job, finished steps stay finished
		}
		crashpoint.Hit("after:" + step.ID)
		scope.Steps[step.ID] = st
		if st.Status == StepSucceeded && r.containedBy(pb, seq, scope) {
			r.emit(Event{Kind: EventRunContained, RunID: run.ID, StepID: step.ID, Action: step.Action, Playbook: run.Playbook, Source: run.Alert.Source,
				Duration: max(r.cfg.Now().Sub(run.Alert.ReceivedAt), 0)})
		}
		if stops(step, st.Status) {
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

// Values of Run.Handoff.
const (
	handoffMoved   = "moved"
	handoffDelayed = "delayed"
)

// begin marks the run running and journals how it got there: started,
// continued after a decision or a deliberate handoff, or resumed because the
// process working it died.
func (r *Runner) begin(ctx context.Context, run Run, records map[string]StepRecord) error {
	var u RunUpdate
	kind, detail := EventRunStarted, ""
	switch {
	case run.Status == RunPending && run.Generation > 0:
		u = RunUpdate{Event: "run_started", Detail: fmt.Sprintf("started again (retry %d)", run.Generation)}
		detail = u.Detail
	case run.Status == RunPending:
		u = RunUpdate{Event: "run_started", Detail: "started"}
	case run.Status == RunWaitingApproval:
		kind, detail = EventRunContinued, "after the decision on step "+run.WaitingStep
		u = RunUpdate{Event: "run_continued", Detail: detail}
	case run.Handoff != "":
		// Picked up where a worker deliberately left it: nothing died.
		kind = EventRunContinued
	case len(records) > 0:
		kind, detail = EventRunResumed, "after the process running it stopped"
		u = RunUpdate{Event: "run_resumed", Detail: detail}
	}
	if run.Status != RunRunning || run.Handoff != "" || u.Event != "" {
		u.Status = RunRunning
		if err := r.store.UpdateRun(ctx, run.ID, u); err != nil {
			return err
		}
	}
	r.emit(Event{Kind: kind, RunID: run.ID, Message: detail})
	return nil
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
	r.emit(Event{Kind: EventRunFinished, RunID: run.ID, Status: status, StepID: failedStep, Error: errText, Playbook: run.Playbook})
	r.notify(ctx, run, "finished")
	return nil
}

// parked says a step waits for approval until deadline.
type parked struct{ deadline time.Time }

func (p *parked) Error() string { return "waiting for approval" }

// runStep executes one step to a final state, which it records. It returns
// a *parked error when the step waits for approval, and other errors only
// for store failures. A step that finds who owns the credential sets
// run.Owner for the steps after it.
func (r *Runner) runStep(ctx context.Context, log *slog.Logger, run *Run, seq int, step *playbooks.Step, scope playbooks.Scope) (playbooks.StepState, error) {
	var ran time.Time // when this process began the step's first attempt
	end := func(e StepEnd) (playbooks.StepState, error) {
		e.Seq, e.Action = seq, step.Action
		if err := r.store.FinishStep(ctx, run.ID, step.ID, e); err != nil {
			return playbooks.StepState{}, err
		}
		kind := map[string]EventKind{StepSucceeded: EventStepSucceeded, StepFailed: EventStepFailed, StepSkipped: EventStepSkipped, StepDenied: EventStepDenied}[e.Status]
		var took time.Duration
		if !ran.IsZero() {
			took = time.Since(ran)
		}
		r.emit(Event{Kind: kind, RunID: run.ID, StepID: step.ID, Action: step.Action, Attempt: e.Attempt, Outcome: e.Outcome, Message: e.Message, Error: e.Error, Duration: took})
		r.notify(ctx, *run, "")
		return playbooks.StepState{Status: e.Status, Outcome: e.Outcome, Outputs: e.Outputs}, nil
	}
	fail := func(msg string) (playbooks.StepState, error) {
		return end(StepEnd{Status: StepFailed, Outcome: "failed", Error: msg})
	}

	ok, reason, err := step.Enabled(scope)
	if err != nil {
		return fail(err.Error())
	}
	if !ok {
		return end(StepEnd{Status: StepSkipped, Outcome: "skipped", Message: reason})
	}
	// Parameters before any approval: nobody is asked about a step that
	// cannot run, and approvers see what it would do.
	action, params, err := r.stepParams(step, scope, run.Owner)
	if err != nil {
		return fail(err.Error())
	}

	if step.Approval != nil {
		decision, err := r.awaitApproval(ctx, *run, step, scope, action, params)
		var settled *settledPlan
		switch {
		case errors.As(err, &settled):
			return end(StepEnd{Status: StepSucceeded, Outcome: string(settled.outcome), Message: "no approval asked: " + settled.summary})
		case err != nil:
			return playbooks.StepState{}, err
		case decision.Decision == Denied && !stops(step, StepDenied):
			return end(StepEnd{Status: StepDenied, Outcome: "denied", Message: fmt.Sprintf("denied by %s via %s; the run goes on without it (on_deny: skip)", decision.DecidedBy, decision.Via)})
		case decision.Decision == Denied:
			return end(StepEnd{Status: StepDenied, Outcome: "denied", Message: fmt.Sprintf("denied by %s via %s", decision.DecidedBy, decision.Via), Error: fmt.Sprintf("step %s was denied by %s", step.ID, decision.DecidedBy)})
		}
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
		if ran.IsZero() {
			ran = started
		}
		res, err := r.doAttempt(ctx, *run, step, action, params, attempt, stepStarted)
		if err == nil {
			crashpoint.Hit("done:" + step.ID) // the effect happened; the journal does not know yet
			outputs := publicOutputs(spec, res.Outputs)
			outcome := string(res.Outcome)
			if outcome == "" {
				outcome = string(actions.Done)
			}
			if res.Owner != nil {
				owner := *res.Owner
				owner.By = step.ID
				if run.Owner.Known() && (owner.Account != run.Owner.Account || owner.User != run.Owner.User || owner.Role != run.Owner.Role) {
					return fail(fmt.Sprintf("step %s found that %s belongs to %s, but step %s found %s belongs to %s; nothing more is done until people look: one run acts on one owner",
						step.ID, owner.Credential, owner, run.Owner.By, run.Owner.Credential, run.Owner))
				}
				res.Owner, run.Owner = &owner, owner
			}
			log.Info("step succeeded", "step", step.ID, "action", step.Action, "attempt", attempt, "outcome", outcome, "took", time.Since(started))
			st, err := end(StepEnd{Attempt: attempt, Status: StepSucceeded, Outcome: outcome, Message: res.Message, Outputs: outputs, Owner: res.Owner})
			// Secret outputs reach later steps of this execution only.
			st.Outputs = res.Outputs
			return st, err
		}
		lastErr = err
		if ctx.Err() != nil {
			return playbooks.StepState{}, ctx.Err() // shutting down: the job resumes later
		}
		if api, ok := actions.APIErrorOf(err); ok {
			r.emit(Event{Kind: EventStepAPIError, RunID: run.ID, StepID: step.ID, Action: step.Action, Attempt: attempt, API: api})
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

// env is what an action is told about the step it runs in.
func (r *Runner) env(run Run, step *playbooks.Step, attempt int, stepStarted time.Time) actions.Env {
	return actions.Env{
		RunID:          run.ID,
		StepID:         step.ID,
		Attempt:        attempt,
		IdempotencyKey: run.ID + "/" + step.ID,
		StepStartedAt:  stepStarted,
		Owner:          run.Owner,
		Logger:         r.log.With("run", run.ID, "step", step.ID, "action", step.Action),
		Report:         func(ctx context.Context) (actions.Report, error) { return r.Report(ctx, run.ID) },
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
	env := r.env(run, step, attempt, stepStarted)
	env.Progress = func(msg string) {
		r.emit(Event{Kind: EventStepProgress, RunID: run.ID, StepID: step.ID, Action: step.Action, Attempt: attempt, Message: msg})
	}
	env.Effect = func(e actions.Effect) {
		// Journalled at once, outside the step's own record: an effect
		// made by an attempt that then dies is still on record.
		if err := r.store.Effect(context.WithoutCancel(ctx), run.ID, step.ID, attempt, e); err != nil {
			r.log.Warn("could not journal an effect", "run", run.ID, "step", step.ID, "error", err)
		}
		r.emit(Event{Kind: EventStepEffect, RunID: run.ID, StepID: step.ID, Action: step.Action, Attempt: attempt, Message: e.String()})
	}
	res, err = action.Do(actx, env, params)
	if err != nil && errors.Is(actx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		err = actions.Retryable(fmt.Errorf("step %s timed out after %s: %w", step.ID, step.Timeout, err))
	}
	return res, err
}

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
	a, first, err := r.store.Decide(ctx, run.ID, step.ID, decision, "timeout", "timeout")
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
	return action.Plan(pctx, r.env(run, step, 1, r.cfg.Now()), params)
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
