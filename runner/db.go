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
	switch {
	case strings.HasPrefix(url, "file:"):
		path := strings.TrimPrefix(url, "file:")
		if i := strings.IndexByte(path, '?'); i >= 0 {
			path = path[:i]
		}
		if path == "" {
			return nil, fmt.Errorf("%w %q: want file:PATH", ErrDatabaseURL, url)
		}
		return openSQLite(path)
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		return openPostgres(ctx, url)
	default:
		return nil, fmt.Errorf("%w %q: want file:PATH for the embedded SQLite store or postgres://USER@HOST/DB", ErrDatabaseURL, url)
	}
}

func openSQLite(path string) (*Database, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create database directory: %w", err)
	}
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	// SQLite allows one writer; River's own advice is a single connection,
	// which also keeps our journal writes and River's in one order.
	db.SetMaxOpenConns(1)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	return &Database{Dialect: SQLite, URL: "file:" + path, Path: path, SQL: db}, nil
}

func openPostgres(ctx context.Context, url string) (*Database, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDatabaseURL, err)
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

// Close closes the handles.
func (d *Database) Close() error {
	err := d.SQL.Close()
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
