package reportlink

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/stanchhq/stanch/internal/sourcelimit"
)

// ErrNoRun is what a Render function returns (wrapped) for a run that does
// not exist.
var ErrNoRun = errors.New("no such run")

// maxRunID bounds the run id a request may name before it reaches the
// store; stanch's own are 30 characters.
const maxRunID = 128

// notFound is every refusal's body: the same as an unknown path's, so that
// a refusal tells nothing, not even that reports are served.
const notFound = "404 page not found\n"

// Headers of every answer: the report is self-contained (inline styles,
// images as data: URLs, no script), its link carries its signature (no
// Referer), and it is for the one who asked (no shared cache).
var securityHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:",
	"X-Content-Type-Options":  "nosniff",
	"Referrer-Policy":         "no-referrer",
	"Cache-Control":           "private, no-store",
}

// Handler serves GET /reports/{run}: the run's report to a request with a
// link that verifies or a bearer token that matches. Every refusal (no
// credentials, a bad or expired link, a wrong token, a signed link to a
// run that does not exist, reports not configured) is the same 404 with
// the same body, so nothing tells whether a run exists. The signature is
// checked before the store is asked anything.
type Handler struct {
	// Signer verifies links; nil accepts none.
	Signer *Signer
	// Tokens are the bearer tokens; nil accepts none.
	Tokens *Tokens
	// Render writes the run's report; for a run that does not exist it
	// returns an error wrapping ErrNoRun.
	Render func(ctx context.Context, w io.Writer, runID string) error
	// Log gets a line for each refusal: the reason and the source address,
	// never the query (it holds the signature) nor the token.
	Log *slog.Logger
	// Now is the clock links expire by (default time.Now).
	Now func() time.Time

	mu     sync.Mutex
	limits *sourcelimit.Limits // nil: no limits
}

// RateLimit sets each source address's two budgets, as the webhooks have
// them (internal/sourcelimit): perSecond requests a second, one budget for
// requests that authenticated and one for refusals, so that guessing never
// costs a genuine reader theirs; 0 turns the limits off.
func (h *Handler) RateLimit(perSecond float64) { h.sourceLimits().SetRate(perSecond) }

// TrustProxies names the load balancers or proxies whose X-Forwarded-For
// names the source address.
func (h *Handler) TrustProxies(proxies []netip.Prefix) { h.sourceLimits().Trust(proxies) }

func (h *Handler) sourceLimits() *sourcelimit.Limits {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.limits == nil {
		h.limits = sourcelimit.New(0)
	}
	return h.limits
}

// ServeHTTP implements http.Handler. The run is the last element of the
// path, so the handler works mounted at Route or at "GET /reports/{run}".
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	runID := r.PathValue("run")
	if runID == "" {
		runID = strings.TrimPrefix(r.URL.Path, Route)
	}
	via, reason := h.authenticate(r, runID)
	if via == "" {
		h.refuse(w, r, reason, true)
		return
	}
	if !h.sourceLimits().Authenticated(h.client(r)) {
		h.log().Warn("report request refused", "reason", "rate limit exceeded", "remote", h.client(r), "via", via)
		http.Error(w, "rate limit exceeded", http.StatusTooManyRequests)
		return
	}
	var page bytes.Buffer
	err := h.Render(r.Context(), &page, runID)
	switch {
	case errors.Is(err, ErrNoRun):
		// Only a signature made with the key, or a token, gets here:
		// the refusal is the same as any other all the same.
		h.refuse(w, r, "no such run", false)
		return
	case err != nil:
		h.log().Error("report not rendered", "run", runID, "via", via, "error", err)
		setHeaders(w)
		http.Error(w, "the report could not be drawn; see stanch's log", http.StatusInternalServerError)
		return
	}
	setHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = page.WriteTo(w)
}

// authenticate returns how the request proved it may read runID's report
// ("link", "token"), or "" and why not. Nothing here reads the store.
func (h *Handler) authenticate(r *http.Request, runID string) (via, reason string) {
	if runID == "" || len(runID) > maxRunID || strings.Contains(runID, "/") {
		return "", "not a run id"
	}
	if auth := r.Header.Get("Authorization"); auth != "" {
		scheme, token, _ := strings.Cut(auth, " ")
		if strings.EqualFold(scheme, "Bearer") && h.Tokens.Match(strings.TrimSpace(token)) {
			return "token", ""
		}
		reason = "wrong bearer token"
	}
	q := r.URL.Query()
	sig, expires := q.Get(paramMAC), q.Get(paramExpires)
	if sig == "" && expires == "" {
		if reason == "" {
			reason = "no link signature or bearer token"
		}
		return "", reason
	}
	if h.Signer == nil {
		return "", "report links are not configured (no signing key)"
	}
	if err := h.Signer.Verify(runID, expires, sig, h.now()); err != nil {
		return "", err.Error()
	}
	return "link", ""
}

// refuse answers 404 with the one body every refusal has. A refusal before
// authentication is charged to the source's refusal budget; past it the
// answer is 429, which says nothing of any run either.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, reason string, unauthenticated bool) {
	addr := h.client(r)
	if unauthenticated && !h.sourceLimits().Refused(addr) {
		http.Error(w, "rate limit exceeded", http.StatusTooManyRequests)
		return
	}
	h.log().Warn("report request refused", "reason", reason, "remote", addr)
	setHeaders(w)
	http.Error(w, notFound[:len(notFound)-1], http.StatusNotFound)
}

func setHeaders(w http.ResponseWriter) {
	for k, v := range securityHeaders {
		w.Header().Set(k, v)
	}
}

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

func (h *Handler) log() *slog.Logger {
	if h.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return h.Log
}

// client is the address a request is counted against.
func (h *Handler) client(r *http.Request) string { return h.sourceLimits().Client(r) }
