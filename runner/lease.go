package runner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Several stanch processes (replicas) may work one PostgreSQL store. River
// has no heartbeat: a job whose process died stays "running" until River's
// rescuer looks, minutes later, and a run's job may legitimately run for a
// 15-minute CloudTrail query. So each replica holds a lease, a row in
// stanch_replicas that it renews every second and that expires after
// LeaseTTL. The moment a replica's lease has expired, any other replica
// takes its running jobs over (takeover.go). Time is PostgreSQL's for the
// rows and each process's monotonic clock for its own view, which always
// ends first: a replica's deadline is counted from before the renewal it
// sent, the row's from when PostgreSQL applied it.
//
// A lease that lapses ends a term: the replica's passes stop (their
// context is cancelled), its store writes for runs are refused, and it
// joins again under a new term after taking its own leftover jobs over, so
// a replica that was paused (SIGSTOP, a VM freeze) or cut off from
// PostgreSQL never acts on a run someone else has taken.

// DefaultLeaseTTL is how long a replica's lease lasts without renewal;
// renewals come every third of it, so a replica survives two lost ones.
const DefaultLeaseTTL = 5 * time.Second

// errLeaseLost ends the passes of a replica whose lease lapsed.
var errLeaseLost = errors.New("this replica's lease lapsed; another replica takes its runs over")

// membership is this process's lease among the replicas.
type membership struct {
	db  *Database
	id  string // also River's client id: River records it on each job it runs
	ttl time.Duration
	// renewEvery is how often the lease is renewed (default a fifth of
	// ttl); tests stretch it to play a replica that stopped renewing.
	renewEvery time.Duration
	log        *slog.Logger
	// rejoin takes the replica's own running jobs over before it joins
	// again after a lapse: their passes were stopped, and without a
	// takeover nobody would resume them until River's rescuer.
	rejoin func(ctx context.Context, tx pgx.Tx, replica string) (int, error)

	mu      sync.Mutex
	current *term
}

// term is one uninterrupted holding of the lease.
type term struct {
	number int64
	mu     sync.Mutex
	until  time.Time // monotonic: held strictly before
	lapsed chan struct{}
	once   sync.Once
	timer  *time.Timer
}

