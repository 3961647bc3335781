package runner

import (
	"context"
	"time"

	"github.com/riverqueue/river"
)

// A decision wakes its run's sleeping job at once (see Decide). Two things
// can keep that from happening: the process that recorded the decision
// died before it could wake the job (stanch approve, killed), or the job
// was still finishing its last look when the decision landed and did not
// settle in time. The sweep wakes every run that waits on a step already
// decided, so such a run resumes within seconds rather than at its
// approval deadline. Every process that works the store sweeps: a sweep
// that finds nothing is one indexed read, and writes nothing; waking a job
// twice (two replicas) is harmless.

// sweepEvery is how often decided approvals are looked for.
const sweepEvery = 2 * time.Second

func (r *Runner) sweepLoop(ctx context.Context) {
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := r.sweep(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("could not look for decided approvals", "error", err)
		}
		if r.afterSweep != nil {
			r.afterSweep()
		}
	}
}

// sweep wakes the runs that wait on a step already decided.
func (r *Runner) sweep(ctx context.Context) error {
	// Decisions younger than a second are still being acted on by
	// whoever recorded them.
	runs, err := r.store.decidedButWaiting(ctx, r.cfg.Now().Add(-time.Second))
	if err != nil {
		return err
	}
	for _, run := range runs {
		r.log.Info("waking a run whose approval was decided", "run", run.ID, "step", run.WaitingStep)
		if run.JobID == 0 {
			if err := r.enqueue(ctx, run); err != nil {
				return err
			}
			continue
		}
		if _, err := r.wakeJob(ctx, run.JobID); err != nil {
			return err
		}
	}
	return nil
}

// SweepArgs is the job older versions of stanch swept with, every two
// seconds; one may still be queued in a store they used.
type SweepArgs struct{}

// Kind is the job kind stored by River.
func (SweepArgs) Kind() string { return "stanch.sweep" }

// InsertOpts keeps the sweep off the containment queue.
func (SweepArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueNotify, MaxAttempts: 1}
}

type sweepWorker struct {
	river.WorkerDefaults[SweepArgs]
	r *Runner
}

func (w *sweepWorker) Work(ctx context.Context, _ *river.Job[SweepArgs]) error {
	return w.r.sweep(ctx)
}
