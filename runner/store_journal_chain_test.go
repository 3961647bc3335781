package runner

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// appendEntries journals n entries of run through the store.
func appendEntries(t *testing.T, s *Store, run string, n int) {
	t.Helper()
	for i := range n {
		require.NoError(t, s.inTx(context.Background(), func(tx *sql.Tx) error {
			return s.appendJournal(context.Background(), tx, run, "step", i, "effect", fmt.Sprintf("change %d", i+1))
		}))
	}
}

func tamper(t *testing.T, db *Database, queries ...string) {
	t.Helper()
	for _, q := range queries {
		_, err := db.SQL.ExecContext(context.Background(), q)
		require.NoError(t, err, q)
	}
}

func TestVerifyJournalNamesEachTamperedEntry(t *testing.T) {
	t.Parallel()
	for name, open := range testDatabases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db := open(t)
			s := NewStore(db, nil)
			require.NoError(t, s.Migrate(ctx))
			for _, run := range []string{"run_clean", "run_edit", "run_delete", "run_swap", "run_forged", "run_unhashed"} {
				appendEntries(t, s, run, 6)
			}
			var forgedPrev string
			require.NoError(t, db.SQL.QueryRowContext(ctx, `SELECT hash FROM stanch_journal WHERE run_id = 'run_forged' AND seq = 2`).Scan(&forgedPrev))
			forged := entryHash("run_forged", 3, 1, "step", 0, "effect", "nothing happened", forgedPrev)
			tamper(t, db,
				`UPDATE stanch_journal SET detail = 'nothing changed' WHERE run_id = 'run_edit' AND seq = 3`,
				`DELETE FROM stanch_journal WHERE run_id = 'run_delete' AND seq = 3`,
				`UPDATE stanch_journal SET seq = -3 WHERE run_id = 'run_swap' AND seq = 3`,
				`UPDATE stanch_journal SET seq = 3 WHERE run_id = 'run_swap' AND seq = 4`,
				`UPDATE stanch_journal SET seq = 4 WHERE run_id = 'run_swap' AND seq = -3`,
				// A forger who knows the hash: later entries renumbered to make room.
				`UPDATE stanch_journal SET seq = -seq WHERE run_id = 'run_forged' AND seq >= 3`,
				`UPDATE stanch_journal SET seq = 1 - seq WHERE run_id = 'run_forged' AND seq < 0`,
				`INSERT INTO stanch_journal (run_id, seq, at, step_id, attempt, event, detail, prev_hash, hash)
					VALUES ('run_forged', 3, 1, 'step', 0, 'effect', 'nothing happened', '`+forgedPrev+`', '`+forged+`')`,
				`INSERT INTO stanch_journal (run_id, seq, at, step_id, attempt, event, detail)
					VALUES ('run_unhashed', 7, 1, 'step', 0, 'effect', 'nothing happened')`,
			)
			want := map[string][]ChainBreak{
				"run_clean":    {},
				"run_edit":     {{Seq: 3, Problem: "edited", Detail: "entry 3 (effect) does not match its hash: its time, step, attempt, event or detail changed"}},
				"run_delete":   {{Seq: 3, Problem: "deleted", Detail: "entry 3 missing: entry 4 follows entry 2"}},
				"run_swap":     {{Seq: 3, Problem: "reordered", Detail: "entry 3 (effect) was written as entry 4"}, {Seq: 4, Problem: "reordered", Detail: "entry 4 (effect) was written as entry 3"}},
				"run_forged":   {{Seq: 3, Problem: "inserted", Detail: "entry 3 is not in the chain: entry 4 (written as entry 3) follows entry 2"}},
				"run_unhashed": {{Seq: 7, Problem: "inserted", Detail: "entry 7 has no hash: stanch did not write it"}},
			}
			ids, err := s.JournalRunIDs(ctx)
			require.NoError(t, err)
			require.Len(t, ids, len(want))
			for run, breaks := range want {
				c, err := s.VerifyJournal(ctx, run)
				require.NoError(t, err)
				require.Equal(t, breaks, c.Breaks, run)
				require.Equal(t, len(breaks) == 0, c.OK(), run)
				if c.OK() {
					require.Len(t, c.FinalHash, 64, run)
				}
			}
		})
	}
}

func TestConcurrentAppendsKeepTheChain(t *testing.T) {
	t.Parallel()
	for name, open := range testDatabases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := NewStore(open(t), nil)
			require.NoError(t, s.Migrate(ctx))
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for i := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs <- s.inTx(ctx, func(tx *sql.Tx) error {
						return s.appendJournal(ctx, tx, "run_busy", "", 0, "effect", fmt.Sprint(i))
					})
				}()
			}
			wg.Wait()
			close(errs)
			written := 0
			for err := range errs {
				if err == nil {
					written++
				}
			}
			require.Positive(t, written)
			c, err := s.VerifyJournal(ctx, "run_busy")
			require.NoError(t, err)
			require.True(t, c.OK(), "%+v", c.Breaks)
			require.Equal(t, written, c.Entries)
		})
	}
}

// A store written before the journal had hashes is chained once, when it
// is migrated, and its entries say so.
func TestMigrationChainsAnOlderJournal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openTestDatabase(t, "file:"+filepath.Join(t.TempDir(), "old.db"))
	for _, q := range schema {
		_, err := db.SQL.ExecContext(ctx, q)
		require.NoError(t, err)
	}
	for _, q := range migrations[:chainedFrom-3] {
		_, err := db.SQL.ExecContext(ctx, q)
		require.NoError(t, err)
	}
	_, err := db.SQL.ExecContext(ctx, `INSERT INTO stanch_schema (version) VALUES (?)`, chainedFrom-3)
	require.NoError(t, err)
	for i := 1; i <= 3; i++ {
		_, err := db.SQL.ExecContext(ctx, `INSERT INTO stanch_journal (run_id, seq, at, event, detail) VALUES ('run_old', ?, ?, 'effect', 'before hashes')`, i, i)
		require.NoError(t, err)
	}
	s := NewStore(db, func() time.Time { return time.Unix(100, 0) })
	require.NoError(t, s.Migrate(ctx))
	appendEntries(t, s, "run_old", 2)
	require.NoError(t, s.Migrate(ctx), "a second start chains nothing again")

	c, err := s.VerifyJournal(ctx, "run_old")
	require.NoError(t, err)
	require.True(t, c.OK(), "%+v", c.Breaks)
	require.Equal(t, 5, c.Entries)
	require.Equal(t, 3, c.ChainedAtMigration)

	tamper(t, db, `UPDATE stanch_journal SET detail = 'after hashes' WHERE run_id = 'run_old' AND seq = 2`)
	c, err = s.VerifyJournal(ctx, "run_old")
	require.NoError(t, err)
	require.Equal(t, []ChainBreak{{Seq: 2, Problem: "edited", Detail: "entry 2 (effect) does not match its hash: its time, step, attempt, event or detail changed"}}, c.Breaks)
}

func BenchmarkAppendJournal(b *testing.B) {
	ctx := context.Background()
	db, err := OpenDatabase(ctx, "file:"+filepath.Join(b.TempDir(), "bench.db"))
	require.NoError(b, err)
	defer db.Close()
	s := NewStore(db, nil)
	require.NoError(b, s.Migrate(ctx))
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		require.NoError(b, s.inTx(ctx, func(tx *sql.Tx) error {
			return s.appendJournal(ctx, tx, fmt.Sprintf("run_%d", i%10), "step", 1, "effect", "deleted access key")
		}))
	}
}
