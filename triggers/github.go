package triggers

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
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
	h := &GitHub{Secret: secret, Sink: sink, guard: newGuard("github", log, 0, 0), seen: newReplayMemory(100000)}
	h.guard.limit(DefaultRateLimit)
	return h
}

// RateLimit sets the endpoint's limit per source address.
func (h *GitHub) RateLimit(perSecond float64) { h.guard.limit(perSecond) }

// alertActions start or join an incident; "resolved" is only recorded.
var alertActions = map[string]bool{"created": true, "reopened": true, "publicly_leaked": true, "validated": true}

func (h *GitHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, ok := h.guard.read(w, r)
	if !ok {
		return
	}
	// HMAC-SHA256 of the raw body, compared in constant time; a delivery
	// without a signature is refused like a wrong one.
	if err := github.ValidateSignature(r.Header.Get("X-Hub-Signature-256"), body, h.Secret); err != nil || len(h.Secret) == 0 {
		h.guard.reject(w, r, http.StatusUnauthorized, "missing or wrong X-Hub-Signature-256")
		return
	}
	event, delivery := r.Header.Get("X-GitHub-Event"), r.Header.Get("X-GitHub-Delivery")
	// The signature has no timestamp, so a captured delivery can be sent
	// again: answer a delivery id already handled without doing anything.
	if delivery != "" && h.seen.seen(delivery) {
		writeJSON(w, http.StatusOK, map[string]any{"duplicate": delivery})
		return
	}
	switch event {
	case "ping":
		writeJSON(w, http.StatusOK, map[string]any{"ok": true})
		return
	case "secret_scanning_alert", "secret_scanning_alert_location":
	default:
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
	if event == "secret_scanning_alert" && !alertActions[payload.Action] {
		h.guard.log.Info("secret-scanning alert recorded", "action", payload.Action, "repo", payload.Repository.FullName, "alert", payload.Alert.Number, "delivery", delivery)
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
		http.Error(w, "alert not stored; retry", http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"accepted": []string{dedup}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
