package runner

import (
	"context"
	"log/slog"

	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/playbooks"
)

// Dispatcher accepts alerts for a fixed set of playbooks: it is what the
// triggers hand alerts to. Accept only writes to the store (the alert, its
// runs and their jobs), so a webhook's sender is answered without waiting
// on any outside service.
type Dispatcher struct {
	Runner    *Runner
	Playbooks []*playbooks.Playbook
	Log       *slog.Logger
}

// Accept commits the alert and starts a run per matching playbook.
func (d *Dispatcher) Accept(ctx context.Context, a alert.Alert) error {
	sub, err := d.Runner.Submit(ctx, a, d.Playbooks)
	if err != nil {
		return err
	}
	if d.Log != nil {
		runs := make([]string, 0, len(sub.Started))
		for _, r := range sub.Started {
			runs = append(runs, r.ID)
		}
		d.Log.Info("alert accepted", "dedup_key", sub.Alert.DedupKey, "source", sub.Alert.Source, "credential", sub.Alert.Credential.ID,
			"runs", runs, "duplicate_of", len(sub.Existing), "not_matched", len(sub.NotMatched))
	}
	return nil
}

// Defer durably records a reference that a resolver turns into alerts on a
// worker (a GitHub alert whose key id must be fetched).
func (d *Dispatcher) Defer(ctx context.Context, kind, dedupKey string, ref []byte) error {
	return d.Runner.Defer(ctx, kind, dedupKey, ref)
}
