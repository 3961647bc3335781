package runner

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/playbooks"
)

// Queues. A run starts on the containment queue; when it reaches a slow step
// (a CloudTrail query that takes minutes) it moves to the investigation
// queue, whose workers are separate, so a burst of slow work never delays
// another alert's containment.
const (
	QueueContainment   = "containment"
	QueueInvestigation = "investigation"
)

// RunArgs is the River job that executes one run. The run's state lives in
// stanch's tables; the job only says which run to advance, and on which
// queue.
type RunArgs struct {
	RunID string `json:"run_id"`
	// Queue is QueueInvestigation once the run has reached a slow step;
	// empty means containment.
	Queue string `json:"queue,omitempty"`
	// Generation is the run's generation the job works (see Retry): a
	// retried run gets a new job, and an older one leaves it alone.
	Generation int `json:"generation,omitempty"`
	// Takeover is the run's takeover count the job works (takeover.go): a
	// job of a replica whose run was taken over leaves it alone.
	Takeover int `json:"takeover,omitempty"`
}

// Kind is the job kind stored by River.
func (RunArgs) Kind() string { return "stanch.run" }

// InsertOpts makes a second enqueue of the same run on the same queue a
// no-op.
func (a RunArgs) InsertOpts() river.InsertOpts {
	queue := QueueContainment
	if a.Queue != "" {
		queue = a.Queue
	}
	return onceEver(queue)
}

// onceEver makes a second insert of the same job a no-op, counting
// completed jobs too: a finished run is never run again.
func onceEver(queue string) river.InsertOpts {
	return river.InsertOpts{
		Queue:       queue,
		MaxAttempts: 25,
		UniqueOpts: river.UniqueOpts{
			ByArgs: true,
			ByState: []rivertype.JobState{
				rivertype.JobStateAvailable, rivertype.JobStateCompleted, rivertype.JobStatePending,
				rivertype.JobStateRetryable, rivertype.JobStateRunning, rivertype.JobStateScheduled,
			},
		},
	}
}

// Config configures a Runner.
type Config struct {
	DB       *Database
	Registry *actions.Registry
	Logger   *slog.Logger
	// Observer receives progress events. It is called from workers and must
	// not block for long.
	Observer func(Event)
	// Workers is the number of runs contained at once (default 20).
	Workers int
	// Playbooks are the playbooks that deferred alerts (see Defer) are
	// matched against.
	Playbooks []*playbooks.Playbook
	// Resolvers turn deferred alert references into alerts, by kind.
	Resolvers map[string]Resolver
	// Pollers run periodically, by name.
	Pollers map[string]Poller
	// InvestigationWorkers is the number of runs in slow steps at once
	// (default 10).
	InvestigationWorkers int
	// Notifier, when set, shows runs to people (Slack); it gets workers of
	// its own (NotifyWorkers, default 4).
	Notifier      Notifier
	NotifyWorkers int
	Now           func() time.Time
	// UnactedPoster, when set, shows each alert that started no run to
	// people (Slack), once, from a notify worker (see unacted.go).
	UnactedPoster UnactedPoster
	// LeaseTTL is how long a replica's lease lasts without renewal on
	// PostgreSQL (default DefaultLeaseTTL): a dead replica's runs are taken
	// over within about this long (lease.go).
	LeaseTTL time.Duration
	// fetchPoll, when set, replaces the workers' backstop poll: tests set
	// an hour to show that nothing waits for it.
	fetchPoll time.Duration
}

