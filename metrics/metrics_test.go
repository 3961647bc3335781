package metrics

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/internal/testkit"
	"github.com/stanchhq/stanch/metrics/metricstest"
	"github.com/stanchhq/stanch/playbooks"
	"github.com/stanchhq/stanch/runner"
	"github.com/stanchhq/stanch/triggers"
)

// The metrics are fed by a real runner on a real (SQLite) store, running
// the actions of testkit.World (test.check reads, test.contain contains as
// aws.deactivate_key does, test.refused fails as AWS refusing it would),
// and by the real endpoints; every check reads what /metrics serves.

type bundle struct {
	metrics *Metrics
	runner  *runner.Runner
	reg     *actions.Registry
	url     string // of /metrics
}

func setup(t *testing.T) *bundle {
	t.Helper()
	ctx := context.Background()
	db, err := runner.OpenDatabase(ctx, testkit.SQLiteURL(t))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	b := &bundle{metrics: New(nil), reg: testkit.NewWorld().Registry(t)}
	b.runner, err = runner.New(ctx, runner.Config{DB: db, Registry: b.reg, Observer: b.metrics.Observe})
	require.NoError(t, err)
	require.NoError(t, b.runner.Start(ctx))
	t.Cleanup(func() { _ = b.runner.Stop(context.Background()) })
	b.metrics.WatchStore(b.runner.Store().Stats)
	srv := httptest.NewServer(b.metrics.Handler())
	t.Cleanup(srv.Close)
	b.url = srv.URL
	return b
}

func (b *bundle) playbook(t *testing.T, src string) *playbooks.Playbook {
	t.Helper()
	pb, err := playbooks.Parse("test.yaml", []byte(src), b.reg)
	require.NoError(t, err)
	return pb
}

func (b *bundle) submit(t *testing.T, pb *playbooks.Playbook, a alert.Alert) runner.Submission {
	t.Helper()
	sub, err := b.runner.Submit(context.Background(), a, []*playbooks.Playbook{pb})
	require.NoError(t, err)
	return sub
}

// scrapeUntil scrapes until ok holds, for up to 30 s.
func (b *bundle) scrapeUntil(t *testing.T, what string, ok func(metricstest.Scrape) bool) metricstest.Scrape {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := metricstest.Get(t, b.url)
		if ok(s) {
			return s
		}
		require.True(t, time.Now().Before(deadline), "never: %s", what)
		time.Sleep(50 * time.Millisecond)
	}
}

func value(s metricstest.Scrape, name string, labels ...string) float64 {
	v, _ := s.Value(name, labels...)
	return v
}

func keyAlert(source, id string) alert.Alert {
	a := alert.Alert{Source: source, Credential: alert.Credential{ID: id}}
	a.Normalise(time.Now())
	return a
}

const containPlaybook = `
name: contain-test
steps:
  - id: check
    action: test.check
  - id: contain
    action: test.contain
  - id: contain_again
    action: test.contain
`

func TestMetricsCountWhatRunsDo(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pb := b.playbook(t, containPlaybook)
	a := keyAlert(alert.SourceManual, "AKIAIOSFODNN7EXAMPLE")
	require.Len(t, b.submit(t, pb, a).Started, 1)
	b.scrapeUntil(t, "the run finished", func(s metricstest.Scrape) bool {
		return value(s, "stanch_runs_finished_total", "playbook", "contain-test", "status", "succeeded") == 1
	})
	require.Len(t, b.submit(t, pb, a).Existing, 1, "a redelivery")
	// The gauges are read from the store at most once a second: they
	// settle a moment after the counters.
	s := b.scrapeUntil(t, "the redelivery counted, no run open", func(s metricstest.Scrape) bool {
		return value(s, "stanch_alerts_total", "source", "manual", "result", "duplicate") == 1 &&
			value(s, "stanch_runs_in_progress", "status", "pending")+value(s, "stanch_runs_in_progress", "status", "running") == 0
	})

	require.Equal(t, 1.0, value(s, "stanch_alerts_total", "source", "manual", "result", "started"))
	require.Len(t, s.Series("stanch_runs_finished_total"), 1)
	count, _, ok := s.Histogram("stanch_step_duration_seconds", "action", "test.check", "outcome", "done")
	require.True(t, ok)
	require.Equal(t, uint64(1), count)
	count, _, _ = s.Histogram("stanch_step_duration_seconds", "action", "test.contain", "outcome", "done")
	require.Equal(t, uint64(2), count, "both containment steps are steps")
	require.Len(t, s.Series("stanch_step_duration_seconds"), 2)

	count, sum, ok := s.Histogram("stanch_time_to_contain_seconds", "playbook", "contain-test", "source", "manual")
	require.True(t, ok)
	require.Equal(t, uint64(1), count, "contained once: by the first containment step")
	require.Greater(t, sum, 0.0)

	for _, status := range []string{"pending", "running", "waiting_approval"} {
		v, ok := s.Value("stanch_runs_in_progress", "status", status)
		require.True(t, ok, status)
		require.Zero(t, v, status)
	}
	require.Equal(t, 0.0, value(s, "stanch_approvals_waiting"))
	require.Equal(t, 0.0, value(s, "stanch_approval_oldest_wait_seconds"))
	require.Len(t, s.Series("stanch_queue_jobs"), 12, "3 queues × 4 states, zeros included")
	_, ok = s.Value("stanch_queue_jobs", "queue", "containment", "state", "available")
	require.True(t, ok)
	require.Equal(t, 1.0, value(s, "stanch_store_up"))
	require.Contains(t, s, "go_goroutines")
	require.Contains(t, s, "process_cpu_seconds_total")
	for _, v := range s.LabelValues() {
		require.NotContains(t, v, "AKIA", "no key id in a label")
		require.NotContains(t, v, "run_", "no run id in a label")
	}
}

