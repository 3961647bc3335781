package runner

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"
)

// Store keeps alerts, runs, steps, the journal and approvals in the same
// database as River's jobs.
type Store struct {
	db  *Database
	now func() time.Time
}

// NewStore returns a store on db. now defaults to time.Now.
func NewStore(db *Database, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{db: db, now: now}
}

// ErrNotFound is returned when a run or approval does not exist.
var ErrNotFound = errors.New("not found")

func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

func (s *Store) exec(ctx context.Context, tx *sql.Tx, q string, args ...any) (sql.Result, error) {
	return tx.ExecContext(ctx, s.db.rebind(q), args...)
}

// inTx runs fn in a transaction and commits it, unless the pass writing
// holds a fence that no longer holds (fence.go).
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return inTx(ctx, s.db.SQL.BeginTx, func(tx *sql.Tx) error {
		if err := s.checkFence(ctx, tx); err != nil {
			return err
		}
		return fn(tx)
	})
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// prefixed qualifies each column of a comma-separated list.
func prefixed(p, columns string) string {
	parts := strings.Split(columns, ", ")
	for i, c := range parts {
		parts[i] = p + c
	}
	return strings.Join(parts, ", ")
}
