package runner

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/riverqueue/river"

	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/internal/crashpoint"
)

// intake commits the alerts submitted at the same moment together: one
// transaction for all their runs and one insert for all their jobs. On the
// embedded SQLite store each commit is an fsync, so a burst of webhooks pays
// for a few commits instead of two per alert. Nobody waits for a batch to
// fill: a batch is whatever queued up while the previous one was being
// written. Once a batch is answered, the intake wakes the workers.
type intake struct {
	r    *Runner
	reqs chan *intakeReq
	stop chan struct{}
	// exited is closed when the loop has returned: requests still queued
	// then will never be committed.
	exited chan struct{}
	wg     sync.WaitGroup
	// committers bounds the batches committing at once on PostgreSQL;
	// commits are those batches, which the loop waits for before it says
	// it exited.
	committers chan struct{}
	commits    sync.WaitGroup
}

type intakeReq struct {
	it   Intake
	done chan intakeResult
}

type intakeResult struct {
	got Intaken
	err error
}

// pgCommitters is how many batches commit at once on PostgreSQL; SQLite
// has one writer.
const pgCommitters = 4

// maxIntakeBatch bounds a transaction, so one batch never holds the
// connection for long.
const maxIntakeBatch = 256

func newIntake(r *Runner) *intake {
	in := &intake{r: r, reqs: make(chan *intakeReq, maxIntakeBatch), stop: make(chan struct{}), exited: make(chan struct{}),
		committers: make(chan struct{}, pgCommitters)}
	in.wg.Go(func() {
		defer close(in.exited)
		defer in.commits.Wait()
		in.loop()
	})
	return in
}

func (in *intake) close() {
	close(in.stop)
	in.wg.Wait()
}

// submit queues one alert and waits for its commit.
func (in *intake) submit(ctx context.Context, a alert.Alert, runs []NewRun) (Intaken, error) {
	req := &intakeReq{it: Intake{Alert: a, Runs: runs}, done: make(chan intakeResult, 1)}
	select {
	case in.reqs <- req:
	case <-in.stop:
		return Intaken{}, fmt.Errorf("runner stopping: alert %s not taken", a.DedupKey)
	case <-ctx.Done():
		return Intaken{}, ctx.Err()
	}
	select {
	case res := <-req.done:
		return res.got, res.err
	case <-in.exited:
		select {
		case res := <-req.done: // committed in the last batch
			return res.got, res.err
		default:
			return Intaken{}, fmt.Errorf("runner stopped: alert %s not taken", a.DedupKey)
		}
	case <-ctx.Done():
		// The batch goes on; the alert may still be committed, which a
		// redelivery finds as a duplicate.
		return Intaken{}, ctx.Err()
	}
}

func (in *intake) loop() {
	for {
		var batch []*intakeReq
		select {
		case req := <-in.reqs:
			batch = append(batch, req)
		case <-in.stop:
			return
		}
	more:
		for len(batch) < maxIntakeBatch {
			select {
			case req := <-in.reqs:
				batch = append(batch, req)
			default:
				break more
			}
		}
		if in.r.cfg.DB.Dialect == SQLite {
			in.commit(batch)
			continue
		}
		// PostgreSQL takes concurrent writers: a batch does not wait for the
		// one before it to commit, only for a free committer.
		select {
		case in.committers <- struct{}{}:
		case <-in.stop:
			in.commit(batch)
			return
		}
		in.commits.Go(func() {
			defer func() { <-in.committers }()
			in.commit(batch)
		})
	}
}

// commit writes a batch. A batch that fails as a whole is retried alert by
// alert, so one bad alert fails only its own request.
func (in *intake) commit(batch []*intakeReq) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	items := make([]Intake, len(batch))
	for i, req := range batch {
		items[i] = req.it
	}
	got, err := in.r.commitIntakes(ctx, items)
	if err != nil && len(batch) > 1 && !errors.Is(err, errJobsNotEnqueued) {
		for _, req := range batch {
			in.commit([]*intakeReq{req})
		}
		return
	}
	if err != nil && got == nil {
		batch[0].done <- intakeResult{err: err}
		return
	}
	for i, req := range batch {
		req.done <- intakeResult{got: got[i], err: err}
	}
	if err == nil && in.r.insertTx != nil {
		// The jobs were inserted in the store's transaction, which woke
		// no worker (see waker); on PostgreSQL their insert did.
		// Answered first: the jobs are committed, and waking the
		// workers only saves them their poll.
		if jobs := jobsFor(got); len(jobs) > 0 {
			in.r.waker.wake(jobs[len(jobs)-1].Args)
		}
	}
}

// errJobsNotEnqueued says the runs were committed but their jobs were not:
// they are enqueued again when a runner starts, or when the alert comes
// again.
var errJobsNotEnqueued = errors.New("runs recorded, jobs not enqueued")

// commitOne records one alert and its runs without the intake: for a
// runner that is not started because another process works the store.
func (r *Runner) commitOne(ctx context.Context, it Intake) (Intaken, error) {
	got, err := r.commitIntakes(ctx, []Intake{it})
	if got == nil {
		return Intaken{}, err
	}
	return got[0], err
}

// commitIntakes writes alerts, their runs and the runs' jobs: on SQLite in
// one transaction (one commit for the batch; the intake then wakes the
// workers: see waker); elsewhere the jobs follow it, and a run whose job
// was lost with its process is enqueued again when the runner starts.
func (r *Runner) commitIntakes(ctx context.Context, items []Intake) ([]Intaken, error) {
	var inTx func(tx *sql.Tx, got []Intaken) error
	if r.insertTx != nil {
		inTx = func(tx *sql.Tx, got []Intaken) error {
			if jobs := jobsFor(got); len(jobs) > 0 {
				return r.insertTx(ctx, tx, jobs)
			}
			return nil
		}
	}
	got, err := r.store.CreateRunsBatch(ctx, items, inTx)
	if err != nil {
		return nil, err
	}
	crashpoint.Hit("submitted") // runs committed; on PostgreSQL jobs not yet enqueued
	if jobs := jobsFor(got); inTx == nil && len(jobs) > 0 {
		if _, err := r.client.InsertMany(ctx, jobs); err != nil {
			return got, fmt.Errorf("enqueue runs: %w: %w", errJobsNotEnqueued, err)
		}
	}
	return got, nil
}

// jobsFor returns the jobs of the runs a batch created or found unfinished:
// if the process that created an existing run died before enqueueing it,
// this is where it continues; the job's uniqueness makes it a no-op
// otherwise.
func jobsFor(got []Intaken) []river.InsertManyParams {
	var jobs []river.InsertManyParams
	seen := map[string]bool{} // copies of one alert in a batch share a run
	for _, g := range got {
		for _, run := range slices.Concat(g.Created, g.Existing, g.Joined) {
			if Terminal(run.Status) || run.Status == RunWaitingApproval || seen[run.ID] {
				continue
			}
			seen[run.ID] = true
			jobs = append(jobs, river.InsertManyParams{Args: RunArgs{RunID: run.ID, Generation: run.Generation}})
		}
	}
	return jobs
}
