package runner

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/apicall"
)

// Entry is one line of a run's append-only journal.
type Entry struct {
	Seq     int
	At      time.Time
	StepID  string
	Attempt int
	Event   string
	Detail  string
}

// appendJournal appends an entry in the caller's transaction, so that the
// entry commits with the change it describes.
func (s *Store) appendJournal(ctx context.Context, tx *sql.Tx, runID, stepID string, attempt int, event, detail string) error {
	// Two statements, both on the (run_id, seq) primary key: the last
	// entry's seq and hash, then the entry chained to it.
	at, detail := micros(s.now()), alert.RedactText(detail)
	err := chainedAppend(
		func() (int, string, error) {
			var seq int
			var prev string
			err := tx.QueryRowContext(ctx, s.db.rebind(lastEntrySQL), runID).Scan(&seq, &prev)
			if errors.Is(err, sql.ErrNoRows) {
				return 0, "", nil
			}
			return seq, prev, err
		},
		func(seq int, prev, hash string) (bool, error) {
			res, err := s.exec(ctx, tx, insertEntrySQL, runID, seq, at, stepID, attempt, event, detail, prev, hash)
			if err != nil {
				return false, err
			}
			n, err := res.RowsAffected()
			return n == 1, err
		},
		func(seq int, prev string) string {
			return entryHash(runID, seq, at, stepID, attempt, event, detail, prev)
		})
	if err != nil {
		return fmt.Errorf("journal run %s: %w", runID, err)
	}
	return nil
}

// Journal returns a run's journal in order.
func (s *Store) Journal(ctx context.Context, runID string) ([]Entry, error) {
	rows, err := s.db.SQL.QueryContext(ctx, s.db.rebind(`SELECT seq, at, step_id, attempt, event, detail FROM stanch_journal WHERE run_id = ? ORDER BY seq`), runID)
	if err != nil {
		return nil, fmt.Errorf("journal of run %s: %w", runID, err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		var e Entry
		var at int64
		if err := rows.Scan(&e.Seq, &at, &e.StepID, &e.Attempt, &e.Event, &e.Detail); err != nil {
			return nil, fmt.Errorf("journal of run %s: %w", runID, err)
		}
		e.At = fromMicros(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

// Effect journals one change an action made.
func (s *Store) Effect(ctx context.Context, runID, stepID string, attempt int, e actions.Effect, calls []apicall.Call) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		// The calls that made the effect, with it.
		if err := s.addCalls(ctx, tx, runID, stepID, attempt, calls); err != nil {
			return err
		}
		return s.appendJournal(ctx, tx, runID, stepID, attempt, "effect", e.String())
	})
}

// journal appends one entry to a run's journal; a failure is logged, since
// the entry only describes what the run's records already hold.
func (r *Runner) journal(ctx context.Context, runID, stepID, event, detail string) {
	err := r.store.inTx(ctx, func(tx *sql.Tx) error {
		return r.store.appendJournal(ctx, tx, runID, stepID, 0, event, detail)
	})
	if err != nil {
		r.log.Warn("could not journal", "run", runID, "event", event, "error", err)
	}
}
