package runner

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// A pass over a run on PostgreSQL carries a fence: the run's takeover count
// when the pass began, and the term of the lease it began under. Every
// write the store makes for the pass checks both in its own transaction,
// holding the run's row, so a replica that was paused or cut off, and
// whose run was taken over meanwhile, cannot record anything over its
// successor; nor can a replica whose lease lapsed, by its own clock or by
// PostgreSQL's, taken over or not: it cannot even begin a pass. The
// embedded SQLite store has one process (lock.go) and no fence.

// ErrFenced is returned for a write by a pass whose run another replica
// has taken over.
var ErrFenced = errors.New("another replica has taken this run over")

type fence struct {
	run      string
	takeover int
	replica  string
	term     *term
}

type fenceKey struct{}

func withFence(ctx context.Context, f fence) context.Context {
	return context.WithValue(ctx, fenceKey{}, f)
}

// checkFence refuses a write in tx when ctx carries a fence that no longer
// holds.
func (s *Store) checkFence(ctx context.Context, tx *sql.Tx) error {
	f, ok := ctx.Value(fenceKey{}).(fence)
	if !ok || s.db.Dialect != Postgres {
		return nil
	}
	if !f.term.held() {
		return fmt.Errorf("run %s: %w", f.run, errLeaseLost)
	}
	// The lease is checked by PostgreSQL's clock too: a replica that was
	// paused may not have seen its own lapse yet.
	var takeover int
	var leased bool
	err := tx.QueryRowContext(ctx, `SELECT takeover, EXISTS (SELECT 1 FROM stanch_replicas WHERE id = $2 AND term = $3 AND expires_at > now())
		FROM stanch_runs WHERE id = $1 FOR UPDATE`, f.run, f.replica, f.term.number).Scan(&takeover, &leased)
	if err != nil {
		return fmt.Errorf("run %s: %w", f.run, err)
	}
	if takeover != f.takeover {
		return fmt.Errorf("run %s: %w", f.run, ErrFenced)
	}
	if !leased {
		f.term.lapse()
		return fmt.Errorf("run %s: %w", f.run, errLeaseLost)
	}
	return nil
}

// leaseGate checks, right before each provider request of a pass leaves
// (apicall.WithGate), that the replica still holds the lease the pass
// began under, by its own clock. A replica paused past its lease (SIGSTOP,
// a VM frozen) resumes with requests in flight: the lease's own timer and
// the pass's cancellation may run after the next request is sent, and the
// run may already be another replica's. Only the clock is read here, no
// store: the fence (checkFence) guards the store's writes.
func leaseGate(ctx context.Context) func() error {
	f, ok := ctx.Value(fenceKey{}).(fence)
	if !ok || f.term == nil {
		return nil
	}
	return func() error {
		if f.term.held() {
			return nil
		}
		f.term.lapse()
		return fmt.Errorf("run %s: %w", f.run, errLeaseLost)
	}
}
