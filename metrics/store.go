package metrics

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stanchhq/stanch/runner"
)

// StoreReadTimeout bounds the store's reads of one scrape: a store that
// does not answer in time makes stanch_store_up 0, not a hung scrape.
const StoreReadTimeout = 2 * time.Second

// storeReadEvery is how often the store is read at most: scrapes that come
// closer together (several Prometheis, or anyone who can reach /metrics on
// the main listener) share one read, so they never take the store's one
// SQLite connection from the workers for long.
const storeReadEvery = time.Second

// WatchStore adds the gauges read from the store at each scrape:
// stats is runner.(*Store).Stats.
func (m *Metrics) WatchStore(stats func(context.Context) (runner.Stats, error)) {
	m.reg.MustRegister(&storeCollector{stats: stats, log: m.log, now: time.Now})
}

var (
	runsDesc = prometheus.NewDesc("stanch_runs_in_progress",
		"Runs not yet finished, by status: pending, running, waiting_approval.", []string{"status"}, nil)
	approvalsDesc = prometheus.NewDesc("stanch_approvals_waiting",
		"Approvals that runs wait on, not yet decided.", nil, nil)
	approvalAgeDesc = prometheus.NewDesc("stanch_approval_oldest_wait_seconds",
		"How long the oldest undecided approval has waited (0 when none waits).", nil, nil)
	jobsDesc = prometheus.NewDesc("stanch_queue_jobs",
		"River jobs not yet finished, by queue (containment, investigation, notify) and state (available, running, scheduled, retryable); a queue's depth is their sum. A run waiting for approval sleeps as a scheduled job.",
		[]string{"queue", "state"}, nil)
	unactedDesc = prometheus.NewDesc("stanch_unacted_alerts",
		"Alerts kept because they could not be acted on (stanch alerts list).", nil, nil)
	storeUpDesc = prometheus.NewDesc("stanch_store_up",
		"1 when the store answered this scrape's reads in time, else 0 (and the gauges read from it are missing).", nil, nil)
)

// storeCollector reads the store's gauges when scraped, at most once per
// storeReadEvery, each read bounded by StoreReadTimeout.
type storeCollector struct {
	stats func(context.Context) (runner.Stats, error)
	log   *slog.Logger
	now   func() time.Time

	mu     sync.Mutex
	readAt time.Time
	last   runner.Stats
	err    error
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{runsDesc, approvalsDesc, approvalAgeDesc, jobsDesc, unactedDesc, storeUpDesc} {
		ch <- d
	}
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	st, err := c.read()
	if err != nil {
		ch <- prometheus.MustNewConstMetric(storeUpDesc, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(storeUpDesc, prometheus.GaugeValue, 1)
	for status, n := range st.Runs {
		ch <- prometheus.MustNewConstMetric(runsDesc, prometheus.GaugeValue, float64(n), string(status))
	}
	ch <- prometheus.MustNewConstMetric(approvalsDesc, prometheus.GaugeValue, float64(st.ApprovalsWaiting))
	age := 0.0
	if !st.OldestApproval.IsZero() {
		age = max(c.now().Sub(st.OldestApproval).Seconds(), 0)
	}
	ch <- prometheus.MustNewConstMetric(approvalAgeDesc, prometheus.GaugeValue, age)
	for queue, states := range st.Jobs {
		for state, n := range states {
			ch <- prometheus.MustNewConstMetric(jobsDesc, prometheus.GaugeValue, float64(n), queue, state)
		}
	}
	ch <- prometheus.MustNewConstMetric(unactedDesc, prometheus.GaugeValue, float64(st.Unacted))
}

// read returns the store's stats, read now unless a read was made less
// than storeReadEvery ago. Scrapes wait for the read in flight rather than
// start one of their own.
func (c *storeCollector) read() (runner.Stats, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.readAt.IsZero() && c.now().Sub(c.readAt) < storeReadEvery {
		return c.last, c.err
	}
	ctx, cancel := context.WithTimeout(context.Background(), StoreReadTimeout)
	defer cancel()
	c.last, c.err = c.stats(ctx)
	c.readAt = c.now()
	if c.err != nil {
		c.log.Warn("metrics: the store's gauges could not be read", "error", c.err)
	}
	return c.last, c.err
}
