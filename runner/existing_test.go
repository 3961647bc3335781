package runner

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stanchhq/stanch/internal/testkit"
	"github.com/stretchr/testify/require"
)

// OpenExistingDatabase opens a store that exists and creates nothing;
// CheckSchema says when the store is older than this build. On both
// stores.
func TestOpenExistingDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		missing := filepath.Join(dir, "sub", "stanch.db")
		_, err := OpenExistingDatabase(ctx, "file:"+missing)
		require.ErrorIs(t, err, ErrNoStore)
		require.EqualError(t, err, "no store at file:"+missing)
		require.NoDirExists(t, filepath.Dir(missing), "nothing is created")

		empty := filepath.Join(dir, "empty.db")
		require.NoError(t, os.WriteFile(empty, nil, 0o600))
		_, err = OpenExistingDatabase(ctx, "file:"+empty)
		require.ErrorIs(t, err, ErrNoStore)
		require.Contains(t, err.Error(), "holds no stanch tables")

		path := filepath.Join(dir, "stanch.db")
		db, err := OpenDatabase(ctx, "file:"+path)
		require.NoError(t, err)
		require.NoError(t, NewStore(db, nil).Migrate(ctx))
		db.Close()
		checkExisting(t, "file:"+path)
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		storeURL := testkit.PostgresURL(t) // skipped without STANCH_TEST_POSTGRES
		db := openTestDatabase(t, storeURL)
		_, err := OpenExistingDatabase(ctx, storeURL)
		require.ErrorIs(t, err, ErrNoStore, "a database without stanch's tables")
		require.Contains(t, err.Error(), "no store at "+db.URL+": it holds no stanch tables")
		require.NoError(t, NewStore(db, nil).Migrate(ctx))
		checkExisting(t, storeURL)
	})
}

// checkExisting opens a migrated store as it is, then as an older stanch
// would have left it.
func checkExisting(t *testing.T, url string) {
	t.Helper()
	ctx := context.Background()
	db, err := OpenExistingDatabase(ctx, url)
	require.NoError(t, err)
	defer db.Close()
	store := NewStore(db, nil)
	require.NoError(t, store.CheckSchema(ctx))
	runs, err := store.ListRuns(ctx, ListFilter{})
	require.NoError(t, err)
	require.Empty(t, runs)

	_, err = db.SQL.ExecContext(ctx, `UPDATE stanch_schema SET version = 3`)
	require.NoError(t, err)
	_, err = db.SQL.ExecContext(ctx, `DROP TABLE stanch_seen_requests`)
	require.NoError(t, err)
	err = store.CheckSchema(ctx)
	require.ErrorIs(t, err, ErrStoreOutdated)
	require.Contains(t, err.Error(), "schema version 3, this build's is ")
	require.Contains(t, err.Error(), "tables missing: stanch_seen_requests")
}
