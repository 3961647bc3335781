package triggers

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/stanchhq/stanch/alert"
)

// Sink durably records an alert and starts what it should start (the
// runner). When Accept returns nil the alert is committed; it must make no
// network call, so a sender is never kept waiting on AWS.
type Sink interface {
	Accept(ctx context.Context, a alert.Alert) error
}

// MaxBody bounds every request body stanch reads from outside.
const MaxBody = 1 << 20

// guard is what every endpoint shares: a body size limit, a rate limit per
// source address, and a structured log line for every rejection (the
// reason and the source, never the body).
type guard struct {
	source string
	log    *slog.Logger
	rate   rate.Limit
	burst  int

	mu       sync.Mutex
	limiters map[string]*rate.Limiter
}

func newGuard(source string, log *slog.Logger, perSecond float64, burst int) *guard {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &guard{source: source, log: log, rate: rate.Limit(perSecond), burst: burst, limiters: map[string]*rate.Limiter{}}
}

// limit sets the per-source rate: perSecond requests a second, bursts of
// four seconds' worth; 0 turns the limit off.
func (g *guard) limit(perSecond float64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.rate, g.burst = rate.Limit(perSecond), int(4*perSecond)
	if perSecond <= 0 {
		g.rate, g.burst = rate.Inf, 0
	}
	g.limiters = map[string]*rate.Limiter{}
}

func (g *guard) allow(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	l, ok := g.limiters[host]
	if !ok {
		if len(g.limiters) > 10000 {
			// Forget everyone rather than grow without bound under a flood
			// of source addresses.
			g.limiters = map[string]*rate.Limiter{}
		}
		l = rate.NewLimiter(g.rate, g.burst)
		g.limiters[host] = l
	}
	return l.Allow()
}

func (g *guard) reject(w http.ResponseWriter, r *http.Request, status int, reason string) {
	g.log.Warn("request rejected", "source", g.source, "reason", reason, "remote", r.RemoteAddr, "status", status)
	http.Error(w, reason, status)
}

// read checks method and rate and reads the body within MaxBody.
func (g *guard) read(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if r.Method != http.MethodPost {
		g.reject(w, r, http.StatusMethodNotAllowed, "use POST")
		return nil, false
	}
	if !g.allow(r) {
		g.reject(w, r, http.StatusTooManyRequests, "rate limit exceeded")
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			g.reject(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", MaxBody))
		} else {
			g.reject(w, r, http.StatusBadRequest, "cannot read body")
		}
		return nil, false
	}
	return body, true
}

// EventBridge is POST /hooks/aws/eventbridge: an EventBridge API destination
// whose connection sends a shared secret in a header (API key auth).
type EventBridge struct {
	// Header names the header the connection sends; Secret is its value.
	Header string
	Secret []byte
	Sink   Sink
	Now    func() time.Time
	guard  *guard
}

// NewEventBridge returns the endpoint, with a rate limit of 50 requests a
// second (bursts of 200) per source address.
func NewEventBridge(header string, secret []byte, sink Sink, log *slog.Logger) *EventBridge {
	return NewEventBridgeLimited(header, secret, sink, log, DefaultRateLimit)
}

// DefaultRateLimit is each endpoint's requests per second per source
// address.
const DefaultRateLimit = 50

// NewEventBridgeLimited is NewEventBridge with perSecond requests a second
// per source address (bursts of 4 seconds' worth); 0 means no limit.
func NewEventBridgeLimited(header string, secret []byte, sink Sink, log *slog.Logger, perSecond float64) *EventBridge {
	h := &EventBridge{Header: header, Secret: secret, Sink: sink, Now: time.Now, guard: newGuard("eventbridge", log, 0, 0)}
	h.guard.limit(perSecond)
	return h
}

// RateLimit sets the endpoint's limit per source address (see guard.limit).
func (h *EventBridge) RateLimit(perSecond float64) { h.guard.limit(perSecond) }

func (h *EventBridge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, ok := h.guard.read(w, r)
	if !ok {
		return
	}
	// Constant time, so the secret cannot be guessed byte by byte.
	if len(h.Secret) == 0 || subtle.ConstantTimeCompare([]byte(r.Header.Get(h.Header)), h.Secret) != 1 {
		h.guard.reject(w, r, http.StatusUnauthorized, "missing or wrong "+h.Header)
		return
	}
	rep, err := ParseEventBridge(body, h.Now())
	if err != nil {
		// 400 only when nothing in the body is an event: EventBridge does
		// not retry client errors, and such a body will not improve.
		h.guard.reject(w, r, http.StatusBadRequest, err.Error())
		return
	}
	accept(w, r, h.guard, h.Sink, rep)
}

// ignoredEvent is how an event that was read but not acted on is reported
// to the sender.
type ignoredEvent struct {
	Event  string `json:"event"`
	Reason string `json:"reason"`
}

// accept commits every alert, then answers 200 with their dedup keys and
// the events that were ignored, each with its reason (logged too). A store
// failure answers 503 so that the sender retries; alerts committed before
// it are deduplicated on the retry.
func accept(w http.ResponseWriter, r *http.Request, g *guard, sink Sink, rep Report) {
	keys := make([]string, 0, len(rep.Alerts))
	for _, a := range rep.Alerts {
		if err := sink.Accept(r.Context(), a); err != nil {
			g.log.Error("alert not stored", "source", g.source, "dedup_key", a.DedupKey, "error", err)
			http.Error(w, "alert not stored; retry", http.StatusServiceUnavailable)
			return
		}
		keys = append(keys, a.DedupKey)
	}
	ignored := ignoredEvents(g, rep)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"accepted": keys, "ignored": ignored, "ignored_count": len(ignored)})
}

// ignoredEvents logs every skipped event (reason and id, never the body)
// and returns them as the sender is told.
func ignoredEvents(g *guard, rep Report) []ignoredEvent {
	out := make([]ignoredEvent, 0, len(rep.Skipped))
	for _, s := range rep.Skipped {
		g.log.Warn("event ignored", "source", g.source, "event", s.Where, "reason", s.Reason)
		id := s.Event
		if id == "" {
			id = s.Where
		}
		out = append(out, ignoredEvent{Event: id, Reason: s.Reason})
	}
	return out
}
