package runner

import (
	"context"
	"database/sql"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riversqlite"
)

// On the embedded SQLite store one process works the database: it holds the
// lock beside it (lock.go). River's machinery for several processes costs
// that one process all the time, idle or not: a leader elected again every
// five seconds (a write), notifications emulated through an outbox table
// that every insert writes to and every client reads every 50 ms, and
// maintenance that only the leader runs. So on SQLite River runs without
// leader election and without notifications; its workers are woken by this
// process when it gives them work (wake.go), they look for work other
// processes gave them every second (backstopPoll), and this process does
// the part of River's maintenance that the store needs (keepHouse). Idle,
// nothing is written. PostgreSQL keeps River's defaults: leader election
// across replicas, LISTEN/NOTIFY, River's own maintenance.

// localDriver is riversqlite for one process: it says it has no listener,
// so River neither writes notification rows nor polls for them, and wakes
// its own workers after every insert made outside a transaction.
type localDriver struct{ *riversqlite.Driver }

func (localDriver) SupportsListener() bool     { return false }
func (localDriver) SupportsListenNotify() bool { return false }

// backstopPoll is how often workers look for jobs nobody woke them for: jobs
// inserted or woken by another process (stanch ingest, stanch approve beside
// stanch serve), and jobs whose sleep ended.
const backstopPoll = time.Second

// Housekeeping intervals on SQLite. River's leader checks due jobs every
// five seconds; each check here is a read when nothing is due.
const (
	scheduleEvery = time.Second
	cleanEvery    = time.Hour
)

// Finished jobs are kept as long as River keeps them by default: run jobs
// are unique over completed ones too (onceEver), for that long.
const (
	keepCompleted = 24 * time.Hour
	keepCancelled = 24 * time.Hour
	keepDiscarded = 7 * 24 * time.Hour
)

// keepHouse does, on SQLite, the part of River's maintenance that the
// leader would do: make jobs whose sleep ended available, and delete old
// finished jobs (the pollers are scheduled by runPoller). River's rescuer
// is not needed: only a process that died leaves a job running, and the
// next one to take the lock resumes it at once (Start). It returns when ctx
// ends.
func (r *Runner) keepHouse(ctx context.Context, exec riverdriver.Executor) {
	clean := time.NewTicker(cleanEvery)
	defer clean.Stop()
	due := time.NewTicker(scheduleEvery)
	defer due.Stop()
	r.cleanJobs(ctx, exec)
	r.scheduleDue(ctx, exec)
	for {
		select {
		case <-ctx.Done():
			return
		case <-due.C:
			r.scheduleDue(ctx, exec)
		case <-clean.C:
			r.cleanJobs(ctx, exec)
		}
	}
}

// scheduleDue makes the jobs whose sleep ended available: approvals whose
// deadline passed, delayed steps that are due, retries. When none is due it
// only reads. The workers are woken for the runs among them; other jobs
// (message updates) wait for their poll.
func (r *Runner) scheduleDue(ctx context.Context, exec riverdriver.Executor) {
	const batch = 1000
	for {
		res, err := exec.JobSchedule(ctx, &riverdriver.JobScheduleParams{Max: batch})
		if err != nil {
			if ctx.Err() == nil {
				r.log.Warn("could not schedule due jobs", "error", err)
			}
			return
		}
		for _, s := range res {
			r.wakeFor(&s.Job)
		}
		if len(res) < batch {
			return
		}
	}
}

// cleanJobs deletes finished jobs River would have deleted by now.
func (r *Runner) cleanJobs(ctx context.Context, exec riverdriver.Executor) {
	const batch = 1000
	for {
		now := time.Now()
		n, err := exec.JobDeleteBefore(ctx, &riverdriver.JobDeleteBeforeParams{
			CompletedDoDelete: true, CompletedFinalizedAtHorizon: now.Add(-keepCompleted),
			CancelledDoDelete: true, CancelledFinalizedAtHorizon: now.Add(-keepCancelled),
			DiscardedDoDelete: true, DiscardedFinalizedAtHorizon: now.Add(-keepDiscarded),
			Max: batch,
		})
		if err != nil {
			if ctx.Err() == nil {
				r.log.Warn("could not delete old jobs", "error", err)
			}
			return
		}
		if n < batch {
			return
		}
	}
}

// runPoller enqueues a poller's job now and then every p.Every, as River's
// periodic jobs do with RunOnStart.
func (r *Runner) runPoller(ctx context.Context, name string, p Poller) {
	t := time.NewTicker(p.Every)
	defer t.Stop()
	for {
		if _, err := r.client.Insert(ctx, PollArgs{Poller: name}, nil); err != nil && ctx.Err() == nil {
			r.log.Warn("could not schedule a poll", "poller", name, "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// background runs the runner's own loops until Stop: the waker, the wake
// of short sleeps (snooze.go) and the sweep everywhere, and on SQLite the
// housekeeping and the pollers.
func (r *Runner) background() {
	ctx, cancel := context.WithCancel(context.Background())
	r.stopBackground = func() {
		cancel()
		r.loops.Wait()
	}
	r.waker.start()
	r.loops.Go(func() { r.waker.loop(ctx) })
	snoozed, unsubscribe := r.client.Subscribe(river.EventKindJobSnoozed)
	r.loops.Go(func() {
		defer unsubscribe()
		r.wakeWhenDue(ctx, snoozed)
	})
	r.loops.Go(func() { r.sweepLoop(ctx) })
	if r.cfg.DB.Dialect != SQLite {
		r.loops.Go(func() { r.reapLoop(ctx) })
		return
	}
	r.loops.Go(func() { r.keepHouse(ctx, r.exec) })
	for name, p := range r.cfg.Pollers {
		r.loops.Go(func() { r.runPoller(ctx, name, p) })
	}
}

var _ riverdriver.Driver[*sql.Tx] = localDriver{}
