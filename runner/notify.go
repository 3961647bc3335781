package runner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/stanchhq/stanch/playbooks"
)

// QueueNotify is where runs are shown to people (Slack messages): its
// workers are separate, so a slow or rate-limited chat service never delays
// containment.
const QueueNotify = "notify"

// Notifier shows runs to people and keeps what it shows in step with the
// store. Sync must be idempotent: it runs after every change that matters,
// again after crashes, and possibly twice for one change.
type Notifier interface {
	// Wants says whether runs of a playbook have anything to show; syncs
	// are only scheduled for those.
	Wants(pb *playbooks.Playbook) bool
	Sync(ctx context.Context, runID string) error
}

// RetryAfter is implemented by errors of a Notifier that was told by the
// service to come back later (Slack's 429 Retry-After): the sync sleeps
// that long instead of counting a failed attempt.
type RetryAfter interface {
	RetryAfter() time.Duration
}

// NotifyArgs is the job that syncs a run's messages. Event names a moment
// that must be shown (an approval requested, escalated or decided, the run
// finished): those jobs are inserted once each. Progress (Event empty) is
// coalesced: while one progress sync waits, more changes add nothing.
type NotifyArgs struct {
	RunID string `json:"run_id"`
	Event string `json:"event,omitempty"`
}

// Kind is the job kind stored by River.
func (NotifyArgs) Kind() string { return "stanch.notify" }

// InsertOpts coalesces progress syncs and makes event syncs once-only.
func (a NotifyArgs) InsertOpts() river.InsertOpts {
	if a.Event != "" {
		return onceEver(QueueNotify)
	}
	return river.InsertOpts{
		Queue:       QueueNotify,
		MaxAttempts: 10,
		UniqueOpts: river.UniqueOpts{
			ByArgs:  true,
			ByState: []rivertype.JobState{rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning, rivertype.JobStateScheduled},
		},
	}
}

// progressDelay gathers the steps that finish close together into one
// message update; chat services rate-limit updates.
const progressDelay = 250 * time.Millisecond

// notify schedules a sync of the run's messages. A failure is logged and
// not returned: the run goes on, and the next sync shows the change.
func (r *Runner) notify(ctx context.Context, run Run, event string) {
	if r.cfg.Notifier == nil || !run.notify {
		return
	}
	opts := &river.InsertOpts{}
	if event == "" {
		opts.ScheduledAt = r.cfg.Now().Add(progressDelay)
	}
	if _, err := r.client.Insert(ctx, NotifyArgs{RunID: run.ID, Event: generational(run, event)}, opts); err != nil {
		r.log.Warn("could not schedule a message update", "run", run.ID, "event", event, "error", err)
	}
}

// notifyAlways schedules a sync of a moment that must be shown whichever
// process applies it (a timeout, an escalation, a person's decision or a
// change of the run's course): the process that serves Slack shows it, even
// when this one has no notifier.
func (r *Runner) notifyAlways(ctx context.Context, run Run, event string) {
	if _, err := r.client.Insert(ctx, NotifyArgs{RunID: run.ID, Event: generational(run, event)}, nil); err != nil {
		r.log.Warn("could not schedule a message update", "run", run.ID, "event", event, "error", err)
	}
}

// generational names an event of the run's current generation: the same
// moment of a retried run (an approval decided again) is shown again,
// though event syncs are once-only.
func generational(run Run, event string) string {
	if event == "" || run.Generation == 0 {
		return event
	}
	return fmt.Sprintf("%s@%d", event, run.Generation)
}

type notifyWorker struct {
	river.WorkerDefaults[NotifyArgs]
	r *Runner
}

func (w *notifyWorker) Work(ctx context.Context, job *river.Job[NotifyArgs]) error {
	if w.r.cfg.Notifier == nil {
		return nil
	}
	err := w.r.cfg.Notifier.Sync(ctx, job.Args.RunID)
	var later RetryAfter
	if errors.As(err, &later) {
		return river.JobSnooze(max(later.RetryAfter(), time.Second))
	}
	if err != nil {
		w.r.log.Warn("message update failed; retrying", "run", job.Args.RunID, "event", job.Args.Event, "attempt", job.Attempt, "error", err)
	}
	return err
}
