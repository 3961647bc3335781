package runner

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// cachedDB opens a SQLite file through the statement cache, on one
// connection, and returns it with that connection's cache.
func cachedDB(t *testing.T) (*sql.DB, func() map[string]*cachedStmt) {
	t.Helper()
	db := openCaching("file:" + filepath.Join(t.TempDir(), "c.db") + "?_pragma=journal_mode(WAL)")
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	_, err := db.Exec(`CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)`)
	require.NoError(t, err)
	cache := func() map[string]*cachedStmt {
		conn, err := db.Conn(context.Background())
		require.NoError(t, err)
		defer conn.Close()
		var out map[string]*cachedStmt
		require.NoError(t, conn.Raw(func(c any) error {
			cc := c.(*cachingConn)
			cc.mu.Lock()
			defer cc.mu.Unlock()
			out = map[string]*cachedStmt{}
			for q, s := range cc.stmts {
				out[q] = s
			}
			return nil
		}))
		return out
	}
	return db, cache
}

func TestStatementsAreCompiledOncePerConnection(t *testing.T) {
	t.Parallel()
	db, cache := cachedDB(t)
	const insert = `INSERT INTO t (name) VALUES (?)`
	for i := range 50 {
		_, err := db.Exec(insert, fmt.Sprint("n", i))
		require.NoError(t, err)
	}
	first := cache()[insert]
	require.NotNil(t, first)
	_, err := db.Exec(insert, "again")
	require.NoError(t, err)
	require.Same(t, first, cache()[insert], "the statement is kept and run again")
	var n int
	require.NoError(t, db.QueryRow(`SELECT COUNT(*) FROM t`).Scan(&n))
	require.Equal(t, 51, n)
}

// A query whose rows are still open keeps its statement; the same query
// meanwhile runs on a statement of its own.
func TestOpenRowsKeepTheirStatement(t *testing.T) {
	t.Parallel()
	db, cache := cachedDB(t)
	for _, n := range []string{"a", "b", "c"} {
		_, err := db.Exec(`INSERT INTO t (name) VALUES (?)`, n)
		require.NoError(t, err)
	}
	const q = `SELECT name FROM t WHERE name >= ? ORDER BY name`
	tx, err := db.Begin()
	require.NoError(t, err)
	defer tx.Rollback()
	outer, err := tx.Query(q, "a")
	require.NoError(t, err)
	var got []string
	for outer.Next() {
		var name string
		require.NoError(t, outer.Scan(&name))
		inner, err := tx.Query(q, name)
		require.NoError(t, err)
		var after []string
		for inner.Next() {
			var m string
			require.NoError(t, inner.Scan(&m))
			after = append(after, m)
		}
		require.NoError(t, inner.Close())
		got = append(got, fmt.Sprint(name, after))
	}
	require.NoError(t, outer.Err())
	require.NoError(t, outer.Close())
	require.NoError(t, tx.Commit())
	require.Equal(t, []string{"a[a b c]", "b[b c]", "c[c]"}, got)
	require.False(t, cache()[q].busy, "handed back once its rows closed")
}

// A statement that failed, one run in a transaction rolled back, and one
// compiled before the table changed all run correctly again.
func TestCachedStatementsSurviveErrorsRollbacksAndSchemaChanges(t *testing.T) {
	t.Parallel()
	db, _ := cachedDB(t)
	const insert = `INSERT INTO t (name) VALUES (?)`
	_, err := db.Exec(insert, "x")
	require.NoError(t, err)
	_, err = db.Exec(insert, "x")
	require.ErrorContains(t, err, "UNIQUE")
	_, err = db.Exec(insert, "y")
	require.NoError(t, err)

	tx, err := db.Begin()
	require.NoError(t, err)
	_, err = tx.Exec(insert, "z")
	require.NoError(t, err)
	require.NoError(t, tx.Rollback())
	_, err = db.Exec(insert, "z")
	require.NoError(t, err, "the rolled-back insert left nothing behind")

	const all = `SELECT * FROM t ORDER BY id`
	cols := func() []string {
		rows, err := db.Query(all)
		require.NoError(t, err)
		defer rows.Close()
		c, err := rows.Columns()
		require.NoError(t, err)
		return c
	}
	require.Equal(t, []string{"id", "name"}, cols())
	_, err = db.Exec(`ALTER TABLE t ADD COLUMN note TEXT NOT NULL DEFAULT ''`)
	require.NoError(t, err)
	require.Equal(t, []string{"id", "name", "note"}, cols(), "a kept statement sees the table as it is now")
}

// Queries built with a varying number of placeholders do not grow the
// cache without bound.
func TestStatementCacheIsBounded(t *testing.T) {
	t.Parallel()
	db, cache := cachedDB(t)
	for i := range maxCachedStatements + 50 {
		var n int
		require.NoError(t, db.QueryRow(fmt.Sprintf(`SELECT %d + COUNT(*) FROM t`, i)).Scan(&n))
		require.Equal(t, i, n)
	}
	require.LessOrEqual(t, len(cache()), maxCachedStatements)
}
