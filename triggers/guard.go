package triggers

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/internal/sourcelimit"
)

// MaxBody bounds every request body stanch reads from outside.
const MaxBody = 1 << 20

// DefaultRateLimit is each endpoint's requests per second per source
// address.
const DefaultRateLimit = 50

// guard is what every endpoint shares: a body size limit, rate limits per
// source address, and a structured log line for rejections (the reason and
// the source, never the body).
//
// A request is charged to one of two budgets of its source address, never
// both: authenticated requests to their own, and requests refused before or
// at authentication to another. Forged requests therefore never lock out
// genuine ones, even when every sender shares one address (a load
// balancer's); a flood of them costs what authenticating costs, which
// comes first and is cheap: headers are checked before the body is read
// where the scheme allows it (a missing or malformed signature, a wrong
// EventBridge secret), and a body is never read past MaxBody. Past the
// budget, forged requests are answered 429 and logged once a second with a
// count instead of once each.
type guard struct {
	source string
	log    *slog.Logger
	limits *sourcelimit.Limits

	mu sync.Mutex
	// Refusals past the unauthenticated budget since the last log line.
	quiet     int
	quietFrom time.Time
	lastLoud  time.Time
	// meter, when set, is told what became of each request (meter.go).
	meter Meter
}

func newGuard(source string, log *slog.Logger, perSecond float64) *guard {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &guard{source: source, log: log, limits: sourcelimit.New(perSecond)}
}

// limit sets the per-source rate of each budget: perSecond requests a
// second, bursts of four seconds' worth; 0 turns the limits off.
func (g *guard) limit(perSecond float64) { g.limits.SetRate(perSecond) }

// trust sets the proxies whose X-Forwarded-For is believed.
func (g *guard) trust(proxies []netip.Prefix) { g.limits.Trust(proxies) }

// ParseTrustedProxy reads a CIDR (10.0.0.0/8) or a single address as a
// prefix of trusted proxies.
func ParseTrustedProxy(s string) (netip.Prefix, error) { return sourcelimit.ParseTrustedProxy(s) }

// client is the address a request is counted against (sourcelimit's
// Client: the peer's, or the nearest untrusted one a trusted proxy names).
func (g *guard) client(r *http.Request) string { return g.limits.Client(r) }

// start checks the method. A request that is refused is charged as an
// unauthenticated one.
func (g *guard) start(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodPost {
		g.unauthenticated(w, r, http.StatusMethodNotAllowed, "use POST")
		return false
	}
	return true
}

// body reads the body within MaxBody. It comes before authentication where
// the signature covers the body, so a refusal here is charged as an
// unauthenticated one.
func (g *guard) body(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			g.unauthenticated(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", MaxBody))
		} else {
			g.unauthenticated(w, r, http.StatusBadRequest, "cannot read body")
		}
		return nil, false
	}
	return body, true
}

// unauthenticated refuses a request that is not (or not yet) known to
// come from the sender, charging its source's unauthenticated budget: past
// that budget the answer is 429 and the log line is folded into a count.
func (g *guard) unauthenticated(w http.ResponseWriter, r *http.Request, status int, reason string) {
	reason = alert.RedactText(reason) // a reason is stanch's words, but may quote a field's name
	addr := g.client(r)
	if g.limits.Refused(addr) {
		g.count(refusal(status))
		g.logRejection(r, addr, status, reason)
		http.Error(w, reason, status)
		return
	}
	g.count(ResultRateLimited)
	g.mu.Lock()
	now := time.Now()
	if g.quiet == 0 {
		g.quietFrom = now
	}
	g.quiet++
	n, from := g.quiet, g.quietFrom
	loud := now.Sub(g.lastLoud) >= time.Second
	if loud {
		g.quiet, g.lastLoud = 0, now
	}
	g.mu.Unlock()
	if loud {
		g.log.Warn("request rejected", "source", g.source, "reason", "rate limit exceeded", "remote", addr, "status", http.StatusTooManyRequests,
			"cause", reason, "refused_since", from, "refused", n)
	}
	http.Error(w, "rate limit exceeded", http.StatusTooManyRequests)
}

// authenticated charges an authenticated request to its source's own
// budget, and answers 429 when that is spent.
func (g *guard) authenticated(w http.ResponseWriter, r *http.Request) bool {
	addr := g.client(r)
	if g.limits.Authenticated(addr) {
		return true
	}
	g.count(ResultRateLimited)
	g.logRejection(r, addr, http.StatusTooManyRequests, "rate limit exceeded")
	http.Error(w, "rate limit exceeded", http.StatusTooManyRequests)
	return false
}

// reject refuses an authenticated request (a payload stanch cannot use).
func (g *guard) reject(w http.ResponseWriter, r *http.Request, status int, reason string) {
	reason = alert.RedactText(reason) // the last word on what leaves: whatever a reason quotes
	g.count(refusal(status))
	g.logRejection(r, g.client(r), status, reason)
	http.Error(w, reason, status)
}

func (g *guard) logRejection(r *http.Request, addr string, status int, reason string) {
	attrs := []any{"source", g.source, "reason", reason, "remote", addr, "status", status}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil && host != addr {
		attrs = append(attrs, "peer", host)
	}
	g.log.Warn("request rejected", attrs...)
}
