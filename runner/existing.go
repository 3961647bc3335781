package runner

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"slices"
	"strings"
)

// Commands that only read the store (stanch runs list, runs show, alerts
// list) open it with OpenExistingDatabase and check it with CheckSchema:
// they never create or change one, so that a mistyped --database, or a
// store nothing has used yet, is an error naming it instead of an empty
// list from a store made on the spot.

// ErrNoStore is wrapped by OpenExistingDatabase's error when the database
// holds no stanch store: the SQLite file does not exist, or the database
// has none of stanch's tables.
var ErrNoStore = errors.New("no store")

// ErrStoreOutdated is wrapped by CheckSchema's error when the store was
// written by an older stanch: it lacks tables or columns this build reads,
// and only a command that works the store (and so migrates it) adds them.
var ErrStoreOutdated = errors.New("store written by an older stanch")

// OpenExistingDatabase opens the store url names, as OpenDatabase does,
// but creates nothing: a missing SQLite file, or a database without
// stanch's tables, is refused with ErrNoStore.
func OpenExistingDatabase(ctx context.Context, url string) (*Database, error) {
	dialect, path, err := parseDatabaseURL(url)
	if err != nil {
		return nil, err
	}
	var db *Database
	if dialect == Postgres {
		db, err = openPostgres(ctx, url)
	} else {
		if _, statErr := os.Stat(path); errors.Is(statErr, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w at file:%s", ErrNoStore, path)
		}
		// mode=rw: should the file go between the check and the open,
		// SQLite refuses rather than creates it.
		db, err = openSQLite(path, "&mode=rw")
	}
	if err != nil {
		return nil, err
	}
	tables, err := db.tables(ctx)
	if err != nil {
		db.Close()
		return nil, err
	}
	if !tables["stanch_schema"] {
		db.Close()
		return nil, fmt.Errorf("%w at %s: it holds no stanch tables", ErrNoStore, db.URL)
	}
	return db, nil
}

// CheckSchema returns an error wrapping ErrStoreOutdated when the store
// lacks a table or a migration this build has; it changes nothing.
func (s *Store) CheckSchema(ctx context.Context) error {
	tables, err := s.db.tables(ctx)
	if err != nil {
		return err
	}
	var missing []string
	for _, t := range schemaTables() {
		if !tables[t] {
			missing = append(missing, t)
		}
	}
	version := 0
	if tables["stanch_schema"] {
		err := s.db.SQL.QueryRowContext(ctx, `SELECT version FROM stanch_schema`).Scan(&version)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("read the store's schema version: %w", err)
		}
	}
	if len(missing) == 0 && version >= len(migrations) {
		return nil
	}
	what := fmt.Sprintf("schema version %d, this build's is %d", version, len(migrations))
	if len(missing) > 0 {
		what += "; tables missing: " + strings.Join(missing, ", ")
	}
	return fmt.Errorf("%w at %s (%s)", ErrStoreOutdated, s.db.URL, what)
}

// tables returns the names of the tables the store's database has, in the
// schema stanch's unqualified names resolve to.
func (d *Database) tables(ctx context.Context) (map[string]bool, error) {
	q := `SELECT name FROM sqlite_master WHERE type = 'table'`
	if d.Dialect == Postgres {
		q = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()`
	}
	rows, err := d.SQL.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("list the tables of %s: %w", d.URL, err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("list the tables of %s: %w", d.URL, err)
		}
		out[name] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list the tables of %s: %w", d.URL, err)
	}
	return out, nil
}

var createTable = regexp.MustCompile(`CREATE TABLE IF NOT EXISTS (\w+)`)

// schemaTables are the tables Migrate creates.
func schemaTables() []string {
	var out []string
	for _, q := range schema {
		if m := createTable.FindStringSubmatch(q); m != nil && !slices.Contains(out, m[1]) {
			out = append(out, m[1])
		}
	}
	return out
}
