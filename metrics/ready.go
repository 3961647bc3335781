package metrics

import (
	"context"
	"io"
	"net/http"
	"sync"
)

// Readiness answers GET /readyz: 200 while the runner works and its store
// answers, else 503 with the reason in a few words (starting, stopping,
// store not answering). Load balancers and orchestrators send traffic to a
// ready process only; /healthz, liveness, only says the store answers.
type Readiness struct {
	mu     sync.Mutex
	reason string // why not ready; "" when working
	ping   func(context.Context) error
}

// NewReadiness returns a Readiness that says "starting" until Started.
func NewReadiness() *Readiness { return &Readiness{reason: "starting"} }

// Started says the runner works; ping asks the store.
func (r *Readiness) Started(ping func(context.Context) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reason, r.ping = "", ping
}

// Stopping says the process is shutting down: it takes no new work.
func (r *Readiness) Stopping() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reason = "stopping"
}

func (r *Readiness) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	reason, ping := r.reason, r.ping
	r.mu.Unlock()
	if reason == "" {
		ctx, cancel := context.WithTimeout(req.Context(), StoreReadTimeout)
		defer cancel()
		if err := ping(ctx); err != nil {
			reason = "store not answering"
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	if reason != "" {
		http.Error(w, "not ready: "+reason, http.StatusServiceUnavailable)
		return
	}
	_, _ = io.WriteString(w, "ready\n")
}
