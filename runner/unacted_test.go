package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/internal/testkit"
	"github.com/stanchhq/stanch/playbooks"
)

// lockedBuffer is the log a runner writes from its workers while the test
// reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// resolving is a runner whose one resolver, "github.test_ref", answers as the
// test says: each answer is an alert about the key id in the reference, or
// the error fail returns. It stands in for the GitHub resolver, which the
// triggers tests run against the sandbox.
type resolving struct {
	runner *Runner
	db     *Database
	log    *lockedBuffer
	calls  atomic.Int64
	fail   atomic.Value // func() error
}

func startResolving(t *testing.T, open func(t *testing.T) *Database, books ...*playbooks.Playbook) *resolving {
	t.Helper()
	rs := &resolving{db: open(t), log: &lockedBuffer{}}
	rs.fail.Store(func() error { return nil })
	resolve := func(_ context.Context, ref json.RawMessage) ([]alert.Alert, error) {
		rs.calls.Add(1)
		if err := rs.fail.Load().(func() error)(); err != nil {
			return nil, err
		}
		var r struct{ Key string }
		if err := json.Unmarshal(ref, &r); err != nil {
			return nil, err
		}
		a := alert.Alert{Source: alert.SourceGitHub, DedupKey: "github:acme/api#7", Credential: alert.Credential{ID: r.Key}}
		a.Normalise(time.Now())
		return []alert.Alert{a}, nil
	}
	ctx := context.Background()
	r, err := New(ctx, Config{DB: rs.db, Registry: testkit.NewWorld().Registry(t), Playbooks: books,
		Resolvers: map[string]Resolver{"github.test_ref": resolve}, Logger: slog.New(slog.NewTextHandler(rs.log, nil))})
	require.NoError(t, err)
	require.NoError(t, r.Start(ctx))
	t.Cleanup(func() { _ = r.Stop(context.Background()) })
	rs.runner = r
	return rs
}

// jobStates returns the states of the resolve jobs, oldest first.
func (rs *resolving) jobStates(t *testing.T) []string {
	t.Helper()
	rows, err := rs.db.SQL.QueryContext(context.Background(), `SELECT state FROM river_job WHERE kind = 'stanch.resolve' ORDER BY id`)
	require.NoError(t, err)
	defer rows.Close()
	var states []string
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		states = append(states, s)
	}
	return states
}

// waitJobs waits until the resolve jobs are in exactly these states.
func (rs *resolving) waitJobs(t *testing.T, want ...string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := rs.jobStates(t)
		if fmt.Sprint(got) == fmt.Sprint(want) {
			return
		}
		require.True(t, time.Now().Before(deadline), "resolve jobs %v, want %v; log:\n%s", got, want, rs.log.String())
		time.Sleep(10 * time.Millisecond)
	}
}

// TestUnactionableResolutionIsRecordedNotRetried: a resolver error that
// wraps alert.ErrUnactionable (GitHub answered 404) cancels the job at its
// first attempt, keeps the alert as one that started no run with its
// reason (redacted), logs it at ERROR, and counts it again when it comes
// back; once the alert is resolved after all, the record goes.
func TestUnactionableResolutionIsRecordedNotRetried(t *testing.T) {
	t.Parallel()
	for name, open := range testDatabases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := testkit.NewWorld()
			pb, err := playbooks.Parse("test.yaml", []byte(twoSteps), b.Registry(t))
			require.NoError(t, err)
			rs := startResolving(t, open, pb)
			rs.fail.Store(func() error {
				return fmt.Errorf("%w: GitHub answered 404 to get alert acme/api#7 (token %s): give it that permission", alert.ErrUnactionable, testkit.Secret)
			})
			ref := []byte(`{"Key":"AKIAIOSFODNN7EXAMPLE"}`)
			require.NoError(t, rs.runner.Defer(ctx, "github.test_ref", "github:acme/api#7", ref))
			rs.waitJobs(t, "cancelled")
			require.EqualValues(t, 1, rs.calls.Load(), "not retried")

			u, err := rs.runner.Store().Unacted(ctx, "github:acme/api#7")
			require.NoError(t, err)
			require.Equal(t, "github", u.Source)
			require.Equal(t, "acme/api#7", u.Reference)
			require.Equal(t, 1, u.Count)
			require.Contains(t, u.Reason, "GitHub answered 404 to get alert acme/api#7")
			require.NotContains(t, u.Reason, testkit.Secret)
			log := rs.log.String()
			require.Contains(t, log, "level=ERROR msg=\"alert cannot be acted on; it started no run\"")
			require.NotContains(t, log, testkit.Secret)

			// A redelivery is resolved again (a cancelled job does not
			// block it), fails the same way, and is counted.
			require.NoError(t, rs.runner.Defer(ctx, "github.test_ref", "github:acme/api#7", ref))
			rs.waitJobs(t, "cancelled", "cancelled")
			n, err := rs.runner.Store().CountUnacted(ctx)
			require.NoError(t, err)
			require.Equal(t, 1, n)
			u, err = rs.runner.Store().Unacted(ctx, "github:acme/api#7")
			require.NoError(t, err)
			require.Equal(t, 2, u.Count)

			// Fixed: the next delivery starts a run and the record goes.
			rs.fail.Store(func() error { return nil })
			require.NoError(t, rs.runner.Defer(ctx, "github.test_ref", "github:acme/api#7", ref))
			rs.waitJobs(t, "cancelled", "cancelled", "completed")
			_, err = rs.runner.Store().Unacted(ctx, "github:acme/api#7")
			require.ErrorIs(t, err, ErrNotFound)
			runs, err := rs.runner.Store().ListRuns(ctx, ListFilter{})
			require.NoError(t, err)
			require.Len(t, runs, 1)
		})
	}
}

// TestResolutionGivingUpIsRecorded: other errors are retried, and recorded
// only when the last attempt fails.
func TestResolutionGivingUpIsRecorded(t *testing.T) {
	t.Parallel()
	for name, open := range testDatabases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			rs := startResolving(t, open)
			rs.fail.Store(func() error { return errors.New("GitHub answered 502 Bad Gateway") })

			require.NoError(t, rs.runner.Defer(ctx, "github.test_ref", "github:acme/api#8", []byte(`{}`)))
			rs.waitJobs(t, "retryable")
			_, err := rs.runner.Store().Unacted(ctx, "github:acme/api#8")
			require.ErrorIs(t, err, ErrNotFound, "an attempt that will be retried is no record")
			require.Contains(t, rs.log.String(), "level=WARN msg=\"alert not resolved yet; will retry\"")

			// The last attempt (here the only one) fails: recorded.
			_, err = rs.runner.client.Insert(ctx, ResolveArgs{Resolver: "github.test_ref", DedupKey: "github:acme/api#9", Ref: []byte(`{}`)}, &river.InsertOpts{MaxAttempts: 1})
			require.NoError(t, err)
			rs.waitJobs(t, "retryable", "discarded")
			u, err := rs.runner.Store().Unacted(ctx, "github:acme/api#9")
			require.NoError(t, err)
			require.Equal(t, "resolve github:acme/api#9: GitHub answered 502 Bad Gateway", u.Reason[len("gave up after 1 attempts: "):])
			require.Contains(t, rs.log.String(), "level=ERROR msg=\"alert cannot be acted on; it started no run\"")
		})
	}
}
