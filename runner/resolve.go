package runner

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/riverqueue/river"

	"github.com/stanchhq/stanch/alert"
)

// Resolver turns a reference a trigger stored into alerts, with the network
// calls the ack path must not make (such as fetching a GitHub alert's secret
// to learn the key id).
type Resolver func(ctx context.Context, ref json.RawMessage) ([]alert.Alert, error)

// ResolveArgs is the River job that resolves a deferred alert. It is
// inserted, durably, before the webhook is answered; uniqueness on the
// dedup key makes a redelivery a no-op.
type ResolveArgs struct {
	Resolver string          `json:"resolver"`
	DedupKey string          `json:"dedup_key" river:"unique"`
	Ref      json.RawMessage `json:"ref"`
}

// Kind is the job kind stored by River.
func (ResolveArgs) Kind() string { return "stanch.resolve" }

// InsertOpts keeps one resolution per dedup key, ever.
func (ResolveArgs) InsertOpts() river.InsertOpts { return onceEver(QueueContainment) }

// Defer durably records a reference to an alert that a resolver of kind
// turns into alerts later, on a worker. It only writes to the store.
func (r *Runner) Defer(ctx context.Context, kind, dedupKey string, ref []byte) error {
	if _, ok := r.cfg.Resolvers[kind]; !ok {
		return fmt.Errorf("no resolver for %q", kind)
	}
	// A reference names where to fetch an alert, never a secret; a sender
	// could still have put one in it.
	args := ResolveArgs{Resolver: kind, DedupKey: alert.RedactText(dedupKey), Ref: alert.RedactJSON(ref)}
	var err error
	if r.insertTx != nil {
		// The answer to the sender waits for this commit: make it durable.
		err = r.cfg.DB.durableTx(ctx, func(tx *sql.Tx) error {
			return r.insertTx(ctx, tx, []river.InsertManyParams{{Args: args}})
		})
		if err == nil {
			r.waker.wake(args) // committed in a transaction: see waker
		}
	} else {
		_, err = r.client.Insert(ctx, args, nil)
	}
	if err != nil {
		return fmt.Errorf("record %s %s: %w", kind, dedupKey, err)
	}
	return nil
}

type resolveWorker struct {
	river.WorkerDefaults[ResolveArgs]
	r *Runner
}

// Work resolves the reference and submits the alerts to the playbooks.
// A failure that retrying cannot fix (alert.ErrUnactionable: GitHub refuses
// stanch, no key id can be found) is not retried: the alert is recorded as
// one that started no run, logged at ERROR, and the job cancelled. Other
// failures (GitHub unreachable) are retried by River with backoff, and
// recorded the same way when the last attempt fails.
func (w *resolveWorker) Work(ctx context.Context, job *river.Job[ResolveArgs]) error {
	// River keeps the error of every attempt in the store.
	return alert.RedactError(w.work(ctx, job))
}

func (w *resolveWorker) work(ctx context.Context, job *river.Job[ResolveArgs]) error {
	resolve, ok := w.r.cfg.Resolvers[job.Args.Resolver]
	if !ok {
		return w.unactionable(ctx, job, fmt.Errorf("%w: no resolver for %q in this build", alert.ErrUnactionable, job.Args.Resolver))
	}
	alerts, err := resolve(ctx, job.Args.Ref)
	if errors.Is(err, alert.ErrUnactionable) {
		return w.unactionable(ctx, job, err)
	}
	if err != nil {
		err = fmt.Errorf("resolve %s: %w", job.Args.DedupKey, err)
		if job.Attempt < job.MaxAttempts {
			w.r.log.Warn("alert not resolved yet; will retry", "resolver", job.Args.Resolver, "dedup_key", job.Args.DedupKey,
				"attempt", job.Attempt, "max_attempts", job.MaxAttempts, "error", alert.RedactText(err.Error()))
			return err
		}
		reason := fmt.Sprintf("gave up after %d attempts: %v", job.Attempt, err)
		if rerr := w.r.recordUnacted(ctx, w.unacted(job, reason)); rerr != nil {
			return errors.Join(err, rerr)
		}
		return err
	}
	for _, a := range alerts {
		if _, err := w.r.Submit(ctx, a, w.r.cfg.Playbooks); err != nil {
			return err
		}
	}
	// An alert that could not be acted on before (its webhook redelivered
	// once the token was fixed) no longer needs anyone.
	if err := w.r.store.ForgetUnacted(ctx, job.Args.DedupKey); err != nil {
		w.r.log.Warn("record of an unacted alert kept", "dedup_key", job.Args.DedupKey, "error", err)
	}
	w.r.log.Info("alert resolved", "resolver", job.Args.Resolver, "dedup_key", job.Args.DedupKey, "alerts", len(alerts))
	return nil
}

// unactionable records the alert and cancels the job. Should the record
// fail, the job is retried instead, so that nothing is lost silently.
func (w *resolveWorker) unactionable(ctx context.Context, job *river.Job[ResolveArgs], cause error) error {
	if err := w.r.recordUnacted(ctx, w.unacted(job, cause.Error())); err != nil {
		return errors.Join(cause, err)
	}
	return river.JobCancel(cause)
}

// unacted describes the job's alert: its source is the resolver kind's
// first word (github.secret_scanning_alert → github), and its reference the
// dedup key without that prefix (github:acme/api#7 → acme/api#7).
func (w *resolveWorker) unacted(job *river.Job[ResolveArgs], reason string) Unacted {
	source, _, _ := strings.Cut(job.Args.Resolver, ".")
	return Unacted{DedupKey: job.Args.DedupKey, Source: source, Reference: strings.TrimPrefix(job.Args.DedupKey, source+":"), Reason: reason}
}
