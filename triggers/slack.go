package triggers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/stanchhq/stanch/slack"
)

// Decider records approval decisions: the runner, in stanch serve.
type Decider interface {
	// Approvers returns who may decide a step's approval.
	Approvers(ctx context.Context, runID, stepID string) ([]string, error)
	// Decide records the decision of who; groups are the approvers' user
	// groups who belongs to. Errors wrap ErrNotApprover or ErrNotWaiting
	// where those apply.
	Decide(ctx context.Context, runID, stepID, decision string, who Approver, groups []string) (Decided, error)
}

// Approver is who clicked: their Slack user id, which approvers lists
// match, and the name Slack shows for them (empty when it could not be
// found), which the record keeps for people to read.
type Approver struct {
	ID, Name string
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

// SeenRequests remembers requests already handled, beyond the life of one
// process: the runner's store implements it.
type SeenRequests interface {
	// FirstSeen records digest until expires and reports whether this is
	// the first time it is recorded (among digests not yet expired).
	FirstSeen(ctx context.Context, digest string, expires time.Time) (bool, error)
}

// SlackInteractions is POST /hooks/slack/interactions, where Slack sends
// clicks on the Approve and Deny buttons of approval messages.
type SlackInteractions struct {
	secret  string
	tokens  *slack.Tokens
	decider Decider
	slack   *slack.Client
	guard   *guard
	seen    *replayMemory
	// durable, when set, remembers signatures across restarts.
	durable SeenRequests
	log     *slog.Logger
	// ackWithin is how long a click's handling may hold the response;
	// Slack shows an error after 3 s.
	ackWithin time.Duration
	// nameWithin is how long a click waits for the clicker's name
	// (users.info) before it is decided without it.
	nameWithin time.Duration
	wg         sync.WaitGroup
}

// NewSlackInteractions returns the endpoint. secret is the app's signing
// secret; client answers people with ephemeral messages and resolves user
// groups.
func NewSlackInteractions(secret string, tokens *slack.Tokens, decider Decider, client *slack.Client, log *slog.Logger) *SlackInteractions {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &SlackInteractions{secret: secret, tokens: tokens, decider: decider, slack: client, guard: newGuard("slack", log, DefaultRateLimit),
		seen: newReplayMemory(100000), log: log, ackWithin: 2 * time.Second, nameWithin: 2 * time.Second}
}

// RateLimit sets the endpoint's limits per source address (see guard).
func (h *SlackInteractions) RateLimit(perSecond float64) { h.guard.limit(perSecond) }

// TrustProxies sets the proxies whose X-Forwarded-For names the source
// address (see guard.client).
func (h *SlackInteractions) TrustProxies(proxies []netip.Prefix) { h.guard.trust(proxies) }

// RememberIn keeps the signatures of handled requests in seen as well as in
// memory, so that a request captured before a restart is still refused
// within its five minutes.
func (h *SlackInteractions) RememberIn(seen SeenRequests) { h.durable = seen }

// slackSignature is the shape of X-Slack-Signature, checked before the body
// is read.
var slackSignature = regexp.MustCompile(`^v0=[0-9a-fA-F]{64}$`)

// slackWindow is how far a request's timestamp may be from now (the
// verifier's limit); a signature is remembered a little longer than that.
const slackWindow = 5 * time.Minute

// Wait waits for clicks still being handled after their answer was sent.
func (h *SlackInteractions) Wait() { h.wg.Wait() }

func (h *SlackInteractions) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.guard.start(w, r) {
		return
	}
	// v0 signature over the raw body; the verifier refuses timestamps more
	// than five minutes away, which it can tell before the body is read.
	if h.secret == "" {
		h.guard.unauthenticated(w, r, http.StatusUnauthorized, "no Slack signing secret configured")
		return
	}
	v, err := slackapi.NewSecretsVerifier(r.Header, h.secret)
	if err != nil || !slackSignature.MatchString(r.Header.Get("X-Slack-Signature")) {
		h.guard.unauthenticated(w, r, http.StatusUnauthorized, "missing or stale Slack signature headers")
		return
	}
	body, ok := h.guard.body(w, r)
	if !ok {
		return
	}
	if _, err := v.Write(body); err != nil || v.Ensure() != nil {
		h.guard.unauthenticated(w, r, http.StatusUnauthorized, "wrong Slack signature")
		return
	}
	if !h.guard.authenticated(w, r) {
		return
	}
	// Inside the window a captured request would verify again: the
	// signature is remembered and a second use refused. It is remembered as
	// the bytes the verifier compared, not the header's text, since the
	// same bytes in upper-case hex verify just as well.
	if replay, err := h.replayed(r); err != nil {
		h.log.Error("Slack request not checked against replays; refused", "error", err)
		h.guard.count(ResultUnavailable)
		http.Error(w, "stanch could not record the request; try again", http.StatusServiceUnavailable)
		return
	} else if replay {
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
		h.guard.count(ResultIgnored)
		w.WriteHeader(http.StatusOK)
		return
	}
	for _, a := range cb.ActionCallback.BlockActions {
		if a.ActionID != slack.ActionApprove && a.ActionID != slack.ActionDeny {
			continue
		}
		c := click{user: cb.User.ID, channel: cb.Channel.ID, actionID: a.ActionID, value: a.Value}
		if c.channel == "" {
			c.channel = cb.Container.ChannelID
		}
		h.handle(r.Context(), c)
		break
	}
	h.guard.count(ResultAccepted)
	w.WriteHeader(http.StatusOK)
}

