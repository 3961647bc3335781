package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

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
// worker until a decision wakes it or the approval times out, or to a step
// that waits for its delay or its next attempt, where it sleeps until due.
func (w *runWorker) Work(ctx context.Context, job *river.Job[RunArgs]) error {
	// River keeps the error of every attempt in the store.
	return alert.RedactError(w.work(ctx, job))
}

func (w *runWorker) work(ctx context.Context, job *river.Job[RunArgs]) error {
	run, err := w.r.store.Run(ctx, job.Args.RunID)
	if err != nil {
		return err
	}
	if Terminal(run.Status) || run.Generation != job.Args.Generation || run.Takeover != job.Args.Takeover {
		// Ended (cancelled, say) while this job waited, retried since, or
		// taken over from a replica thought dead: the run's current job
		// works it.
		if Terminal(run.Status) {
			w.r.attemptClock.forget(run.ID) // cancelled between two attempts
		}
		return nil
	}
	ctx, release, t, held := w.r.leased(ctx)
	defer release()
	if !held {
		// The lease lapsed and this replica is joining again: hand the
		// job to a replica that has one.
		return river.JobSnooze(time.Second)
	}
	if t != nil {
		ctx = withFence(ctx, fence{run: run.ID, takeover: run.Takeover, replica: w.r.member.id, term: t})
	}
	// Approvals wake the run through the job that parked it.
	if err := w.r.store.SetJob(ctx, run.ID, job.ID); err != nil {
		return w.left(ctx, run, err)
	}
	err = w.r.advance(ctx, run, job.Args.Queue)
	if errors.Is(err, ErrRunEnded) {
		return nil // someone ended the run while this step ran
	}
	return w.left(ctx, run, err)
}

