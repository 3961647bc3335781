package runner

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"sync"

	"modernc.org/sqlite"
)

// SQLite compiles every statement it runs, and database/sql hands the
// driver the text of each query afresh: River's SQLite driver and the store
// send the same few dozen statements over and over, and compiling them was
// the largest single cost of containing a key (a sixth of the CPU), larger
// than running them. Worse, River completes the jobs that finished in the
// last 250 ms in one transaction of one statement each (about 0.25 ms to
// compile): every other write waited behind it, which was the tail of the
// time to contain. So each SQLite connection keeps the statements it
// compiled, by text, and runs them again.

// maxCachedStatements bounds a connection's cache: the statements stanch
// and River send are few, but a query built with a varying number of
// placeholders is a new text each time.
const maxCachedStatements = 256

// cachingConnector opens SQLite connections that keep their statements.
type cachingConnector struct {
	dsn    string
	driver *sqlite.Driver
}

func (c cachingConnector) Connect(context.Context) (driver.Conn, error) {
	conn, err := c.driver.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	base, ok := conn.(sqliteConn)
	if !ok {
		return conn, nil // a driver without these would run uncached
	}
	return &cachingConn{base: base, stmts: map[string]*cachedStmt{}}, nil
}

func (c cachingConnector) Driver() driver.Driver { return c.driver }

// sqliteConn is what modernc.org/sqlite's connections implement and
// database/sql uses.
type sqliteConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

type cachedStmt struct {
	stmt driver.Stmt
	// busy is set while the statement runs or its rows are open: the same
	// text meanwhile gets a statement of its own.
	busy bool
}

// cachingConn runs queries through statements it keeps. database/sql uses
// a connection from one goroutine at a time, but may close rows from
// another; mu covers the cache.
type cachingConn struct {
	base  sqliteConn
	mu    sync.Mutex
	stmts map[string]*cachedStmt
}

var (
	_ driver.ExecerContext  = (*cachingConn)(nil)
	_ driver.QueryerContext = (*cachingConn)(nil)
	_ sqliteConn            = (*cachingConn)(nil)
)

// statement returns a compiled statement for query and what to do once it
// has run (and its rows are closed).
func (c *cachingConn) statement(ctx context.Context, query string) (driver.Stmt, func(), error) {
	c.mu.Lock()
	cached, ok := c.stmts[query]
	if ok && !cached.busy {
		cached.busy = true
		c.mu.Unlock()
		return cached.stmt, c.release(cached), nil
	}
	c.mu.Unlock()
	stmt, err := c.base.PrepareContext(ctx, query)
	if err != nil {
		return nil, nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if ok || c.stmts == nil || len(c.stmts) >= maxCachedStatements {
		return stmt, func() { _ = stmt.Close() }, nil
	}
	cached = &cachedStmt{stmt: stmt, busy: true}
	c.stmts[query] = cached
	return stmt, c.release(cached), nil
}

func (c *cachingConn) release(s *cachedStmt) func() {
	return func() {
		c.mu.Lock()
		s.busy = false
		c.mu.Unlock()
	}
}

func (c *cachingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	stmt, done, err := c.statement(ctx, query)
	if err != nil {
		return nil, err
	}
	defer done()
	return stmt.(driver.StmtExecContext).ExecContext(ctx, args)
}

func (c *cachingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	stmt, done, err := c.statement(ctx, query)
	if err != nil {
		return nil, err
	}
	rows, err := stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		done()
		return nil, err
	}
	return &releasingRows{Rows: rows, done: done}, nil
}

func (c *cachingConn) Close() error {
	c.mu.Lock()
	for _, s := range c.stmts {
		_ = s.stmt.Close()
	}
	c.stmts = nil
	c.mu.Unlock()
	return c.base.Close()
}

func (c *cachingConn) Prepare(query string) (driver.Stmt, error) { return c.base.Prepare(query) }

// Begin is for drivers database/sql cannot begin with options; it uses
// BeginTx.
func (c *cachingConn) Begin() (driver.Tx, error) {
	return c.base.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *cachingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.base.BeginTx(ctx, opts)
}

func (c *cachingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.base.PrepareContext(ctx, query)
}

func (c *cachingConn) Ping(ctx context.Context) error { return c.base.Ping(ctx) }

func (c *cachingConn) ResetSession(ctx context.Context) error { return c.base.ResetSession(ctx) }

func (c *cachingConn) IsValid() bool { return c.base.IsValid() }

// releasingRows hands its statement back once closed. Rows are closed
// once, by database/sql.
type releasingRows struct {
	driver.Rows
	done func()
}

func (r *releasingRows) Close() error {
	err := r.Rows.Close()
	if r.done != nil {
		r.done()
		r.done = nil
	}
	return err
}

// openCaching opens a SQLite database whose connections keep their
// statements. Like sql.Open, it connects at first use.
func openCaching(dsn string) *sql.DB {
	return sql.OpenDB(cachingConnector{dsn: dsn, driver: &sqlite.Driver{}})
}
