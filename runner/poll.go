package runner

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"
)

// Poller is periodic work that feeds alerts in, such as the GitHub
// backstop that lists open secret-scanning alerts a missed webhook never
// delivered. On PostgreSQL it runs as a River periodic job, so with several
// replicas only the elected leader schedules it; on SQLite the one process
// that works the store schedules it (see runPoller).
type Poller struct {
	Every time.Duration
	// Poll runs on a worker; r is the runner to hand what it finds to.
	Poll func(ctx context.Context, r *Runner) error
}

// PollArgs is the periodic job of one poller.
type PollArgs struct {
	Poller string `json:"poller"`
}

// Kind is the job kind stored by River.
func (PollArgs) Kind() string { return "stanch.poll" }

// InsertOpts keeps polls off the containment queue and never stacks two.
func (PollArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueInvestigation, MaxAttempts: 3, UniqueOpts: river.UniqueOpts{ByArgs: true, ByPeriod: 30 * time.Second}}
}

type pollWorker struct {
	river.WorkerDefaults[PollArgs]
	r *Runner
}

func (w *pollWorker) Work(ctx context.Context, job *river.Job[PollArgs]) error {
	p, ok := w.r.cfg.Pollers[job.Args.Poller]
	if !ok {
		return river.JobCancel(fmt.Errorf("no poller %q in this build", job.Args.Poller))
	}
	if err := p.Poll(ctx, w.r); err != nil {
		w.r.log.Warn("poll failed", "poller", job.Args.Poller, "error", err)
		return err
	}
	return nil
}

func periodicJobs(pollers map[string]Poller) []*river.PeriodicJob {
	var jobs []*river.PeriodicJob
	for name, p := range pollers {
		jobs = append(jobs, river.NewPeriodicJob(river.PeriodicInterval(p.Every), func() (river.JobArgs, *river.InsertOpts) {
			return PollArgs{Poller: name}, nil
		}, &river.PeriodicJobOpts{RunOnStart: true}))
	}
	return jobs
}
