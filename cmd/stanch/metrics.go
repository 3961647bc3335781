package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/stanchhq/stanch/metrics"
	"github.com/stanchhq/stanch/runner"
)

// observability is what stanch serve shows operators about itself:
// /metrics and /readyz (see docs/metrics.md). With --metrics-listen they
// are served on a listener of their own, opened before the runner starts,
// so that /readyz says "starting" meanwhile; /metrics is then not on the
// main listener, which may face the internet. Without it both are on the
// main listener.
type observability struct {
	metrics *metrics.Metrics
	ready   *metrics.Readiness
	srv     *http.Server // the --metrics-listen server, if any
}

// startObservability makes the metrics and, when listen is set, serves
// them there at once.
func startObservability(listen string, log *slog.Logger) (*observability, error) {
	o := &observability{metrics: metrics.New(log), ready: metrics.NewReadiness()}
	if listen == "" {
		return o, nil
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("--metrics-listen %s: %w", listen, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", o.metrics.Handler())
	mux.Handle("GET /readyz", o.ready)
	o.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 15 * time.Second, IdleTimeout: 60 * time.Second, MaxHeaderBytes: 16 << 10}
	log.Info("metrics and readiness served apart", "address", ln.Addr().String())
	go func() {
		if err := o.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener stopped", "address", listen, "error", err)
		}
	}()
	return o, nil
}

// observe passes every runner event to the metrics, then to next.
func (o *observability) observe(next func(runner.Event)) func(runner.Event) {
	return func(e runner.Event) {
		o.metrics.Observe(e)
		next(e)
	}
}

// started says the runner works: the store's gauges are read from r's
// store, and /readyz answers 200 while that store answers.
func (o *observability) started(r *runner.Runner) {
	o.metrics.WatchStore(r.Store().Stats)
	o.ready.Started(func(ctx context.Context) error {
		_, err := r.Store().ListRuns(ctx, runner.ListFilter{Limit: 1})
		return err
	})
}

// mount adds /readyz to the main listener, and /metrics unless it has a
// listener of its own.
func (o *observability) mount(mux *http.ServeMux) {
	mux.Handle("GET /readyz", o.ready)
	if o.srv == nil {
		mux.Handle("GET /metrics", o.metrics.Handler())
	}
}

// stopping makes /readyz answer 503 from now on.
func (o *observability) stopping() { o.ready.Stopping() }

// close stops the metrics listener.
func (o *observability) close() {
	if o.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = o.srv.Shutdown(ctx)
}