func newReplicaID() string {
	host, _ := os.Hostname()
	if host == "" {
		host = "stanch"
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
}

func newTerm(number int64, until time.Time) *term {
	t := &term{number: number, until: until, lapsed: make(chan struct{})}
	t.timer = time.AfterFunc(time.Until(until), t.check)
	return t
}

// held reports whether the term is still on by this process's clock.
func (t *term) held() bool {
	select {
	case <-t.lapsed:
		return false
	default:
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return time.Now().Before(t.until)
}

// check ends the term once its deadline passed without a renewal.
func (t *term) check() {
	t.mu.Lock()
	left := time.Until(t.until)
	t.mu.Unlock()
	if left > 0 {
		t.timer.Reset(left)
		return
	}
	t.lapse()
}

func (t *term) lapse() {
	t.once.Do(func() {
		t.timer.Stop()
		close(t.lapsed)
	})
}

// extend moves the deadline to until, unless the term already lapsed.
func (t *term) extend(until time.Time) bool {
	select {
	case <-t.lapsed:
		return false
	default:
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if until.After(t.until) {
		t.until = until
	}
	return true
}

// bind returns ctx cancelled when the term lapses.
func (t *term) bind(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	stop := make(chan struct{})
	go func() {
		select {
		case <-t.lapsed:
			cancel(errLeaseLost)
		case <-stop:
		case <-ctx.Done():
		}
	}()
	return ctx, func() {
		close(stop)
		cancel(nil)
	}
}

// term returns the current term, nil while the replica has none.
func (m *membership) term() *term {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.current == nil || !m.current.held() {
		return nil
	}
	return m.current
}

// join takes a new term: it takes over whatever this replica still ran
// under an earlier one, and writes its row, in one transaction.
func (m *membership) join(ctx context.Context) error {
	m.mu.Lock()
	next := int64(1)
	if m.current != nil {
		m.current.lapse()
		next = m.current.number + 1
	}
	m.mu.Unlock()
	start := time.Now()
	tx, err := m.db.Pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("join as replica %s: %w", m.id, err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `DELETE FROM stanch_replicas WHERE id = $1`, m.id); err != nil {
		return fmt.Errorf("join as replica %s: %w", m.id, err)
	}
	if next > 1 {
		n, err := m.rejoin(ctx, tx, m.id)
		if err != nil {
			return err
		}
		if n > 0 {
			m.log.Warn("this replica's lease lapsed: its jobs were handed to whichever replica takes them first", "replica", m.id, "jobs", n)
		}
	}
	host, _ := os.Hostname()
	if _, err := tx.Exec(ctx, `INSERT INTO stanch_replicas (id, term, host, pid, started_at, renewed_at, expires_at)
		VALUES ($1, $2, $3, $4, now(), now(), now() + make_interval(secs => $5))`, m.id, next, host, os.Getpid(), m.ttl.Seconds()); err != nil {
		return fmt.Errorf("join as replica %s: %w", m.id, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("join as replica %s: %w", m.id, err)
	}
	m.mu.Lock()
	m.current = newTerm(next, start.Add(m.ttl))
	m.mu.Unlock()
	return nil
}

// renew extends the current term, or joins again when it lapsed.
func (m *membership) renew(ctx context.Context) error {
	m.mu.Lock()
	t := m.current
	m.mu.Unlock()
	if t == nil || !t.held() {
		return m.join(ctx)
	}
	start := time.Now()
	rctx, cancel := context.WithTimeout(ctx, m.ttl/2)
	defer cancel()
	tag, err := m.db.Pool.Exec(rctx, `UPDATE stanch_replicas SET renewed_at = now(), expires_at = now() + make_interval(secs => $3)
		WHERE id = $1 AND term = $2 AND expires_at > now()`, m.id, t.number, m.ttl.Seconds())
	if err != nil {
		return fmt.Errorf("renew the lease of replica %s: %w", m.id, err)
	}
	if tag.RowsAffected() == 0 || !t.extend(start.Add(m.ttl)) {
		// Taken over already: this term is over.
		t.lapse()
		m.log.Warn("this replica's lease was taken over; joining again", "replica", m.id, "term", t.number)
		return m.join(ctx)
	}
	return nil
}

// keep renews the lease until ctx ends, then gives it up: the row expires
// at once, so whatever the stop left running is taken over without delay.
func (m *membership) keep(ctx context.Context) {
	every := m.renewEvery
	if every <= 0 {
		every = m.ttl / 5
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			m.leave()
			return
		case <-tick.C:
		}
		if err := m.renew(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("could not renew this replica's lease", "replica", m.id, "error", err)
		}
	}
}

// leave ends the lease: the row expires now, for the next reaper.
func (m *membership) leave() {
	m.mu.Lock()
	t := m.current
	m.mu.Unlock()
	if t == nil {
		return
	}
	t.lapse()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := m.db.Pool.Exec(ctx, `UPDATE stanch_replicas SET expires_at = now() WHERE id = $1 AND term = $2`, m.id, t.number); err != nil {
		m.log.Warn("could not give up this replica's lease; it expires by itself", "replica", m.id, "error", err)
	}
}

// leased binds ctx to this replica's current term, so that the work done
// under it stops when the lease lapses. held is false when the replica has
// no lease: the job goes back for a replica that has one. On SQLite every
// job is the one process's.
func (r *Runner) leased(ctx context.Context) (_ context.Context, release context.CancelFunc, t *term, held bool) {
	if r.member == nil {
		return ctx, func() {}, nil, true
	}
	if t = r.member.term(); t == nil {
		return ctx, func() {}, nil, false
	}
	ctx, release = t.bind(ctx)
	return ctx, release, t, true
}
