package runner

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// FirstSeen records that the request digest names was handled, until
// expires, and reports whether this is the first time: false means a
// replay. It is what the Slack interactions endpoint remembers signatures
// in, so that a click captured before a restart, or handled by another
// replica, is still refused within its five minutes. Records are dropped
// once expired: by then the request's own timestamp refuses it.
func (s *Store) FirstSeen(ctx context.Context, digest string, expires time.Time) (bool, error) {
	now := micros(s.now())
	first := false
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		// An expired record counts as none; the upsert's WHERE leaves a
		// live one alone, so a replay changes no row.
		res, err := s.exec(ctx, tx, `INSERT INTO stanch_seen_requests (digest, expires) VALUES (?, ?)
			ON CONFLICT (digest) DO UPDATE SET expires = excluded.expires WHERE stanch_seen_requests.expires < ?`, digest, micros(expires), now)
		if err != nil {
			return fmt.Errorf("remember request %s: %w", digest, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("remember request %s: %w", digest, err)
		}
		first = n == 1
		// Clicks are few: dropping what expired on each one keeps the
		// table small without a sweeper.
		if _, err := s.exec(ctx, tx, `DELETE FROM stanch_seen_requests WHERE expires < ?`, now); err != nil {
			return fmt.Errorf("forget expired requests: %w", err)
		}
		return nil
	})
	return first, err
}
