package runner

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/playbooks"
)

// QueueNotify is where runs are shown to people (Slack messages): its
// workers are separate, so a slow or rate-limited chat service never delays
// containment.
const QueueNotify = "notify"

// Notifier shows runs to people (Slack) and keeps what it shows in step
// with the runs. The runner hands it each run to show: the run's report,
// and the run's message records, in which it keeps what it posted (and,
// before each post, its intent to post). Sync must be idempotent: it runs
// after every change that matters, again after crashes, and possibly twice
// for one change.
type Notifier interface {
	// Wants says whether runs of a playbook have anything to show; syncs
	// are only scheduled for those.
	Wants(pb *playbooks.Playbook) bool
	// Sync brings what people are shown of a run in step with rep.
	Sync(ctx context.Context, rep actions.Report, msgs Messages) error
}

// Messages are the records of the messages posted about one run (or about
// one alert that started no run), which the runner keeps in its store and
// hands to whoever posts them. A record with an empty TS is an intent: the
// message may or may not have reached the channel.
type Messages interface {
	// Message returns the record under key, or an error wrapping
	// ErrNotFound.
	Message(ctx context.Context, key string) (Message, error)
	// SaveMessage records m under m.Key, replacing what was recorded but
	// keeping the time of the first record (PostedAt, the intent's).
	SaveMessage(ctx context.Context, m Message) error
}

// runMessages are the message records of one run.
type runMessages struct {
	store *Store
	runID string
}

func (m runMessages) Message(ctx context.Context, key string) (Message, error) {
	return m.store.Message(ctx, m.runID, key)
}

func (m runMessages) SaveMessage(ctx context.Context, msg Message) error {
	return m.store.SaveMessage(ctx, m.runID, msg)
}

// SyncMessages shows one run through n: it reads the run's report and
// hands it to n with the run's message records. The notify queue's jobs
// call it with the configured Notifier; a command that works one run calls
// it before it exits, so that what people see is where the run stands.
// Syncs of one run are serialised, in this process and, on PostgreSQL,
// across replicas, so that a rendering of an older report never lands
// after that of a newer one, and two replicas syncing at once do not both
// find a message missing and post it twice.
func (r *Runner) SyncMessages(ctx context.Context, n Notifier, runID string) error {
	defer r.syncs.lock(runID)()
	unlock, err := r.lockAcrossReplicas(ctx, "sync:"+runID)
	if err != nil {
		return err
	}
	defer unlock()
	rep, err := r.Report(ctx, runID)
	if err != nil {
		return err
	}
	return n.Sync(ctx, rep, runMessages{store: r.store, runID: runID})
}

// lockAcrossReplicas holds a PostgreSQL advisory lock named name until
// unlock is called: a transaction that only holds the lock, so that the
// work under it commits on its own. Nothing to do on SQLite, where one
// process works the store.
func (r *Runner) lockAcrossReplicas(ctx context.Context, name string) (unlock func(), err error) {
	if r.cfg.DB.Dialect != Postgres {
		return func() {}, nil
	}
	tx, err := r.cfg.DB.Pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, name); err != nil {
		_ = tx.Rollback(ctx)
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	return func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }, nil
}

// runLocks serialise work on one run in this process; the zero value is
// ready to use.
type runLocks struct {
	mu    sync.Mutex
	locks map[string]*runLock
}

type runLock struct {
	sync.Mutex
	users int
}

// lock locks runID and returns the unlock.
func (rl *runLocks) lock(runID string) func() {
	rl.mu.Lock()
	if rl.locks == nil {
		rl.locks = map[string]*runLock{}
	}
	l := rl.locks[runID]
	if l == nil {
		l = &runLock{}
		rl.locks[runID] = l
	}
	l.users++
	rl.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		rl.mu.Lock()
		if l.users--; l.users == 0 {
			delete(rl.locks, runID)
		}
		rl.mu.Unlock()
	}
}

// RetryAfter is implemented by errors of a Notifier, or of an action, that
// was told by the service to come back later (Slack's 429 Retry-After,
// GitHub's spent budget of revocations): the sync or the step sleeps that
// long instead of counting a failed attempt.
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
	// A replica paused past its lease must not post over its successor.
	ctx, release, _, held := w.r.leased(ctx)
	defer release()
	if !held {
		return river.JobSnooze(time.Second)
	}
	err := w.r.SyncMessages(ctx, w.r.cfg.Notifier, job.Args.RunID)
	var later RetryAfter
	if errors.As(err, &later) {
		return river.JobSnooze(max(later.RetryAfter(), time.Second))
	}
	if err != nil {
		w.r.log.Warn("message update failed; retrying", "run", job.Args.RunID, "event", job.Args.Event, "attempt", job.Attempt, "error", err)
	}
	return err
}
