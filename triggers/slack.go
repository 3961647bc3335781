package triggers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	slackapi "github.com/slack-go/slack"

	slackact "github.com/stanchhq/stanch/actions/slack"
)

// Decider records approval decisions: the runner, in stanch serve.
type Decider interface {
	// Approvers returns who may decide a step's approval.
	Approvers(ctx context.Context, runID, stepID string) ([]string, error)
	// Decide records user's decision; groups are the approvers' user
	// groups user belongs to. Errors wrap ErrNotApprover or ErrNotWaiting
	// where those apply.
	Decide(ctx context.Context, runID, stepID, decision, user string, groups []string) (Decided, error)
}

// Decided is the state of an approval after a click.
type Decided struct {
	// First is false when someone decided before this click.
	First     bool
	Decision  string
	DecidedBy string
	DecidedAt time.Time
}

// Errors a Decider returns.
var (
	ErrNotApprover = errors.New("not an approver")
	ErrNotWaiting  = errors.New("not waiting for a decision")
)

// SlackInteractions is POST /hooks/slack/interactions, where Slack sends
// clicks on the Approve and Deny buttons of approval messages.
type SlackInteractions struct {
	secret  string
	tokens  *slackact.Tokens
	decider Decider
	slack   *slackact.Client
	guard   *guard
	seen    *replayMemory
	log     *slog.Logger
	// ackWithin is how long a click's handling may hold the response;
	// Slack shows an error after 3 s.
	ackWithin time.Duration
	wg        sync.WaitGroup
}

// NewSlackInteractions returns the endpoint. secret is the app's signing
// secret; client answers people with ephemeral messages and resolves user
// groups.
func NewSlackInteractions(secret string, tokens *slackact.Tokens, decider Decider, client *slackact.Client, log *slog.Logger) *SlackInteractions {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &SlackInteractions{secret: secret, tokens: tokens, decider: decider, slack: client, guard: newGuard("slack", log, 0, 0),
		seen: newReplayMemory(100000), log: log, ackWithin: 2 * time.Second}
	h.guard.limit(DefaultRateLimit)
	return h
}

// RateLimit sets the endpoint's limit per source address.
func (h *SlackInteractions) RateLimit(perSecond float64) { h.guard.limit(perSecond) }

// Wait waits for clicks still being handled after their answer was sent.
func (h *SlackInteractions) Wait() { h.wg.Wait() }

func (h *SlackInteractions) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, ok := h.guard.read(w, r)
	if !ok {
		return
	}
	// v0 signature over the raw body; the verifier refuses timestamps more
	// than five minutes away.
	if h.secret == "" {
		h.guard.reject(w, r, http.StatusUnauthorized, "no Slack signing secret configured")
		return
	}
	v, err := slackapi.NewSecretsVerifier(r.Header, h.secret)
	if err != nil {
		h.guard.reject(w, r, http.StatusUnauthorized, "missing or stale Slack signature headers")
		return
	}
	if _, err := v.Write(body); err != nil || v.Ensure() != nil {
		h.guard.reject(w, r, http.StatusUnauthorized, "wrong Slack signature")
		return
	}
	// Inside the window a captured request would verify again: the
	// signature is remembered and a second use refused.
	if h.seen.seen(r.Header.Get("X-Slack-Signature")) {
		h.guard.reject(w, r, http.StatusUnauthorized, "replayed Slack request")
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		h.guard.reject(w, r, http.StatusBadRequest, "unreadable form body")
		return
	}
	var cb slackapi.InteractionCallback
	if err := json.Unmarshal([]byte(form.Get("payload")), &cb); err != nil {
		h.guard.reject(w, r, http.StatusBadRequest, "payload is not an interaction")
		return
	}
	if cb.Type != slackapi.InteractionTypeBlockActions {
		w.WriteHeader(http.StatusOK)
		return
	}
	for _, a := range cb.ActionCallback.BlockActions {
		if a.ActionID != slackact.ActionApprove && a.ActionID != slackact.ActionDeny {
			continue
		}
		c := click{user: cb.User.ID, channel: cb.Channel.ID, actionID: a.ActionID, value: a.Value}
		if c.channel == "" {
			c.channel = cb.Container.ChannelID
		}
		h.handle(r.Context(), c)
		break
	}
	w.WriteHeader(http.StatusOK)
}

type click struct {
	user, channel, actionID, value string
}

// handle decides a click, waiting at most ackWithin: the rest (telling
// someone their click was refused) goes on after the answer.
func (h *SlackInteractions) handle(ctx context.Context, c click) {
	done := make(chan struct{})
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		defer close(done)
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if msg := h.decide(ctx, c); msg != "" && c.channel != "" {
			if err := h.slack.Ephemeral(ctx, c.channel, c.user, msg); err != nil {
				h.log.Warn("could not answer a click", "user", c.user, "error", err)
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(h.ackWithin):
	}
}

// decide records a click and returns what to tell the person who clicked,
// if anything.
func (h *SlackInteractions) decide(ctx context.Context, c click) string {
	v, err := h.tokens.Verify(c.value)
	if err != nil || (c.actionID == slackact.ActionApprove) != (v.Decision == "approved") {
		h.log.Warn("click refused", "source", "slack", "reason", "button value is not a valid approval token", "user", c.user)
		return "This button is not one stanch made; nothing was decided."
	}
	approvers, err := h.decider.Approvers(ctx, v.RunID, v.StepID)
	if errors.Is(err, ErrNotWaiting) {
		return fmt.Sprintf("Step %s of run %s is not waiting for a decision.", v.StepID, v.RunID)
	}
	if err != nil {
		h.log.Error("click not recorded", "run", v.RunID, "step", v.StepID, "error", err)
		return "stanch could not record your decision; try again."
	}
	var groups []string
	for _, p := range approvers {
		if !slackact.IsGroupID(p) {
			continue
		}
		members, err := h.slack.GroupMembers(ctx, p)
		if err != nil {
			h.log.Warn("could not read a user group", "group", p, "error", err)
			continue
		}
		if slices.Contains(members, c.user) {
			groups = append(groups, p)
		}
	}
	d, err := h.decider.Decide(ctx, v.RunID, v.StepID, v.Decision, c.user, groups)
	switch {
	case errors.Is(err, ErrNotApprover):
		h.log.Warn("click refused", "source", "slack", "reason", "not an approver", "user", c.user, "run", v.RunID, "step", v.StepID)
		return fmt.Sprintf("You are not an approver of step %s (approvers: %s). Your click was recorded and changed nothing.", v.StepID, strings.Join(approvers, ", "))
	case errors.Is(err, ErrNotWaiting):
		return fmt.Sprintf("Step %s of run %s is not waiting for a decision.", v.StepID, v.RunID)
	case err != nil:
		h.log.Error("click not recorded", "run", v.RunID, "step", v.StepID, "error", err)
		return "stanch could not record your decision; try again."
	case !d.First:
		return fmt.Sprintf("Already %s by %s at %s; your click changed nothing.", d.Decision, slackact.Mention(d.DecidedBy), d.DecidedAt.UTC().Format("15:04:05Z"))
	}
	h.log.Info("approval decided in Slack", "run", v.RunID, "step", v.StepID, "decision", v.Decision, "user", c.user)
	return ""
}
