package runner

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// River wakes the workers of a queue when a job is inserted outside a
// transaction: in this process on SQLite (embedded.go), through NOTIFY on
// PostgreSQL. Jobs that become available otherwise wake nobody, and wait
// for the workers' poll: jobs stanch commits inside a transaction of its
// own (an alert's runs with their jobs, a deferred alert), and sleeping
// jobs woken with JobRetry (a decision, a cancelled run). For those the
// waker inserts one such job again, outside a transaction. The jobs it is
// given are unique and exist, so River skips the insert as a duplicate and
// only wakes the workers of the job's queue, who then fetch everything
// available there.
type waker struct {
	r *Runner
	// running is set while loop runs; a runner that does not work the
	// store (stanch approve beside stanch serve) wakes nobody: the
	// workers are another process's, and their poll finds the job.
	running atomic.Bool
	mu      sync.Mutex
	// pending holds one job per queue to insert again: one is enough.
	pending map[string]river.JobArgs
	kick    chan struct{}
}

func newWaker(r *Runner) *waker {
	return &waker{r: r, pending: map[string]river.JobArgs{}, kick: make(chan struct{}, 1)}
}

// wake has the workers of args' queue look for jobs at once. args must be
// those of a unique job that exists.
func (w *waker) wake(args river.JobArgs) {
	if !w.running.Load() {
		return
	}
	queue := QueueContainment
	if o, ok := args.(river.JobArgsWithInsertOpts); ok && o.InsertOpts().Queue != "" {
		queue = o.InsertOpts().Queue
	}
	w.mu.Lock()
	w.pending[queue] = args
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default: // a wake is already due; it takes this one along
	}
}

// start makes wake work; loop then inserts the pending jobs again until
// ctx ends.
func (w *waker) start() { w.running.Store(true) }

func (w *waker) loop(ctx context.Context) {
	defer w.running.Store(false)
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.kick:
		}
		w.mu.Lock()
		jobs := make([]river.InsertManyParams, 0, len(w.pending))
		for _, args := range w.pending {
			jobs = append(jobs, river.InsertManyParams{Args: args})
		}
		clear(w.pending)
		w.mu.Unlock()
		if len(jobs) == 0 {
			continue
		}
		if _, err := w.r.client.InsertMany(ctx, jobs); err != nil && ctx.Err() == nil {
			w.r.log.Warn("could not wake the workers; they will find their jobs at their next poll", "error", err)
		}
	}
}

// wakeJob makes a run's sleeping job available now and has a worker take
// it at once. A job still running is left alone by River: its state says
// so.
func (r *Runner) wakeJob(ctx context.Context, jobID int64) (rivertype.JobState, error) {
	job, err := r.client.JobRetry(ctx, jobID)
	if err != nil {
		return "", err
	}
	r.wakeFor(job)
	return job.State, nil
}

// wakeFor wakes the workers for a run job that became available without an
// insert (JobRetry, or its sleep ended). Other jobs are left to the
// workers' poll: only run jobs are unique over every state, so only they
// can be inserted again without risk of a second job.
func (r *Runner) wakeFor(job *rivertype.JobRow) {
	if job.State != rivertype.JobStateAvailable || job.Kind != (RunArgs{}).Kind() {
		return
	}
	var args RunArgs
	if err := json.Unmarshal(job.EncodedArgs, &args); err == nil {
		r.waker.wake(args)
	}
}
