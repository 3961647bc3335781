package runner

import (
	"context"
	"encoding/json"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// A run's job that snoozes for less than River's scheduler interval (five
// seconds) — a step's retry backoff, mostly, or a short delay — is made
// available at once, due at a time to come. Nothing wakes the workers when
// that time comes: they would find the job at their next poll, a second
// later on SQLite, and a throttled containment step would wait that long
// on top of its backoff. River reports each snooze once it is recorded, so
// the runner wakes the workers of the job's queue when the job is due
// (wake.go). Longer sleeps are River's scheduler's (keepHouse on SQLite),
// which wakes the workers itself.

// dueSlack is added to a job's due time before waking the workers: the
// store compares times at a coarser precision than the job's.
const dueSlack = 5 * time.Millisecond

// wakeWhenDue wakes the workers for each run job that snoozed available,
// when it is due, until ctx ends or snoozed closes.
func (r *Runner) wakeWhenDue(ctx context.Context, snoozed <-chan *river.Event) {
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-snoozed:
			if !ok {
				return
			}
			r.wakeAtDue(e.Job)
		}
	}
}

func (r *Runner) wakeAtDue(job *rivertype.JobRow) {
	if job == nil || job.State != rivertype.JobStateAvailable || job.Kind != (RunArgs{}).Kind() {
		return
	}
	var args RunArgs
	if err := json.Unmarshal(job.EncodedArgs, &args); err != nil {
		return
	}
	// After Stop, the waker wakes nobody: a timer left behind does nothing.
	time.AfterFunc(max(time.Until(job.ScheduledAt), 0)+dueSlack, func() { r.waker.wake(args) })
}
