package sandbox

import (
	"math/rand/v2"
	"net/http"
	"time"
)

// Fault makes one service of the sandbox slow or unreliable, for tests and
// benchmarks of retries and time-to-contain.
type Fault struct {
	// Latency is added to each call of the service, on top of the
	// sandbox-wide latency.
	Latency time.Duration
	// ErrorRate is the share of calls (0 to 1) answered with a 503
	// ServiceUnavailable.
	ErrorRate float64
	// ThrottleRate is the share of calls answered with a 400 Throttling
	// error, which the SDKs retry.
	ThrottleRate float64
}

// SetFault sets the fault of a service ("iam", "sts", "cloudtrail", …);
// the zero Fault clears it.
func (s *Sandbox) SetFault(service string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[service] = f
}

func (s *Sandbox) fault(service string) Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults[service]
}

// inject returns the error a faulty service answers with, or nil.
func (f Fault) inject() *apiError {
	switch p := rand.Float64(); {
	case p < f.ErrorRate:
		return &apiError{http.StatusServiceUnavailable, "ServiceUnavailable", "injected by the sandbox: service unavailable"}
	case p < f.ErrorRate+f.ThrottleRate:
		return &apiError{http.StatusBadRequest, "Throttling", "Rate exceeded"}
	}
	return nil
}