// queue is the part of *river.Client the runner uses; it does not depend on
// the driver's transaction type, so the rest of the runner is the same code
// on SQLite and PostgreSQL.
type queue interface {
	Insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
	InsertMany(ctx context.Context, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error)
	JobRetry(ctx context.Context, id int64) (*rivertype.JobRow, error)
	JobGet(ctx context.Context, id int64) (*rivertype.JobRow, error)
	Subscribe(kinds ...river.EventKind) (<-chan *river.Event, func())
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// Runner executes playbook runs.
type Runner struct {
	cfg    Config
	store  *Store
	log    *slog.Logger
	client queue
	// rescueOrphans makes jobs left running by a dead process available
	// again; only safe while holding the process lock.
	rescueOrphans func(ctx context.Context) (int, error)
	lock          *processLock
	started       bool
	// intake batches Submit while the runner is started.
	intake *intake
	// insertTx inserts jobs in a transaction of the store's own (SQLite,
	// where River's transactions are *sql.Tx); nil on PostgreSQL.
	insertTx func(ctx context.Context, tx *sql.Tx, params []river.InsertManyParams) error
	// insertPgTx inserts jobs in a PostgreSQL transaction (takeover.go);
	// nil on SQLite.
	insertPgTx func(ctx context.Context, tx pgx.Tx, params []river.InsertManyParams) error
	// member is this replica's lease on PostgreSQL (lease.go); nil on
	// SQLite, where one process works the store.
	member *membership
	// stopLease ends the lease, after the workers stopped.
	stopLease func()
	// exec is River's executor, for the maintenance the runner does itself
	// on SQLite (embedded.go).
	exec riverdriver.Executor
	// waker wakes River's workers for jobs that became available without
	// an insert outside a transaction (wake.go).
	waker *waker
	// loops are the runner's own background loops (the waker and the
	// sweep; on SQLite the housekeeping and the pollers); stopBackground
	// ends them.
	loops          sync.WaitGroup
	stopBackground func()
	// afterSweep, when set (by tests, before Start), is called after each
	// sweep.
	afterSweep func()
	// parsed are the playbooks of runs this runner worked (playbookcache.go).
	parsed parsedPlaybooks
	syncs  runLocks // one message sync of a run at a time (notify.go)
	// attemptClock times the steps whose attempts this process runs
	// (attemptclock.go).
	attemptClock attemptClock
}

// New migrates the database (River's tables and stanch's) and returns a
// runner that is not yet working.
func New(ctx context.Context, cfg Config) (*Runner, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 20
	}
	if cfg.InvestigationWorkers <= 0 {
		cfg.InvestigationWorkers = 10
	}
	if cfg.NotifyWorkers <= 0 {
		cfg.NotifyWorkers = 4
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	r := &Runner{cfg: cfg, store: NewStore(cfg.DB, cfg.Now), log: cfg.Logger}
	r.waker = newWaker(r)
	workers := river.NewWorkers()
	if err := river.AddWorkerSafely(workers, &runWorker{r: r}); err != nil {
		return nil, fmt.Errorf("register run worker: %w", err)
	}
	if err := river.AddWorkerSafely(workers, &resolveWorker{r: r}); err != nil {
		return nil, fmt.Errorf("register resolve worker: %w", err)
	}
	if err := river.AddWorkerSafely(workers, &pollWorker{r: r}); err != nil {
		return nil, fmt.Errorf("register poll worker: %w", err)
	}
	if err := river.AddWorkerSafely(workers, &notifyWorker{r: r}); err != nil {
		return nil, fmt.Errorf("register notify worker: %w", err)
	}
	if err := river.AddWorkerSafely(workers, &sweepWorker{r: r}); err != nil {
		return nil, fmt.Errorf("register sweep worker: %w", err)
	}
	if err := addUnactedWorker(workers, r); err != nil {
		return nil, err
	}
	rcfg := &river.Config{
		Queues: map[string]river.QueueConfig{
			QueueContainment:   {MaxWorkers: cfg.Workers},
			QueueInvestigation: {MaxWorkers: cfg.InvestigationWorkers},
			QueueNotify:        {MaxWorkers: cfg.NotifyWorkers},
		},
		Workers: workers,
		Logger:  cfg.Logger.With("component", "river"),
		// Steps have their own timeouts; a run waiting on a slow step must
		// not be cut off or rescued while its process is alive.
		JobTimeout:           -1,
		RescueStuckJobsAfter: 10 * time.Minute,
		// Containment is measured in milliseconds: a new job must be picked
		// up at once. Workers are woken when a job is inserted (through
		// LISTEN/NOTIFY on PostgreSQL, in this process on SQLite: see
		// embedded.go); the poll is a backstop.
		PeriodicJobs:      periodicJobs(cfg.Pollers),
		FetchCooldown:     2 * time.Millisecond,
		FetchPollInterval: 250 * time.Millisecond,
	}
	if cfg.DB.Dialect == SQLite {
		// One process works the store (lock.go): no leader to elect, and
		// the runner does the maintenance itself (keepHouse), so that an
		// idle stanch writes nothing.
		rcfg.FetchPollInterval = backstopPoll
		rcfg.LeaderElectionDisabled = true
		rcfg.PeriodicJobs = nil
	}
	if cfg.DB.Dialect == Postgres {
		r.member = &membership{db: cfg.DB, id: newReplicaID(), ttl: cfg.LeaseTTL, log: r.log, rejoin: r.takeOver}
		rcfg.ID = r.member.id
	}
	if cfg.fetchPoll > 0 {
		rcfg.FetchPollInterval = cfg.fetchPoll
	}
	var err error
	switch cfg.DB.Dialect {
	case SQLite:
		err = r.setup(ctx, rcfg, riversqlite.New(cfg.DB.SQL))
	case Postgres:
		err = setupPG(ctx, r, rcfg, cfg.DB)
	default:
		err = fmt.Errorf("unknown database dialect %q", cfg.DB.Dialect)
	}
	if err != nil {
		return nil, err
	}
	if err := r.store.Migrate(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

func setupPG(ctx context.Context, r *Runner, rcfg *river.Config, db *Database) error {
	return setup[pgx.Tx](ctx, r, rcfg, riverpgxv5.New(db.Pool))
}

func (r *Runner) setup(ctx context.Context, rcfg *river.Config, d *riversqlite.Driver) error {
	return setup[*sql.Tx](ctx, r, rcfg, localDriver{d})
}

func setup[TTx any](ctx context.Context, r *Runner, rcfg *river.Config, driver riverdriver.Driver[TTx]) error {
	migrator, err := rivermigrate.New(driver, nil)
	if err != nil {
		return fmt.Errorf("river migrator: %w", err)
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("migrate river tables: %w", err)
	}
	client, err := river.NewClient(driver, rcfg)
	if err != nil {
		return fmt.Errorf("river client: %w", err)
	}
	r.client = client
	r.exec = driver.GetExecutor()
	if c, ok := any(client).(*river.Client[*sql.Tx]); ok {
		r.insertTx = func(ctx context.Context, tx *sql.Tx, params []river.InsertManyParams) error {
			_, err := c.InsertManyTx(ctx, tx, params)
			return err
		}
	}
	if c, ok := any(client).(*river.Client[pgx.Tx]); ok {
		r.insertPgTx = func(ctx context.Context, tx pgx.Tx, params []river.InsertManyParams) error {
			_, err := c.InsertManyTx(ctx, tx, params)
			return err
		}
	}
	r.rescueOrphans = func(ctx context.Context) (int, error) {
		exec := driver.GetExecutor()
		stuck, err := exec.JobGetStuck(ctx, &riverdriver.JobGetStuckParams{Max: 10000, StuckHorizon: time.Now().Add(time.Minute)})
		if err != nil {
			return 0, fmt.Errorf("find orphaned jobs: %w", err)
		}
		if len(stuck) == 0 {
			return 0, nil
		}
		now := time.Now().UTC()
		p := &riverdriver.JobRescueManyParams{StuckHorizon: now.Add(time.Minute)}
		for _, j := range stuck {
			p.ID = append(p.ID, j.ID)
			p.Error = append(p.Error, []byte(fmt.Sprintf(`{"at":%q,"attempt":%d,"error":"process died while running the job; resumed by the next stanch process"}`, now.Format(time.RFC3339Nano), j.Attempt)))
			p.FinalizedAt = append(p.FinalizedAt, nil)
			p.ScheduledAt = append(p.ScheduledAt, now)
			p.State = append(p.State, string(rivertype.JobStateAvailable))
		}
		if _, err := exec.JobRescueMany(ctx, p); err != nil {
			return 0, fmt.Errorf("resume orphaned jobs: %w", err)
		}
		return len(stuck), nil
	}
	return nil
}

// Store returns the runner's store.
func (r *Runner) Store() *Store { return r.store }

// Start begins working runs. On the embedded SQLite store it first takes the
// process lock, so it fails with ErrBusy when another process works the same
// database; jobs a crashed process left running are then resumed at once.
// Every unfinished run is (re-)enqueued, which is a no-op for runs that
// already have a job.
func (r *Runner) Start(ctx context.Context) error {
	if r.cfg.DB.Dialect == SQLite {
		lock, err := lockDatabase(r.cfg.DB.Path)
		if err != nil {
			return err
		}
		r.lock = lock
		n, err := r.rescueOrphans(ctx)
		if err != nil {
			r.lock.release()
			return err
		}
		if n > 0 {
			r.log.Info("resuming runs left by a process that died", "jobs", n)
		}
	}
	if r.member != nil {
		// The lease first: River records this replica on every job it
		// fetches, and a job fetched without a lease would be nobody's.
		if err := r.member.join(ctx); err != nil {
			return err
		}
		lctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			r.member.keep(lctx)
		}()
		r.stopLease = func() {
			cancel()
			<-done
		}
	}
	if err := r.client.Start(ctx); err != nil {
		r.lock.release()
		if r.stopLease != nil {
			r.stopLease()
		}
		return fmt.Errorf("start workers: %w", err)
	}
	r.started = true
	r.intake = newIntake(r)
	r.background()
	runs, err := r.store.UnfinishedRuns(ctx)
	if err != nil {
		return err
	}
	for _, run := range runs {
		if run.Status == RunWaitingApproval {
			continue // its job is snoozed until a decision or the deadline
		}
		if err := r.enqueue(ctx, run); err != nil {
			return err
		}
	}
	return nil
}

// Stop waits for running steps to finish (or ctx to end) and stops.
func (r *Runner) Stop(ctx context.Context) error {
	defer r.lock.release()
	if !r.started {
		return nil
	}
	r.started = false
	r.intake.close()
	r.stopBackground()
	err := r.client.Stop(ctx)
	if r.stopLease != nil {
		// After the workers: steps in flight finish under the lease. A
		// job the stop left running is taken over at once.
		r.stopLease()
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("stop workers: %w", err)
	}
	return nil
}

func (r *Runner) enqueue(ctx context.Context, run Run) error {
	return r.enqueueOn(ctx, run, "")
}

func (r *Runner) enqueueOn(ctx context.Context, run Run, queue string) error {
	// The job records its id on the run when it starts (see Work): one
	// commit fewer on the path that answers a webhook.
	if _, err := r.client.Insert(ctx, RunArgs{RunID: run.ID, Queue: queue, Generation: run.Generation, Takeover: run.Takeover}, nil); err != nil {
		return fmt.Errorf("enqueue run %s: %w", run.ID, err)
	}
	return nil
}

// Submission is what Submit did with an alert.
type Submission struct {
	Alert alert.Alert
	// Started are the runs created for this alert.
	Started []Run
	// Existing are runs the alert's dedup key already had: no second run
	// starts for the same alert and playbook.
	Existing []Run
	// Joined are open runs for the same credential that this alert joined
	// (from another source, or a new finding about the same key) instead
	// of starting a second containment.
	Joined []Run
	// NotMatched says, per playbook that did not match, why.
	NotMatched []NotMatched
}

// NotMatched is a playbook that an alert did not select.
type NotMatched struct {
	Playbook string
	Reason   string
}

// Submit durably records the alert and a run for each matching playbook,
// then enqueues the runs. When Submit returns nil the alert is committed.
func (r *Runner) Submit(ctx context.Context, a alert.Alert, books []*playbooks.Playbook) (Submission, error) {
	// The triggers redacted it already; whatever handed it here, nothing a
	// playbook sees, stores or sends carries a secret.
	a.Redact()
	sub := Submission{Alert: a}
	var want []NewRun
	now := r.cfg.Now()
	for _, pb := range books {
		ok, reason, err := pb.Match(a)
		if err != nil {
			return sub, fmt.Errorf("match playbook %s: %w", pb.Name, err)
		}
		if !ok {
			sub.NotMatched = append(sub.NotMatched, NotMatched{Playbook: pb.Name, Reason: reason})
			continue
		}
		want = append(want, NewRun{ID: newRunID(now), Playbook: pb.Name, PlaybookFile: pb.File, PlaybookSource: pb.Source, Correlate: pb.Correlate})
	}
	var got Intaken
	var err error
	if r.intake != nil {
		got, err = r.intake.submit(ctx, a, want)
	} else {
		// Another process works the store (stanch ingest beside stanch
		// serve): commit here, and that process's workers take the jobs.
		got, err = r.commitOne(ctx, Intake{Alert: a, Runs: want})
	}
	sub.Started, sub.Existing, sub.Joined = got.Created, got.Existing, got.Joined
	if err == nil {
		r.emit(sub.submitted())
	}
	return sub, err
}
