package runner

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

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
	args := ResolveArgs{Resolver: kind, DedupKey: dedupKey, Ref: ref}
	var err error
	if r.insertTx != nil {
		// The answer to the sender waits for this commit: make it durable.
		err = r.cfg.DB.durableTx(ctx, func(tx *sql.Tx) error {
			return r.insertTx(ctx, tx, []river.InsertManyParams{{Args: args}})
		})
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

// Work resolves the reference and submits the alerts to the playbooks;
// failures (GitHub unreachable) are retried by River with backoff.
func (w *resolveWorker) Work(ctx context.Context, job *river.Job[ResolveArgs]) error {
	resolve, ok := w.r.cfg.Resolvers[job.Args.Resolver]
	if !ok {
		return river.JobCancel(fmt.Errorf("no resolver for %q in this build", job.Args.Resolver))
	}
	alerts, err := resolve(ctx, job.Args.Ref)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", job.Args.DedupKey, err)
	}
	for _, a := range alerts {
		if _, err := w.r.Submit(ctx, a, w.r.cfg.Playbooks); err != nil {
			return err
		}
	}
	w.r.log.Info("alert resolved", "resolver", job.Args.Resolver, "dedup_key", job.Args.DedupKey, "alerts", len(alerts))
	return nil
}
