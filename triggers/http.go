package triggers

import (
	"context"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/stanchhq/stanch/alert"
)

// Sink durably records an alert and starts what it should start (the
// runner). When Accept returns nil the alert is committed; it must make no
// network call, so a sender is never kept waiting on AWS.
type Sink interface {
	Accept(ctx context.Context, a alert.Alert) error
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

// NewEventBridgeLimited is NewEventBridge with perSecond requests a second
// per source address (bursts of 4 seconds' worth); 0 means no limit.
func NewEventBridgeLimited(header string, secret []byte, sink Sink, log *slog.Logger, perSecond float64) *EventBridge {
	return &EventBridge{Header: header, Secret: secret, Sink: sink, Now: time.Now, guard: newGuard("eventbridge", log, perSecond)}
}

// RateLimit sets the endpoint's limits per source address (see guard).
func (h *EventBridge) RateLimit(perSecond float64) { h.guard.limit(perSecond) }

// TrustProxies sets the proxies whose X-Forwarded-For names the source
// address (see guard.client).
func (h *EventBridge) TrustProxies(proxies []netip.Prefix) { h.guard.trust(proxies) }

func (h *EventBridge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.guard.start(w, r) {
		return
	}
	// The secret is a header: a forged request is refused before its body
	// is read. Constant time, so the secret cannot be guessed byte by byte.
	if len(h.Secret) == 0 || subtle.ConstantTimeCompare([]byte(r.Header.Get(h.Header)), h.Secret) != 1 {
		h.guard.unauthenticated(w, r, http.StatusUnauthorized, "missing or wrong "+h.Header)
		return
	}
	if !h.guard.authenticated(w, r) {
		return
	}
	body, ok := h.guard.body(w, r)
	if !ok {
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
// the events that were ignored, each with its reason (logged too). When
// nothing was accepted and an event was refused (a GuardDuty finding whose
// key id field holds no one key id), the same answer comes with 400: the
// sender must not count it delivered, and EventBridge keeps such an event
// in its dead-letter queue. A store failure answers 503 so that the sender
// retries; alerts committed before it are deduplicated on the retry.
func accept(w http.ResponseWriter, r *http.Request, g *guard, sink Sink, rep Report) {
	keys := make([]string, 0, len(rep.Alerts))
	for _, a := range rep.Alerts {
		if err := sink.Accept(r.Context(), a); err != nil {
			g.log.Error("alert not stored", "source", g.source, "dedup_key", a.DedupKey, "error", err)
			g.count(ResultUnavailable)
			http.Error(w, "alert not stored; retry", http.StatusServiceUnavailable)
			return
		}
		keys = append(keys, a.DedupKey)
	}
	ignored := ignoredEvents(g, rep)
	status, result := http.StatusOK, ResultAccepted
	switch {
	case rep.refusedOnly():
		status, result = http.StatusBadRequest, ResultMalformed
	case len(keys) == 0:
		result = ResultIgnored
	}
	g.count(result)
	writeJSON(w, status, map[string]any{"accepted": keys, "ignored": ignored, "ignored_count": len(ignored)})
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
