package runner

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A request's digest is first seen once until it expires, by every store
// handle on the same database (a restarted process, another replica).
func TestFirstSeenRemembersUntilExpiry(t *testing.T) {
	t.Parallel()
	for name, open := range testDatabases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db := open(t)
			clock := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
			store := NewStore(db, func() time.Time { return clock })
			require.NoError(t, store.Migrate(ctx))

			first, err := store.FirstSeen(ctx, "slack:abc", clock.Add(6*time.Minute))
			require.NoError(t, err)
			require.True(t, first)
			again, err := store.FirstSeen(ctx, "slack:abc", clock.Add(6*time.Minute))
			require.NoError(t, err)
			require.False(t, again, "a replay")

			restarted := NewStore(db, func() time.Time { return clock.Add(time.Minute) })
			again, err = restarted.FirstSeen(ctx, "slack:abc", clock.Add(6*time.Minute))
			require.NoError(t, err)
			require.False(t, again, "a replay after a restart")
			other, err := restarted.FirstSeen(ctx, "slack:def", clock.Add(6*time.Minute))
			require.NoError(t, err)
			require.True(t, other)

			later := NewStore(db, func() time.Time { return clock.Add(7 * time.Minute) })
			expired, err := later.FirstSeen(ctx, "slack:abc", clock.Add(13*time.Minute))
			require.NoError(t, err)
			require.True(t, expired, "an expired record counts as none")
			var n int
			require.NoError(t, db.SQL.QueryRowContext(ctx, `SELECT COUNT(*) FROM stanch_seen_requests`).Scan(&n))
			require.Equal(t, 1, n, "expired records are dropped")
		})
	}
}