func TestMetricsShowApprovalsWaiting(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pb := b.playbook(t, `
name: approve-test
steps:
  - id: check
    action: test.check
  - id: contain
    action: test.contain
    approval:
      approvers: [alice]
      timeout: 1h
`)
	sub := b.submit(t, pb, keyAlert(alert.SourceGuardDuty, "AKIAIOSFODNN7EXAMPLE"))
	require.Len(t, sub.Started, 1)
	s := b.scrapeUntil(t, "the approval waits", func(s metricstest.Scrape) bool {
		return value(s, "stanch_approvals_waiting") == 1
	})
	require.Equal(t, 1.0, value(s, "stanch_runs_in_progress", "status", "waiting_approval"))
	require.Greater(t, value(s, "stanch_approval_oldest_wait_seconds"), 0.0)
	require.GreaterOrEqual(t, value(s, "stanch_queue_jobs", "queue", "containment", "state", "scheduled"), 1.0, "the run sleeps as a scheduled job")
	_, _, ok := s.Histogram("stanch_time_to_contain_seconds", "playbook", "approve-test", "source", "guardduty")
	require.False(t, ok, "not contained before the decision")

	_, first, err := b.runner.Decide(context.Background(), runner.Decision{RunID: sub.Started[0].ID, StepID: "contain", Decision: runner.Approved, By: "alice", Via: "cli"})
	require.NoError(t, err)
	require.True(t, first)
	s = b.scrapeUntil(t, "the run finished", func(s metricstest.Scrape) bool {
		return value(s, "stanch_runs_finished_total", "playbook", "approve-test", "status", "succeeded") == 1 &&
			value(s, "stanch_approvals_waiting") == 0
	})
	require.Equal(t, 0.0, value(s, "stanch_approval_oldest_wait_seconds"))
	count, _, _ := s.Histogram("stanch_time_to_contain_seconds", "playbook", "approve-test", "source", "guardduty")
	require.Equal(t, uint64(1), count)
}

func TestMetricsCountProviderErrors(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pb := b.playbook(t, `
name: refused-test
steps:
  - id: deactivate
    action: test.refused
`)
	require.Len(t, b.submit(t, pb, keyAlert(alert.SourceManual, "AKIAIOSFODNN7EXAMPLE")).Started, 1)
	s := b.scrapeUntil(t, "the run failed", func(s metricstest.Scrape) bool {
		return value(s, "stanch_runs_finished_total", "playbook", "refused-test", "status", "failed") == 1
	})
	require.Equal(t, 1.0, value(s, "stanch_provider_errors_total", "provider", "aws", "service", "iam", "code", "AccessDenied"))
	count, _, _ := s.Histogram("stanch_step_duration_seconds", "action", "test.refused", "outcome", "failed")
	require.Equal(t, uint64(1), count)
	require.NotContains(t, s, "stanch_time_to_contain_seconds", "nothing was contained")
}