// left is what a pass that stopped with err tells River.
func (w *runWorker) left(ctx context.Context, run Run, err error) error {
	if errors.Is(err, ErrFenced) {
		// Another replica took the run over (this one was paused, or cut
		// off from the store): its job works the run; this one is over.
		w.r.log.Warn("run taken over by another replica; this pass stops", "run", run.ID)
		return nil
	}
	if err != nil && (ctx.Err() != nil || errors.Is(err, errLeaseLost)) {
		// Shutting down mid-run, or losing the lease, is not a failure:
		// make the job available to the next process at once, without
		// using up an attempt.
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
func stops(step *playbooks.Step, status StepStatus) bool {
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

// A pass over a run (one pickup of its job) reads as phases: load what the
// run has recorded, begin, then for each step not yet finished: check the
// run is still current, move it to the investigation queue before a slow
// step, sleep through a delay or until a retry is due, run the step (step.go),
// settle a step that waits (for approval, for its next attempt) and record
// one that ended; conclude once every step has.

// execution is what one pass knows about the run it advances.
type execution struct {
	run     Run
	queue   string
	pb      *playbooks.Playbook
	records map[string]StepRecord
	scope   playbooks.Scope
	log     *slog.Logger
	// failure is set once a step ended the run.
	failure *stepFailure
	// secrets is set once a step of this pass handed the steps after it
	// secret outputs, which only this pass's memory holds.
	secrets bool
}

func (r *Runner) advance(ctx context.Context, run Run, queue string) error {
	ex, err := r.load(ctx, run, queue)
	if ex == nil || err != nil {
		return err
	}
	if err := r.begin(ctx, ex.run, ex.records); err != nil {
		return err
	}
	for seq, step := range ex.pb.Steps {
		if ex.finishedBefore(step) {
			if ex.failure != nil {
				break
			}
			continue
		}
		if leave, err := r.stillCurrent(ctx, ex); leave {
			return err
		}
		if leave, err := r.moveIfSlow(ctx, ex, step); leave {
			return err
		}
		if leave, err := r.holdForDelay(ctx, ex, seq, step); leave {
			return err
		}
		if leave, err := r.holdForRetry(ctx, ex, step); leave {
			return err
		}
		crashpoint.Hit("before:" + step.ID)
		st, err := r.runStep(ctx, ex, seq, step)
		if err != nil {
			return r.settle(ctx, ex, step, err)
		}
		crashpoint.Hit("after:" + step.ID)
		r.record(ctx, ex, seq, step, st)
		if ex.failure != nil {
			break
		}
	}
	return r.conclude(ctx, ex)
}

// load reads what a pass needs: the run's playbook (parsed once per
// process) and its step records. A playbook that no longer loads ends the
// run; ex is then nil.
func (r *Runner) load(ctx context.Context, run Run, queue string) (*execution, error) {
	pb, err := r.playbook(run)
	if err != nil {
		// The playbook was valid when the run started; an action it uses is
		// gone from this build. Nothing can be done without a human.
		return nil, r.finish(ctx, run, RunFailed, "", fmt.Sprintf("playbook %s no longer loads: %v", run.Playbook, err))
	}
	records, err := r.store.Steps(ctx, run.ID)
	if err != nil {
		return nil, err
	}
	run.notify = r.cfg.Notifier != nil && r.cfg.Notifier.Wants(pb)
	return &execution{
		run: run, queue: queue, pb: pb, records: records,
		scope: pb.Scope(run.Alert, playbooks.RunInfo{ID: run.ID, Playbook: run.Playbook, StartedAt: run.CreatedAt}),
		log:   r.log.With("run", run.ID, "playbook", run.Playbook),
	}, nil
}

// finishedBefore reports whether an earlier pass finished the step; its
// outcome and stored outputs then go to the scope of the steps after it.
func (ex *execution) finishedBefore(step *playbooks.Step) bool {
	rec, ok := ex.records[step.ID]
	if !ok || !stepFinished(rec.Status) {
		return false
	}
	ex.scope.Steps[step.ID] = playbooks.StepState{Status: string(rec.Status), Outcome: rec.Outcome, Outputs: rec.Outputs}
	if stops(step, rec.Status) {
		ex.failure = &stepFailure{step: step.ID, err: rec.Error}
	}
	return true
}

// The phases between two steps return leave when the pass ends there, with
// the error for River: nil, a snooze, or trouble with the store.

// stillCurrent: people may cancel a run between two steps; the step in
// flight when they did finished, and nothing more starts. A run retried
// since belongs to the job of its new generation.
func (r *Runner) stillCurrent(ctx context.Context, ex *execution) (leave bool, err error) {
	now, err := r.store.Run(ctx, ex.run.ID)
	if err != nil {
		return true, err
	}
	return Terminal(now.Status) || now.Generation != ex.run.Generation || now.Takeover != ex.run.Takeover, nil
}

// moveIfSlow hands the rest of the run to the investigation workers before
// a slow step; this containment worker is free for the next alert.
func (r *Runner) moveIfSlow(ctx context.Context, ex *execution, step *playbooks.Step) (leave bool, err error) {
	a, ok := r.cfg.Registry.Lookup(step.Action)
	if !ok || !a.Spec().Slow || ex.queue == QueueInvestigation {
		return false, nil
	}
	// Marked first, so that the next worker, which may start at once,
	// knows nothing died.
	if err := r.store.UpdateRun(ctx, ex.run.ID, RunUpdate{Status: RunRunning, Handoff: handoffMoved, Event: "run_moved", Detail: "to the investigation queue for step " + step.ID}); err != nil {
		return true, err
	}
	return true, r.enqueueOn(ctx, ex.run, QueueInvestigation)
}

// holdForDelay sleeps, without holding a worker, until a delayed step is
// due; River wakes the job. The delay is recorded once, so a resumed run
// keeps its schedule; a step whose attempts began is past its delay.
func (r *Runner) holdForDelay(ctx context.Context, ex *execution, seq int, step *playbooks.Step) (leave bool, err error) {
	if step.Delay <= 0 || ex.records[step.ID].Attempts > 0 {
		return false, nil
	}
	due, err := r.store.DelayStep(ctx, ex.run.ID, step.ID, seq, step.Action, r.cfg.Now().Add(step.Delay))
	if err != nil {
		return true, err
	}
	wait := due.Sub(r.cfg.Now())
	if wait <= 0 {
		return false, nil
	}
	if err := r.store.UpdateRun(ctx, ex.run.ID, RunUpdate{Status: RunRunning, Handoff: handoffDelayed}); err != nil {
		return true, err
	}
	r.emit(Event{Kind: EventStepDelayed, RunID: ex.run.ID, StepID: step.ID, Action: step.Action, Deadline: due})
	return true, river.JobSnooze(wait)
}

// holdForRetry sends the job back to sleep when it woke before the next
// attempt of a step that failed is due.
func (r *Runner) holdForRetry(ctx context.Context, ex *execution, step *playbooks.Step) (leave bool, err error) {
	rec := ex.records[step.ID]
	if rec.Attempts == 0 {
		return false, nil
	}
	wait := rec.NotBefore.Sub(r.cfg.Now())
	if wait <= 0 {
		return false, nil
	}
	return true, r.sleepUntilRetry(ctx, ex.run, wait)
}

// settle ends a pass at a step that did not end: it waits for approval, or
// for its next attempt; any other error is the store's, and River retries
// the job (finished steps stay finished).
func (r *Runner) settle(ctx context.Context, ex *execution, step *playbooks.Step, err error) error {
	var park *parked
	var retry *retryDue
	switch {
	case errors.As(err, &park):
		return r.park(ctx, ex, step, park.deadline)
	case errors.As(err, &retry):
		return r.sleepUntilRetry(ctx, ex.run, retry.wait)
	}
	return err
}

// park marks the run waiting for a step's approval and sleeps until the
// deadline; a decision wakes the job sooner.
func (r *Runner) park(ctx context.Context, ex *execution, step *playbooks.Step, deadline time.Time) error {
	if err := r.store.UpdateRun(ctx, ex.run.ID, RunUpdate{Status: RunWaitingApproval, WaitingStep: step.ID, Event: "run_waiting_approval", Detail: "step " + step.ID}); err != nil {
		return err
	}
	// A decision that landed while this job was still running could not
	// wake it; look once more before sleeping.
	if a, err := r.store.Approval(ctx, ex.run.ID, step.ID); err == nil && a.Decision != "" {
		again, err := r.store.Run(ctx, ex.run.ID)
		if err != nil {
			return err
		}
		return r.advance(ctx, again, ex.queue)
	}
	r.emit(Event{Kind: EventRunParked, RunID: ex.run.ID, StepID: step.ID, Status: RunWaitingApproval, Deadline: deadline})
	return river.JobSnooze(max(time.Until(deadline), time.Second))
}

// sleepUntilRetry sleeps until a step's next attempt is due, without
// holding a worker: the run stays running, marked first so that the next
// pass, here or in another process, knows nothing died. Workers are woken
// when the job is due (snooze.go).
func (r *Runner) sleepUntilRetry(ctx context.Context, run Run, wait time.Duration) error {
	if err := r.store.UpdateRun(ctx, run.ID, RunUpdate{Status: RunRunning, Handoff: handoffRetrying}); err != nil {
		return err
	}
	return river.JobSnooze(wait)
}

// record adds a step that ended in this pass to the scope of the steps
// after it, tells observers when it contained the credential, and notes
// when it ended the run.
func (r *Runner) record(ctx context.Context, ex *execution, seq int, step *playbooks.Step, st playbooks.StepState) {
	ex.scope.Steps[step.ID] = st
	if StepStatus(st.Status) == StepSucceeded && r.containedBy(ex.pb, seq, ex.scope) {
		r.emit(Event{Kind: EventRunContained, RunID: ex.run.ID, StepID: step.ID, Action: step.Action, Playbook: ex.run.Playbook, Source: ex.run.Alert.Source,
			Duration: max(r.cfg.Now().Sub(ex.run.Alert.ReceivedAt), 0)})
	}
	if a, ok := r.cfg.Registry.Lookup(step.Action); ok && holdsSecrets(a.Spec(), st.Outputs) {
		ex.secrets = true
	}
	if stops(step, StepStatus(st.Status)) {
		ex.failure = &stepFailure{step: step.ID, err: r.stepRecordError(ctx, ex.run.ID, step.ID)}
	}
}

// conclude ends the run: succeeded, or failed (cancelled, for a denial) at
// the step that stopped it.
func (r *Runner) conclude(ctx context.Context, ex *execution) error {
	if ex.failure == nil {
		return r.finish(ctx, ex.run, RunSucceeded, "", "")
	}
	status := RunFailed
	if StepStatus(ex.scope.Steps[ex.failure.step].Status) == StepDenied {
		status = RunCancelled
	}
	return r.finish(ctx, ex.run, status, ex.failure.step, ex.failure.err)
}

// Values of Run.Handoff.
const (
	handoffMoved   = "moved"
	handoffDelayed = "delayed"
	// handoffRetrying: the job sleeps until a step's next attempt is due.
	handoffRetrying = "retrying"
)

// begin marks the run running and journals how it got there: started,
// continued after a decision or a deliberate handoff, or resumed because the
// process working it died. A run back for a step's next attempt goes on
// quietly: the step's own events say so.
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
	case run.Handoff == handoffRetrying:
		kind = ""
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
	if kind != "" {
		r.emit(Event{Kind: kind, RunID: run.ID, Message: detail})
	}
	return nil
}

func (r *Runner) stepRecordError(ctx context.Context, runID, stepID string) string {
	recs, err := r.store.Steps(ctx, runID)
	if err != nil {
		return ""
	}
	return recs[stepID].Error
}

func (r *Runner) finish(ctx context.Context, run Run, status RunStatus, failedStep, errText string) error {
	detail := string(status)
	if failedStep != "" {
		detail = fmt.Sprintf("%s at step %s: %s", status, failedStep, errText)
	}
	if err := r.store.UpdateRun(ctx, run.ID, RunUpdate{Status: status, FailedStep: failedStep, Error: errText, Event: "run_" + string(status), Detail: detail}); err != nil {
		return err
	}
	r.emit(Event{Kind: EventRunFinished, RunID: run.ID, Status: status, StepID: failedStep, Error: errText, Playbook: run.Playbook})
	r.notify(ctx, run, "finished")
	return nil
}
