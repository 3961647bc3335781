package testkit

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx" for creating per-test databases
	"github.com/stretchr/testify/require"
)

// StoreURLs returns, by store, a function that makes an empty store of its
// own for one test and returns its URL (for runner.OpenDatabase): SQLite
// always, PostgreSQL when STANCH_TEST_POSTGRES names a server (make test
// and CI start one). It returns URLs, not opened stores, so that the
// runner's own tests can use it: testkit cannot import the runner.
func StoreURLs(t *testing.T) map[string]func(t *testing.T) string {
	out := map[string]func(t *testing.T) string{"sqlite": SQLiteURL}
	if os.Getenv("STANCH_TEST_POSTGRES") == "" {
		t.Log("STANCH_TEST_POSTGRES is not set: PostgreSQL variants skipped (make test sets it)")
		return out
	}
	out["postgres"] = PostgresURL
	return out
}

// SQLiteURL returns the URL of an SQLite store in the test's temporary
// directory.
func SQLiteURL(t *testing.T) string {
	return "file:" + filepath.Join(t.TempDir(), "stanch.db")
}

var pgCounter atomic.Int64

// PostgresURL creates a database of its own for one test, so that River's
// tables and workers of parallel tests never meet, and returns its URL
// (with STANCH_TEST_POSTGRES's credentials). The database is dropped when
// the test ends, after the cleanups registered later (such as closing
// it). Without STANCH_TEST_POSTGRES the test is skipped.
func PostgresURL(t *testing.T) string {
	t.Helper()
	base := os.Getenv("STANCH_TEST_POSTGRES")
	if base == "" {
		t.Skip("STANCH_TEST_POSTGRES is not set (make test sets it)")
	}
	ctx := context.Background()
	admin, err := sql.Open("pgx", base)
	require.NoError(t, err)
	defer admin.Close()
	name := fmt.Sprintf("stanch_t_%d_%d", os.Getpid(), pgCounter.Add(1))
	_, err = admin.ExecContext(ctx, "CREATE DATABASE "+name)
	require.NoError(t, err)
	t.Cleanup(func() {
		a, err := sql.Open("pgx", base)
		if err == nil {
			_, _ = a.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			a.Close()
		}
	})
	u, err := url.Parse(base)
	require.NoError(t, err)
	u.Path = "/" + name
	return u.String()
}