// TestMetricsCountWhatEndpointsAnswer sends the EventBridge endpoint a
// finding, a forgery, a body that is no event, an event stanch does not act
// on, and forgeries past the budget.
func TestMetricsCountWhatEndpointsAnswer(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pb := b.playbook(t, containPlaybook)
	const secret = "eventbridge-secret"
	h := triggers.NewEventBridgeLimited("X-Stanch-Token", []byte(secret), &runner.Dispatcher{Runner: b.runner, Playbooks: []*playbooks.Playbook{pb}}, nil, 0.25)
	h.CountIn(b.metrics)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	finding, err := os.ReadFile("../triggers/testdata/guardduty-accesskey.json")
	require.NoError(t, err)
	post := func(token string, body []byte) int {
		req, err := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("X-Stanch-Token", token)
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode
	}
	require.Equal(t, http.StatusOK, post(secret, finding))
	require.Equal(t, http.StatusUnauthorized, post("forged", finding))
	require.Equal(t, http.StatusTooManyRequests, post("forged", finding), "a burst of one a source: the second forgery is past the budget")
	// The authenticated budget is one request too; refill it between.
	h.RateLimit(0)
	require.Equal(t, http.StatusBadRequest, post(secret, []byte(`{"hello":"world"}`)))
	require.Equal(t, http.StatusOK, post(secret, []byte(`{"source":"aws.ec2","detail-type":"x","detail":{}}`)))

	s := b.scrapeUntil(t, "the finding's run finished", func(s metricstest.Scrape) bool {
		return value(s, "stanch_runs_finished_total", "playbook", "contain-test", "status", "succeeded") == 1
	})
	for result, want := range map[string]float64{"accepted": 1, "unauthenticated": 1, "rate_limited": 1, "malformed": 1, "ignored": 1} {
		require.Equal(t, want, value(s, "stanch_requests_total", "endpoint", "eventbridge", "result", result), result)
	}
	require.Len(t, s.Series("stanch_requests_total"), 5)
	require.Equal(t, 1.0, value(s, "stanch_alerts_total", "source", "guardduty", "result", "started"))
	count, _, _ := s.Histogram("stanch_time_to_contain_seconds", "playbook", "contain-test", "source", "guardduty")
	require.Equal(t, uint64(1), count)
}

func TestStoreThatDoesNotAnswer(t *testing.T) {
	t.Parallel()
	db, err := runner.OpenDatabase(context.Background(), testkit.SQLiteURL(t))
	require.NoError(t, err)
	// New makes the tables (River's and stanch's); the runner is not
	// started, as in the moments before stanch serve starts it.
	r, err := runner.New(context.Background(), runner.Config{DB: db, Registry: testkit.NewWorld().Registry(t)})
	require.NoError(t, err)
	store := r.Store()
	ping := func(ctx context.Context) error {
		_, err := store.ListRuns(ctx, runner.ListFilter{Limit: 1})
		return err
	}

	m := New(nil)
	ready := NewReadiness()
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	mux.Handle("/readyz", ready)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	readyz := func() (int, string) {
		res, err := http.Get(srv.URL + "/readyz")
		require.NoError(t, err)
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		return res.StatusCode, strings.TrimSpace(string(body))
	}

	code, body := readyz()
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, "not ready: starting", body)
	m.WatchStore(store.Stats)
	ready.Started(ping)
	code, _ = readyz()
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, 1.0, value(metricstest.Get(t, srv.URL+"/metrics"), "stanch_store_up"))

	require.NoError(t, db.Close())
	code, body = readyz()
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, "not ready: store not answering", body)
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Reads are a second apart at most often.
		s := metricstest.Get(t, srv.URL+"/metrics")
		if v, _ := s.Value("stanch_store_up"); v == 0 {
			require.NotContains(t, s, "stanch_runs_in_progress", "no gauge from a store that did not answer")
			break
		}
		require.True(t, time.Now().Before(deadline), "stanch_store_up stayed 1")
		time.Sleep(100 * time.Millisecond)
	}

	ready.Stopping()
	code, body = readyz()
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, "not ready: stopping", body)
}

func TestLabelsStayBounded(t *testing.T) {
	t.Parallel()
	m := New(nil)
	for i := range 300 {
		m.Observe(runner.Event{Kind: runner.EventStepAPIError, API: actions.APIError{Provider: "aws", Service: "iam", Code: fmt.Sprintf("Code%d", i)}})
	}
	m.Observe(runner.Event{Kind: runner.EventStepAPIError, API: actions.APIError{Provider: "github", Service: "rest", Code: "AKIAIOSFODNN7EXAMPLE leaked\n"}})
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)
	s := metricstest.Get(t, srv.URL)
	require.Len(t, s.Series("stanch_provider_errors_total"), 202, "200 label sets, then one other per provider and service")
	require.Equal(t, 100.0, value(s, "stanch_provider_errors_total", "provider", "aws", "service", "iam", "code", "other"))
	require.Equal(t, 1.0, value(s, "stanch_provider_errors_total", "provider", "github", "service", "rest", "code", "other"), "a code that is not a short word")
}

// Calls whose record was lost are counted, however many each event says.
func TestLostCallRecordsAreCounted(t *testing.T) {
	t.Parallel()
	m := New(nil)
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)
	require.Equal(t, 0.0, value(metricstest.Get(t, srv.URL), "stanch_call_records_lost_total"), "exported at 0, so an alert can watch it")
	m.Observe(runner.Event{Kind: runner.EventCallsLost, Calls: 3})
	m.Observe(runner.Event{Kind: runner.EventCallsLost, Calls: 2})
	require.Equal(t, 5.0, value(metricstest.Get(t, srv.URL), "stanch_call_records_lost_total"))
}
