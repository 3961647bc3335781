// Package metrics is what stanch serve tells operators about itself: the
// Prometheus metrics of /metrics, in a registry of stanch's own, and the
// readiness of /readyz. Counters and histograms are fed by the runner's
// events and the triggers' results as they happen; gauges are read from the
// store when scraped. No label ever holds a key id, a run id, a user or a
// repository: every label takes a few known values (see docs/metrics.md).
package metrics
