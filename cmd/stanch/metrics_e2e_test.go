package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/metrics/metricstest"
	"github.com/stanchhq/stanch/sandbox"
)

// serveEnv is the environment of a stanch serve that acts in the test's
// sandbox and takes EventBridge events signed with secret.
func (e *e2e) serveEnv(secret string) []string {
	return append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + e.dir,
		"AWS_ENDPOINT_URL=" + e.url,
		"AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=" + sandbox.ResponderKeyID,
		"AWS_SECRET_ACCESS_KEY=" + sandbox.ResponderSecret,
		"AWS_CONFIG_FILE=/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE=/dev/null",
		"AWS_EC2_METADATA_DISABLED=true",
		"STANCH_EVENTBRIDGE_SECRET=" + secret,
	}, e.env...)
}

// scrapeUntil scrapes url until ok holds, for up to 30 s.
func scrapeUntil(t *testing.T, url, what string, log *syncBuffer, ok func(metricstest.Scrape) bool) metricstest.Scrape {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := metricstest.Get(t, url)
		if ok(s) {
			return s
		}
		require.True(t, time.Now().Before(deadline), "never: %s; log:\n%s", what, log.String())
		time.Sleep(50 * time.Millisecond)
	}
}

func metricValue(s metricstest.Scrape, name string, labels ...string) float64 {
	v, _ := s.Value(name, labels...)
	return v
}

// openRuns is how many runs the store holds unfinished and not waiting.
func openRuns(s metricstest.Scrape) float64 {
	return metricValue(s, "stanch_runs_in_progress", "status", "pending") + metricValue(s, "stanch_runs_in_progress", "status", "running")
}

func getBody(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, strings.TrimSpace(string(body))
}

// TestServeMetricsAfterContainment sends stanch serve a GuardDuty finding
// and a forged request, waits until the key is contained, and reads the
// values /metrics (on the main listener, by default) serves for them; the
// log, asked for as JSON, is one object a line.
func TestServeMetricsAfterContainment(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	const secret = "eventbridge-connection-api-key"
	serve := startServeProcess(t, e.bin, e.serveEnv(secret), "--playbooks", "testdata/contain.yaml", "--database", e.db,
		"--log-level", "info", "--log-format", "json")
	code, body := getBody(t, serve.base+"/readyz")
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, "ready", body)
	code, _ = getBody(t, serve.base+"/healthz")
	require.Equal(t, http.StatusOK, code)

	finding, err := os.ReadFile(e.testdata("guardduty-accesskey.json"))
	require.NoError(t, err)
	hook := serve.base + "/hooks/aws/eventbridge"
	require.Equal(t, http.StatusOK, post(t, hook, "X-Stanch-Token", secret, finding))
	require.Equal(t, http.StatusUnauthorized, post(t, hook, "X-Stanch-Token", "forged", finding))
	e.waitStatus(t, serve.stderr, leakedKey, "Inactive")

	s := scrapeUntil(t, serve.base+"/metrics", "the run finished and no run is open", serve.stderr, func(s metricstest.Scrape) bool {
		return metricValue(s, "stanch_runs_finished_total", "playbook", "contain", "status", "succeeded") == 1 && openRuns(s) == 0
	})
	require.Equal(t, 1.0, metricValue(s, "stanch_requests_total", "endpoint", "eventbridge", "result", "accepted"))
	require.Equal(t, 1.0, metricValue(s, "stanch_requests_total", "endpoint", "eventbridge", "result", "unauthenticated"))
	require.Len(t, s.Series("stanch_requests_total"), 2)
	require.Equal(t, 1.0, metricValue(s, "stanch_alerts_total", "source", "guardduty", "result", "started"))
	require.Len(t, s.Series("stanch_alerts_total"), 1)
	require.Len(t, s.Series("stanch_runs_finished_total"), 1)

	for _, action := range []string{"aws.identify_key", "aws.deactivate_key"} {
		count, sum, ok := s.Histogram("stanch_step_duration_seconds", "action", action, "outcome", "done")
		require.True(t, ok, action)
		require.Equal(t, uint64(1), count, action)
		require.Greater(t, sum, 0.0, action)
	}
	require.Len(t, s.Series("stanch_step_duration_seconds"), 2, "one series per action and outcome")
	count, sum, ok := s.Histogram("stanch_time_to_contain_seconds", "playbook", "contain", "source", "guardduty")
	require.True(t, ok)
	require.Equal(t, uint64(1), count)
	require.Greater(t, sum, 0.0)

	require.Len(t, s.Series("stanch_queue_jobs"), 12, "containment, investigation and notify, each in 4 states")
	for _, queue := range []string{"containment", "investigation", "notify"} {
		_, ok := s.Value("stanch_queue_jobs", "queue", queue, "state", "available")
		require.True(t, ok, queue)
	}
	v, ok := s.Value("stanch_approvals_waiting")
	require.True(t, ok)
	require.Zero(t, v)
	require.Equal(t, 0.0, metricValue(s, "stanch_runs_in_progress", "status", "waiting_approval"))
	require.Equal(t, 1.0, metricValue(s, "stanch_store_up"))
	require.NotContains(t, s, "stanch_provider_errors_total", "AWS refused nothing")
	require.Contains(t, s, "go_goroutines")
	require.Contains(t, s, "process_resident_memory_bytes")
	for _, v := range s.LabelValues() {
		require.NotContains(t, v, leakedKey)
		require.NotContains(t, v, "run_")
		require.NotContains(t, v, "ci-bot")
	}

	serve.stop(t)
	lines := strings.Split(strings.TrimSpace(serve.stderr.String()), "\n")
	require.Greater(t, len(lines), 3)
	messages := map[string]bool{}
	for _, line := range lines {
		var record map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &record), "not one JSON object: %q", line)
		require.Contains(t, record, "time")
		require.Contains(t, record, "level")
		messages[fmt.Sprint(record["msg"])] = true
	}
	require.True(t, messages["stanch serve starting"], "%v", messages)
	require.True(t, messages["request rejected"], "%v", messages)
	require.NotContains(t, serve.stderr.String(), sandbox.ResponderSecret)
}

