package runner

import (
	"context"
	"time"

	"github.com/riverqueue/river"
)

// A decision wakes its run's sleeping job at once (see Decide). Two things
// can keep that from happening: the process that recorded the decision
// died before it could wake the job, or the job was still finishing its
// last look when the decision landed and did not settle in time. The
// sweep, a periodic job, wakes every run that waits on a step already
// decided, so such a run resumes within seconds rather than at its
// approval deadline.

// sweepEvery is how often decided approvals are looked for.
const sweepEvery = 2 * time.Second

// SweepArgs is the periodic job that wakes decided runs.
type SweepArgs struct{}

// Kind is the job kind stored by River.
func (SweepArgs) Kind() string { return "stanch.sweep" }

// InsertOpts keeps the sweep off the containment queue; one at a time.
func (SweepArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueNotify, MaxAttempts: 1, UniqueOpts: river.UniqueOpts{ByArgs: true, ByPeriod: sweepEvery}}
}

type sweepWorker struct {
	river.WorkerDefaults[SweepArgs]
	r *Runner
}

func (w *sweepWorker) Work(ctx context.Context, _ *river.Job[SweepArgs]) error {
	// Decisions younger than a second are still being acted on by
	// whoever recorded them.
	runs, err := w.r.store.decidedButWaiting(ctx, w.r.cfg.Now().Add(-time.Second))
	if err != nil {
		return err
	}
	for _, run := range runs {
		w.r.log.Info("waking a run whose approval was decided", "run", run.ID, "step", run.WaitingStep)
		if run.JobID == 0 {
			if err := w.r.enqueue(ctx, run); err != nil {
				return err
			}
			continue
		}
		if _, err := w.r.client.JobRetry(ctx, run.JobID); err != nil {
			return err
		}
	}
	return nil
}
