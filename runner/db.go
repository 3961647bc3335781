package runner

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Dialect names the SQL database behind a store.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// Database is an open store database: a database/sql handle for stanch's own
// tables and, for PostgreSQL, the pgx pool River's driver uses.
type Database struct {
	Dialect Dialect
	// URL is the database as the user named it, without any password.
	URL string
	// Path is the SQLite file; empty for PostgreSQL.
	Path string
	SQL  *sql.DB
	Pool *pgxpool.Pool
	// durable is a second SQLite connection for the commits that answer a
	// sender: they do not queue behind the workers' use of SQL. SQLite
	// serialises the writes themselves.
	durable *sql.DB
}

// DefaultDatabaseURL is file:<state dir>/stanch/stanch.db, following the XDG
// base directory convention for state that should survive reboots.
func DefaultDatabaseURL() string {
	dir := os.Getenv("XDG_STATE_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = os.TempDir()
		}
		dir = filepath.Join(home, ".local", "state")
	}
	return "file:" + filepath.Join(dir, "stanch", "stanch.db")
}

// ErrDatabaseURL is wrapped by every error about a malformed --database.
var ErrDatabaseURL = errors.New("bad database URL")

// OpenDatabase opens file:PATH (SQLite, created if missing) or
// postgres://… / postgresql://… .
func OpenDatabase(ctx context.Context, url string) (*Database, error) {
	dialect, path, err := parseDatabaseURL(url)
	if err != nil {
		return nil, err
	}
	if dialect == Postgres {
		return openPostgres(ctx, url)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create database directory: %w", err)
	}
	return openSQLite(path, "")
}

// parseDatabaseURL says which database url names, and for SQLite the file.
func parseDatabaseURL(url string) (Dialect, string, error) {
	switch {
	case strings.HasPrefix(url, "file:"):
		path := strings.TrimPrefix(url, "file:")
		if i := strings.IndexByte(path, '?'); i >= 0 {
			path = path[:i]
		}
		if path == "" {
			return "", "", fmt.Errorf("%w %q: want file:PATH", ErrDatabaseURL, url)
		}
		return SQLite, path, nil
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		return Postgres, "", nil
	default:
		return "", "", fmt.Errorf("%w %q: want file:PATH for the embedded SQLite store or postgres://USER@HOST/DB", ErrDatabaseURL, url)
	}
}

// openSQLite opens the file at path; extra is added to the DSN's query
// (mode=rw refuses to create a missing file).
func openSQLite(path, extra string) (*Database, error) {
	// Commits that answer a sender (an alert accepted, a decision
	// recorded) are made with synchronous=FULL: they survive a power cut.
	// Everything else a run writes uses NORMAL, which survives a crash of
	// the process but may lose the last moments of progress to a power cut;
	// the steps then run again and, being idempotent, find their work done.
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate" + extra
	db := openCaching(dsn)
	// SQLite allows one writer; River's own advice is a single connection,
	// which also keeps our journal writes and River's in one order.
	db.SetMaxOpenConns(1)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	durable := openCaching(dsn)
	durable.SetMaxOpenConns(1)
	return &Database{Dialect: SQLite, URL: "file:" + path, Path: path, SQL: db, durable: durable}, nil
}

// defaultPoolConns is each replica's PostgreSQL pool unless the URL sets
// pool_max_conns; docs/runs.md sizes max_connections by it.
const defaultPoolConns = 16

func openPostgres(ctx context.Context, url string) (*Database, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDatabaseURL, err)
	}
	if !strings.Contains(url, "pool_max_conns") {
		// pgx's default, the larger of 4 and the number of CPUs, starves a
		// replica: its containment workers, River's producers and notifier
		// and the webhook commits all draw on the pool.
		cfg.MaxConns = defaultPoolConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to postgres %s@%s:%d/%s: %w", cfg.ConnConfig.User, cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, err)
	}
	shown := fmt.Sprintf("postgres://%s@%s:%d/%s", cfg.ConnConfig.User, cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
	return &Database{Dialect: Postgres, URL: shown, SQL: stdlib.OpenDBFromPool(pool), Pool: pool}, nil
}

// durableTx runs fn in a transaction whose commit is on disk before it
// returns, whatever the store's default.
func (d *Database) durableTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if d.Dialect != SQLite {
		return inTx(ctx, d.SQL.BeginTx, fn)
	}
	conn, err := d.durable.Conn(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `PRAGMA synchronous = FULL`); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() { _, _ = conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA synchronous = NORMAL`) }()
	return inTx(ctx, conn.BeginTx, fn)
}

func inTx(ctx context.Context, begin func(context.Context, *sql.TxOptions) (*sql.Tx, error), fn func(tx *sql.Tx) error) error {
	tx, err := begin(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Close closes the handles.
func (d *Database) Close() error {
	err := d.SQL.Close()
	if d.durable != nil {
		_ = d.durable.Close()
	}
	if d.Pool != nil {
		d.Pool.Close()
	}
	return err
}

// rebind turns the ? placeholders stanch's queries are written with into
// PostgreSQL's $n.
func (d *Database) rebind(q string) string {
	if d.Dialect != Postgres {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