// TestServeMetricsApartShowApprovals serves /metrics on --metrics-listen,
// where /readyz answers before the runner has started; a run waits for an
// approval, then goes on once a person approves it beside serve.
func TestServeMetricsApartShowApprovals(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	const secret = "eventbridge-connection-api-key"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	metricsAddr := ln.Addr().String()
	require.NoError(t, ln.Close())

	// Hold the store's write lock, as a long migration by another replica
	// would: serve waits on it to start its runner, and meanwhile its
	// metrics listener says it is not ready yet.
	ctx := context.Background()
	path := strings.TrimPrefix(e.db, "file:")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)")
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	conn, err := db.Conn(ctx)
	require.NoError(t, err)
	_, err = conn.ExecContext(ctx, "BEGIN IMMEDIATE")
	require.NoError(t, err)
	seen := make(chan string, 1)
	go func() {
		defer func() {
			_, _ = conn.ExecContext(ctx, "ROLLBACK")
			conn.Close()
		}()
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) {
			res, err := http.Get("http://" + metricsAddr + "/readyz")
			if err != nil {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			seen <- fmt.Sprintf("%d %s", res.StatusCode, strings.TrimSpace(string(body)))
			return
		}
		seen <- "no answer from the metrics listener"
	}()
	serve := startServeProcess(t, e.bin, e.serveEnv(secret), "--playbooks", "testdata/approve-deactivate.yaml", "--database", e.db,
		"--log-level", "info", "--metrics-listen", metricsAddr)
	require.Equal(t, "503 not ready: starting", <-seen)
	metrics := "http://" + metricsAddr + "/metrics"

	code, body := getBody(t, "http://"+metricsAddr+"/readyz")
	require.Equal(t, http.StatusOK, code, body)
	code, _ = getBody(t, serve.base+"/readyz")
	require.Equal(t, http.StatusOK, code, "readiness is on the main listener too")
	code, _ = getBody(t, serve.base+"/metrics")
	require.Equal(t, http.StatusNotFound, code, "metrics are not on the main listener")

	finding, err := os.ReadFile(e.testdata("guardduty-accesskey.json"))
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, post(t, serve.base+"/hooks/aws/eventbridge", "X-Stanch-Token", secret, finding))
	s := scrapeUntil(t, metrics, "an approval waits", serve.stderr, func(s metricstest.Scrape) bool {
		return metricValue(s, "stanch_approvals_waiting") == 1
	})
	require.Equal(t, 1.0, metricValue(s, "stanch_runs_in_progress", "status", "waiting_approval"))
	require.Greater(t, metricValue(s, "stanch_approval_oldest_wait_seconds"), 0.0)
	require.NotContains(t, s, "stanch_time_to_contain_seconds", "nothing contained before the approval")
	scrapeUntil(t, metrics, "the run's job sleeps", serve.stderr, func(s metricstest.Scrape) bool {
		return metricValue(s, "stanch_queue_jobs", "queue", "containment", "state", "scheduled") == 1
	})
	status, _ := e.sb.KeyStatus(account, leakedKey)
	require.Equal(t, "Active", status)

	list := e.stanch(nil, "runs", "list", "--json", "--database", e.db)
	var runs []map[string]any
	require.NoError(t, json.Unmarshal([]byte(list.stdout), &runs), list.stdout+list.stderr)
	require.Len(t, runs, 1)
	approve := e.stanch(nil, "approve", runs[0]["id"].(string), "deactivate", "--by", "alice", "--database", e.db)
	require.Equal(t, exitOK, approve.code, approve.stdout+approve.stderr)
	e.waitStatus(t, serve.stderr, leakedKey, "Inactive")

	s = scrapeUntil(t, metrics, "the run finished and nothing waits", serve.stderr, func(s metricstest.Scrape) bool {
		return metricValue(s, "stanch_runs_finished_total", "playbook", "approve-deactivate", "status", "succeeded") == 1 &&
			metricValue(s, "stanch_approvals_waiting") == 0 && openRuns(s) == 0
	})
	require.Equal(t, 0.0, metricValue(s, "stanch_approval_oldest_wait_seconds"))
	count, sum, _ := s.Histogram("stanch_time_to_contain_seconds", "playbook", "approve-deactivate", "source", "guardduty")
	require.Equal(t, uint64(1), count)
	require.Greater(t, sum, 0.0)
	for _, action := range []string{"aws.identify_key", "aws.deactivate_key"} {
		count, _, _ := s.Histogram("stanch_step_duration_seconds", "action", action, "outcome", "done")
		require.Equal(t, uint64(1), count, action)
	}
	serve.stop(t)
	require.Contains(t, serve.stderr.String(), `msg="metrics and readiness served apart" address=`+metricsAddr)
}

func TestLogFormatIsTextOrJSON(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	res := e.stanch(nil, "--log-format", "yaml", "validate", filepath.Join("testdata", "contain.yaml"))
	require.Equal(t, exitUsage, res.code, res.stdout+res.stderr)
	require.Contains(t, res.stderr, `"yaml" is not a log format: want text or json`)
}
