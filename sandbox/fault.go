package sandbox

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
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

// FaultServices are the services a Fault can be set for: the names the
// call log gives them.
var FaultServices = []string{"azurekeyvault", "cloudtrail", "ec2", "github", "gitlab", "iam", "npm", "secretsmanager", "slack", "sqs", "sts", "vault"}

// maxFaultLatency bounds the latency a seed or the faults endpoint may set:
// longer is surely a typo, and an outage is rehearsed with error_rate 1.
const maxFaultLatency = 10 * time.Minute

// FaultSpec is a Fault as a seed file (faults:) and the /_sandbox/faults
// endpoint write it: the latency as a Go duration ("200ms"), the rates as
// shares of calls from 0 to 1.
type FaultSpec struct {
	Latency      string  `yaml:"latency" json:"latency"`
	ErrorRate    float64 `yaml:"error_rate" json:"error_rate"`
	ThrottleRate float64 `yaml:"throttle_rate" json:"throttle_rate"`
}

// faultFieldError is a FaultSpec field that is not valid; field is its
// name in the seed file and the JSON.
type faultFieldError struct {
	field string
	msg   string
}

func (e *faultFieldError) Error() string { return e.field + ": " + e.msg }

// Fault checks the spec and returns the Fault it describes. Errors name
// the field and say what is allowed.
func (f FaultSpec) Fault() (Fault, error) {
	var fault Fault
	if f.Latency != "" {
		d, err := time.ParseDuration(f.Latency)
		switch {
		case err != nil:
			return Fault{}, &faultFieldError{"latency", fmt.Sprintf("%q is not a duration such as 200ms or 2s", f.Latency)}
		case d < 0:
			return Fault{}, &faultFieldError{"latency", fmt.Sprintf("%s is negative", f.Latency)}
		case d > maxFaultLatency:
			return Fault{}, &faultFieldError{"latency", fmt.Sprintf("%s is longer than %s (to rehearse an outage, set error_rate: 1)", f.Latency, maxFaultLatency)}
		}
		fault.Latency = d
	}
	// Written so that NaN, which YAML can spell (.nan), fails too.
	if !(f.ErrorRate >= 0 && f.ErrorRate <= 1) {
		return Fault{}, &faultFieldError{"error_rate", fmt.Sprintf("%v is not between 0 and 1 (the share of calls answered 503 ServiceUnavailable)", f.ErrorRate)}
	}
	if !(f.ThrottleRate >= 0 && f.ThrottleRate <= 1) {
		return Fault{}, &faultFieldError{"throttle_rate", fmt.Sprintf("%v is not between 0 and 1 (the share of calls answered 400 Throttling)", f.ThrottleRate)}
	}
	if f.ErrorRate+f.ThrottleRate > 1 {
		return Fault{}, &faultFieldError{"throttle_rate", fmt.Sprintf("error_rate %v and throttle_rate %v add up to more than 1 (all calls)", f.ErrorRate, f.ThrottleRate)}
	}
	fault.ErrorRate, fault.ThrottleRate = f.ErrorRate, f.ThrottleRate
	return fault, nil
}

// Spec is the fault as the seed file and the endpoint write it.
func (f Fault) Spec() FaultSpec {
	return FaultSpec{Latency: f.Latency.String(), ErrorRate: f.ErrorRate, ThrottleRate: f.ThrottleRate}
}

// errUnknownService is returned for a service name the sandbox has no
// fault for.
var errUnknownService = errors.New("not a service the sandbox serves")

func checkFaultService(service string) error {
	if !slices.Contains(FaultServices, service) {
		return fmt.Errorf("%q is %w (%s)", service, errUnknownService, strings.Join(FaultServices, ", "))
	}
	return nil
}

// SetFault sets the fault of a service ("iam", "sts", "cloudtrail", …);
// the zero Fault clears it.
func (s *Sandbox) SetFault(service string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[service] = f
}

// Faults returns the fault of every service in FaultServices (the zero
// Fault where none is set).
func (s *Sandbox) Faults() map[string]Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]Fault, len(FaultServices))
	for _, name := range FaultServices {
		out[name] = s.faults[name]
	}
	return out
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
