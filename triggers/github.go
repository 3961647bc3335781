package triggers

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strings"

	"github.com/google/go-github/v60/github"
)

// Deferrer durably records a reference that is turned into alerts later,
// on a worker, because that needs network calls the ack path must not make.
type Deferrer interface {
	Defer(ctx context.Context, kind, dedupKey string, ref []byte) error
}

// ResolverGitHubAlert is the kind of deferred reference GitHub webhooks
// record.
const ResolverGitHubAlert = "github.secret_scanning_alert"

// GitHubAlertRef is what a secret_scanning_alert delivery records: enough
// to fetch the alert, and its secret, through the REST API.
type GitHubAlertRef struct {
	Repo       string `json:"repo"` // owner/name
	Number     int64  `json:"number"`
	SecretType string `json:"secret_type"`
	Action     string `json:"action"`
	Delivery   string `json:"delivery"`
}

// GitHub is POST /hooks/github.
type GitHub struct {
	Secret []byte
	Sink   Deferrer
	guard  *guard
	seen   *replayMemory
}

// NewGitHub returns the endpoint; secret is the webhook's secret.
func NewGitHub(secret []byte, sink Deferrer, log *slog.Logger) *GitHub {
	return &GitHub{Secret: secret, Sink: sink, guard: newGuard("github", log, DefaultRateLimit), seen: newReplayMemory(100000)}
}

// RateLimit sets the endpoint's limits per source address (see guard).
func (h *GitHub) RateLimit(perSecond float64) { h.guard.limit(perSecond) }

// TrustProxies sets the proxies whose X-Forwarded-For names the source
// address (see guard.client).
func (h *GitHub) TrustProxies(proxies []netip.Prefix) { h.guard.trust(proxies) }

// githubSignature is the shape of X-Hub-Signature-256, checked before the
// body is read so that a request without one costs nothing more.
var githubSignature = regexp.MustCompile(`^sha256=[0-9a-fA-F]{64}$`)

// alertActions start or join an incident; "resolved" is only recorded.
var alertActions = map[string]bool{"created": true, "reopened": true, "publicly_leaked": true, "validated": true}

func (h *GitHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.guard.start(w, r) {
		return
	}
	const wrongSignature = "missing or wrong X-Hub-Signature-256"
	if len(h.Secret) == 0 || !githubSignature.MatchString(r.Header.Get("X-Hub-Signature-256")) {
		h.guard.unauthenticated(w, r, http.StatusUnauthorized, wrongSignature)
		return
	}
	body, ok := h.guard.body(w, r)
	if !ok {
		return
	}
	// HMAC-SHA256 of the raw body, compared in constant time.
	if err := github.ValidateSignature(r.Header.Get("X-Hub-Signature-256"), body, h.Secret); err != nil {
		h.guard.unauthenticated(w, r, http.StatusUnauthorized, wrongSignature)
		return
	}
	if !h.guard.authenticated(w, r) {
		return
	}
	event, delivery := r.Header.Get("X-GitHub-Event"), r.Header.Get("X-GitHub-Delivery")
	// The signature has no timestamp, so a captured delivery can be sent
	// again: answer a delivery id already handled without doing anything.
	// The header is not signed, so this only spares work: what makes a
	// replay harmless is that the store keeps one alert per repository and
	// alert number, whatever the delivery, and that the resolver reads the
	// alert as GitHub has it now. That is why this memory is not kept
	// across restarts, unlike Slack's.
	if delivery != "" && h.seen.seen(delivery) {
		h.guard.count(ResultDuplicate)
		writeJSON(w, http.StatusOK, map[string]any{"duplicate": delivery})
		return
	}
	switch event {
	case "ping":
		h.guard.count(ResultIgnored)
		writeJSON(w, http.StatusOK, map[string]any{"ok": true})
		return
	case "secret_scanning_alert", "secret_scanning_alert_location":
	default:
		h.guard.count(ResultIgnored)
		writeJSON(w, http.StatusAccepted, map[string]any{"ignored": event})
		return
	}
	var payload struct {
		Action string `json:"action"`
		Alert  struct {
			Number     int64  `json:"number"`
			SecretType string `json:"secret_type"`
		} `json:"alert"`
		Repository struct {
			FullName string `json:"full_name"`
		} `json:"repository"`
	}
	doc := body
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		// Webhooks set to the form content type send the JSON in a
		// "payload" field; the signature still covers the raw body.
		form, err := url.ParseQuery(string(body))
		if err != nil {
			h.guard.reject(w, r, http.StatusBadRequest, "unreadable form body")
			return
		}
		doc = []byte(form.Get("payload"))
	}
	if err := json.Unmarshal(doc, &payload); err != nil || payload.Repository.FullName == "" || payload.Alert.Number == 0 {
		h.guard.reject(w, r, http.StatusBadRequest, "not a secret-scanning payload (repository.full_name and alert.number are needed)")
		return
	}
	if err := CheckRepo("repository.full_name", payload.Repository.FullName); err != nil {
		h.guard.reject(w, r, http.StatusBadRequest, err.Error())
		return
	}
	if err := checkAlertNumber("alert.number", payload.Alert.Number); err != nil {
		h.guard.reject(w, r, http.StatusBadRequest, err.Error())
		return
	}
	if event == "secret_scanning_alert" && !alertActions[payload.Action] {
		h.guard.log.Info("secret-scanning alert recorded", "action", payload.Action, "repo", payload.Repository.FullName, "alert", payload.Alert.Number, "delivery", delivery)
		h.guard.count(ResultIgnored)
		writeJSON(w, http.StatusOK, map[string]any{"recorded": payload.Action})
		return
	}
	ref, _ := json.Marshal(GitHubAlertRef{Repo: payload.Repository.FullName, Number: payload.Alert.Number, SecretType: payload.Alert.SecretType, Action: payload.Action, Delivery: delivery})
	// One alert per repository and alert number: redeliveries, replays and
	// location events for the same alert are deduplicated by the store.
	dedup := fmt.Sprintf("github:%s#%d", payload.Repository.FullName, payload.Alert.Number)
	if err := h.Sink.Defer(r.Context(), ResolverGitHubAlert, dedup, ref); err != nil {
		h.guard.log.Error("alert not stored", "source", "github", "dedup_key", dedup, "error", err)
		h.seen.forget(delivery) // a redelivery must be able to succeed
		h.guard.count(ResultUnavailable)
		http.Error(w, "alert not stored; retry", http.StatusServiceUnavailable)
		return
	}
	h.guard.count(ResultAccepted)
	writeJSON(w, http.StatusOK, map[string]any{"accepted": []string{dedup}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