type click struct {
	user, channel, actionID, value string
}

// replayed records a verified request's signature and reports whether it
// was seen before: in this process, or (with RememberIn) by any process on
// the same store within the signature's window.
func (h *SlackInteractions) replayed(r *http.Request) (bool, error) {
	sig, err := hex.DecodeString(strings.TrimPrefix(r.Header.Get("X-Slack-Signature"), "v0="))
	if err != nil {
		return false, fmt.Errorf("decode a verified signature: %w", err)
	}
	sum := sha256.Sum256(append([]byte("slack v0 signature\x00"), sig...))
	digest := "slack:" + hex.EncodeToString(sum[:])
	if h.seen.seen(digest) {
		return true, nil
	}
	if h.durable == nil {
		return false, nil
	}
	// The verifier accepted the timestamp, so it parses; the signature
	// verifies again until it is slackWindow old.
	ts, _ := strconv.ParseInt(r.Header.Get("X-Slack-Request-Timestamp"), 10, 64)
	first, err := h.durable.FirstSeen(r.Context(), digest, time.Unix(ts, 0).Add(slackWindow+time.Minute))
	if err != nil {
		h.seen.forget(digest)
		return false, fmt.Errorf("remember a Slack request: %w", err)
	}
	return !first, nil
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
	if err != nil || (c.actionID == slack.ActionApprove) != (v.Decision == "approved") {
		h.log.Warn("click refused", "source", "slack", "reason", "button value is not a valid approval token", "user", c.user)
		return "This button is not one stanch made; nothing was decided."
	}
	name := h.userName(ctx, c.user)
	approvers, err := h.decider.Approvers(ctx, v.RunID, v.StepID)
	if errors.Is(err, ErrNotWaiting) {
		return fmt.Sprintf("Step %s of run %s is not waiting for a decision.", slack.Escape(v.StepID), slack.Escape(v.RunID))
	}
	if err != nil {
		h.log.Error("click not recorded", "run", v.RunID, "step", v.StepID, "error", err)
		return "stanch could not record your decision; try again."
	}
	var groups []string
	for _, p := range approvers {
		if !slack.IsGroupID(p) {
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
	d, err := h.decider.Decide(ctx, v.RunID, v.StepID, v.Decision, Approver{ID: c.user, Name: <-name}, groups)
	switch {
	case errors.Is(err, ErrNotApprover):
		h.log.Warn("click refused", "source", "slack", "reason", "not an approver", "user", c.user, "run", v.RunID, "step", v.StepID)
		who := make([]string, len(approvers))
		for i, p := range approvers {
			who[i] = slack.Mention(p)
		}
		return fmt.Sprintf("You are not an approver of step %s (approvers: %s). Your click was recorded and changed nothing.", slack.Escape(v.StepID), strings.Join(who, ", "))
	case errors.Is(err, ErrNotWaiting):
		return fmt.Sprintf("Step %s of run %s is not waiting for a decision.", slack.Escape(v.StepID), slack.Escape(v.RunID))
	case err != nil:
		h.log.Error("click not recorded", "run", v.RunID, "step", v.StepID, "error", err)
		return "stanch could not record your decision; try again."
	case !d.First:
		return fmt.Sprintf("Already %s by %s at %s; your click changed nothing.", slack.Escape(d.Decision), slack.Mention(d.DecidedBy), d.DecidedAt.UTC().Format("15:04:05Z"))
	}
	h.log.Info("approval decided in Slack", "run", v.RunID, "step", v.StepID, "decision", v.Decision, "user", c.user)
	return ""
}

// userName looks up the name of who clicked (Slack's users.info, cached by
// the client) while decide reads the approvers and their groups, so that
// a prompt answer adds no time to the decision. It runs in the click's
// handling, which holds Slack's answer for at most ackWithin (see handle),
// so a slow users.info cannot make Slack show the click as failed; and it
// gives up after nameWithin: a name is worth a moment, not a decision, so
// on any failure the decision goes on with the id alone.
func (h *SlackInteractions) userName(ctx context.Context, user string) <-chan string {
	out := make(chan string, 1) // decide may return before it reads
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		ctx, cancel := context.WithTimeout(ctx, h.nameWithin)
		defer cancel()
		name, err := h.slack.UserName(ctx, user)
		if err != nil {
			h.log.Warn("the name of who clicked was not found; the decision is recorded with their Slack id only", "user", user, "error", err)
		}
		out <- name
	}()
	return out
}
