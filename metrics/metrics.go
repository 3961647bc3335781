package metrics

import (
	"log/slog"
	"net/http"
	"regexp"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stanchhq/stanch/runner"
)

// alertUnactionable is the result of an alert recorded as one that cannot
// be acted on (stanch_alerts_total); the others are the runner's
// (runner.AlertStarted, …).
const alertUnactionable = "unactionable"

// Metrics are stanch serve's metrics. Its methods may be called from any
// goroutine.
type Metrics struct {
	reg *prometheus.Registry
	log *slog.Logger

	requests       *prometheus.CounterVec
	alerts         *prometheus.CounterVec
	runsFinished   *prometheus.CounterVec
	stepSeconds    *prometheus.HistogramVec
	containSeconds *prometheus.HistogramVec
	apiErrors      *prometheus.CounterVec
	callsLost      prometheus.Counter
	// apiLabels bounds the label sets of apiErrors: codes come from the
	// providers' answers.
	apiLabels *bounded
}

// Buckets, in seconds. Steps take milliseconds (IAM) to minutes
// (CloudTrail); containment takes seconds when it is automatic and hours
// when a playbook waits for people first.
var (
	stepBuckets    = []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900}
	containBuckets = []float64{.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600, 4 * 3600}
)

// New returns the metrics, with Go's runtime and the process's collectors.
func New(log *slog.Logger) *Metrics {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		log: log,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stanch_requests_total",
			Help: "Requests the endpoints answered (and SQS messages read), by endpoint and result: accepted, ignored, duplicate, unauthenticated, rate_limited, malformed, unavailable.",
		}, []string{"endpoint", "result"}),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stanch_alerts_total",
			Help: "Alerts taken, by source and result: started (a run), joined (an open run about the same credential), duplicate (a redelivery), unmatched (no playbook), unactionable (kept, see stanch alerts list).",
		}, []string{"source", "result"}),
		runsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stanch_runs_finished_total",
			Help: "Runs that ended, by playbook and status: succeeded, failed, cancelled.",
		}, []string{"playbook", "status"}),
		stepSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "stanch_step_duration_seconds",
			Help:    "How long steps took, from their first attempt to their end, retries included, by action and outcome (done, already, noop, failed).",
			Buckets: stepBuckets,
		}, []string{"action", "outcome"}),
		containSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "stanch_time_to_contain_seconds",
			Help:    "Time from an alert's receipt to the end of its run's first successful containment step (deactivate, delete, revoke sessions, quarantine), by playbook and alert source.",
			Buckets: containBuckets,
		}, []string{"playbook", "source"}),
		apiErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stanch_provider_errors_total",
			Help: "Failed attempts of steps whose provider API answered an error (after the SDK's own retries), by provider, service and error code.",
		}, []string{"provider", "service", "code"}),
		apiLabels: &bounded{max: 200, seen: map[[3]string]bool{}},
		callsLost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "stanch_call_records_lost_total",
			Help: "Provider API calls made by steps whose record could not be written (the store failed): runs' records and exports lack them. Should stay 0.",
		}),
	}
	m.reg.MustRegister(m.requests, m.alerts, m.runsFinished, m.stepSeconds, m.containSeconds, m.apiErrors, m.callsLost,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in Prometheus' text format (or OpenMetrics,
// when asked). A few scrapes at a time; each is bounded in time.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(m.log.Handler(), slog.LevelWarn),
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
		CoalesceGather:      true,
	})
}

// Request counts one request an endpoint answered (triggers.Meter).
func (m *Metrics) Request(endpoint, result string) {
	m.requests.WithLabelValues(endpoint, result).Inc()
}

// Observe counts what a runner event says (runner.Config.Observer).
func (m *Metrics) Observe(e runner.Event) {
	switch e.Kind {
	case runner.EventAlertSubmitted:
		m.alerts.WithLabelValues(source(e.Source), e.Outcome).Inc()
	case runner.EventAlertUnacted:
		m.alerts.WithLabelValues(source(e.Source), alertUnactionable).Inc()
	case runner.EventRunFinished:
		m.runsFinished.WithLabelValues(e.Playbook, string(e.Status)).Inc()
	case runner.EventStepSucceeded, runner.EventStepFailed:
		// Steps skipped, denied or refused before an attempt took no time
		// worth a bucket.
		if e.Duration > 0 {
			m.stepSeconds.WithLabelValues(e.Action, e.Outcome).Observe(e.Duration.Seconds())
		}
	case runner.EventRunContained:
		m.containSeconds.WithLabelValues(e.Playbook, source(e.Source)).Observe(e.Duration.Seconds())
	case runner.EventCallsLost:
		m.callsLost.Add(float64(e.Calls))
	case runner.EventStepAPIError:
		labels := m.apiLabels.labels(e.API.Provider, e.API.Service, e.API.Code)
		m.apiErrors.WithLabelValues(labels[:]...).Inc()
	}
}

// bounded keeps a vector's label sets to max: past it, a new set counts as
// "other" in its last label. Label values that are not short words count
// as "other" too.
type bounded struct {
	mu   sync.Mutex
	max  int
	seen map[[3]string]bool
}

var word = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,64}$`)

// source is an alert's source as a label: the triggers' are short words;
// an alert file may say anything.
func source(s string) string {
	if len(s) > 16 || !word.MatchString(s) {
		return "other"
	}
	return s
}

func (b *bounded) labels(a, c, d string) [3]string {
	set := [3]string{a, c, d}
	for i, v := range set {
		if !word.MatchString(v) {
			set[i] = "other"
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.seen[set] {
		return set
	}
	if len(b.seen) >= b.max {
		set[2] = "other"
		return set
	}
	b.seen[set] = true
	return set
}
