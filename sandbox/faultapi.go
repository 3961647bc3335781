package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// The /_sandbox/faults endpoint sets the faults while the sandbox runs, so
// that a playbook can be rehearsed against a slow, throttling or failing
// service from a shell:
//
//	GET    /_sandbox/faults           every service's fault
//	GET    /_sandbox/faults/SERVICE   one service's
//	PUT    /_sandbox/faults/SERVICE   {"latency":"200ms","error_rate":0.1,"throttle_rate":0.2} (POST too)
//	DELETE /_sandbox/faults/SERVICE   clear it; DELETE /_sandbox/faults clears them all
//
// A PUT replaces the service's fault as a whole: a field left out is zero.
// Answers are JSON; a refusal is {"error": "..."} and changes nothing.

const faultsPath = "/_sandbox/faults"

func (s *Sandbox) serveFaults(w http.ResponseWriter, r *http.Request) {
	service, one := strings.CutPrefix(r.URL.Path, faultsPath+"/")
	if !one {
		switch r.Method {
		case http.MethodGet:
			writeJSON(w, s.faultSpecs())
		case http.MethodDelete:
			for _, name := range FaultServices {
				s.SetFault(name, Fault{})
			}
			s.log.Info("sandbox faults cleared")
			writeJSON(w, s.faultSpecs())
		default:
			w.Header().Set("Allow", "GET, DELETE")
			faultRefusal(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s %s: use GET or DELETE here, and PUT %s/SERVICE to set one service's fault", r.Method, faultsPath, faultsPath))
		}
		return
	}
	if err := checkFaultService(service); err != nil {
		faultRefusal(w, http.StatusNotFound, "service "+err.Error())
		return
	}
	switch r.Method {
	case http.MethodGet:
		writeJSON(w, s.fault(service).Spec())
	case http.MethodPut, http.MethodPost:
		spec, err := decodeFaultSpec(w, r)
		if err != nil {
			faultRefusal(w, http.StatusBadRequest, fmt.Sprintf("fault for %s: %v", service, err))
			return
		}
		f, err := spec.Fault()
		if err != nil {
			faultRefusal(w, http.StatusBadRequest, fmt.Sprintf("fault for %s: %v", service, err))
			return
		}
		s.SetFault(service, f)
		s.log.Info("sandbox fault set", "service", service, "latency", f.Latency, "error_rate", f.ErrorRate, "throttle_rate", f.ThrottleRate)
		writeJSON(w, f.Spec())
	case http.MethodDelete:
		s.SetFault(service, Fault{})
		s.log.Info("sandbox fault cleared", "service", service)
		writeJSON(w, Fault{}.Spec())
	default:
		w.Header().Set("Allow", "GET, PUT, POST, DELETE")
		faultRefusal(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s %s/%s: use GET, PUT (or POST) or DELETE", r.Method, faultsPath, service))
	}
}

func (s *Sandbox) faultSpecs() map[string]FaultSpec {
	out := map[string]FaultSpec{}
	for name, f := range s.Faults() {
		out[name] = f.Spec()
	}
	return out
}

// decodeFaultSpec reads one JSON object, strictly: an unknown field, a
// value of the wrong type or anything after the object is an error. The
// Content-Type is not looked at: curl -d sends a form type.
func decodeFaultSpec(w http.ResponseWriter, r *http.Request) (FaultSpec, error) {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	var spec FaultSpec
	if err := dec.Decode(&spec); err != nil {
		if errors.Is(err, io.EOF) {
			return FaultSpec{}, fmt.Errorf(`the body is empty; send a JSON object such as {"latency":"200ms","error_rate":0.1,"throttle_rate":0.2} (DELETE clears)`)
		}
		return FaultSpec{}, fmt.Errorf("the body is not a fault: %v (fields: latency, error_rate, throttle_rate)", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return FaultSpec{}, fmt.Errorf("the body holds more than one JSON value")
	}
	return spec, nil
}

func faultRefusal(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// printFaults writes, as shell comments, the faults the seed sets and how
// to change them.
func printFaults(out io.Writer, faults map[string]FaultSpec, url string) {
	for _, name := range FaultServices {
		if spec, ok := faults[name]; ok {
			f, _ := spec.Fault()
			fmt.Fprintf(out, "# sandbox fault from the seed: %s latency %s, error_rate %v, throttle_rate %v\n", name, f.Latency, f.ErrorRate, f.ThrottleRate)
		}
	}
	fmt.Fprintf(out, "# faults at %s%s; e.g. curl -X PUT %s%s/iam -d '{\"latency\":\"200ms\",\"throttle_rate\":0.2}', curl -X DELETE %s%s\n", url, faultsPath, url, faultsPath, url, faultsPath)
}
