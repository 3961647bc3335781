package github

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/internal/planted"
	"github.com/stanchhq/stanch/internal/testkit"
	"github.com/stanchhq/stanch/leaked"
	"github.com/stanchhq/stanch/sandbox"
)

// The impact tests search the sandbox's audit log with the real go-github
// client. Leaked tokens are planted ones, so that planted.RequireNone
// finds any trace of them.
var (
	impactPAT    = planted.GitHubPAT            // remembered by this process
	impactOther  = planted.GitHubUserToServer   // another token of the same organisation
	impactUnseen = planted.GitHubOAuth          // never remembered: only its hash is known
	impactFine   = planted.GitHubFineGrainedPAT // remembered; many events
)

type impactBundle struct {
	*bundle
	tr  *auditTransport
	act actions.Action
	// states are the checkpoints the steps saved.
	mu     sync.Mutex
	states [][]byte
}

// setupImpact starts a sandbox holding tokens, and the action with
// stanch's token (an owner of acme).
func setupImpact(t *testing.T, tokens ...sandbox.SeedToken) *impactBundle {
	t.Helper()
	seed := testkit.Seed(t, seedYAML)
	seed.Tokens = tokens
	b := &impactBundle{bundle: setupSeed(t, seed)}
	b.tr = &auditTransport{base: b.wire}
	b.act = b.actions(t, Options{APIURL: b.url, Token: token, Transport: b.tr})["github.token_impact"]
	require.NotNil(t, b.act)
	return b
}

// env is a step's env whose checkpoints are kept; stop, when set, makes
// the checkpoint after that many saves fail as if the process died.
func (b *impactBundle) stepEnv(resumed []byte, stop int) actions.Env {
	env := b.env("run_1")
	env.Resumed = resumed
	saves := 0
	env.Checkpoint = func(_ context.Context, state []byte) error {
		b.mu.Lock()
		defer b.mu.Unlock()
		saves++
		if stop > 0 && saves > stop {
			return errors.New("the step belongs to another attempt")
		}
		b.states = append(b.states, append([]byte(nil), state...))
		return nil
	}
	return env
}

func (b *impactBundle) lastState() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.states[len(b.states)-1]
}

// noToken fails when a planted token is anywhere stanch wrote or received.
func (b *impactBundle) noToken(t *testing.T, values ...any) {
	t.Helper()
	b.mu.Lock()
	states := make([]any, 0, len(b.states))
	for _, s := range b.states {
		states = append(states, s)
	}
	b.mu.Unlock()
	planted.RequireNone(t, "what the action returned", values...)
	planted.RequireNone(t, "the checkpoints", states...)
	planted.RequireNone(t, "the logs", b.log.String())
	planted.RequireNone(t, "the calls GitHub received", b.sb.Calls(), b.tr.queries())
	planted.RequireNone(t, "what GitHub answered", b.wire.String())
}

// auditTransport records the query of every audit-log request and, when
// limited, answers as GitHub's primary rate limit does (the sandbox's
// audit log has no rate limit of its own).
type auditTransport struct {
	base http.RoundTripper

	mu      sync.Mutex
	seen    []string
	limited time.Time // the reset of a spent rate limit; zero: not limited
}

func (a *auditTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !strings.HasSuffix(req.URL.Path, "/audit-log") {
		return a.base.RoundTrip(req)
	}
	a.mu.Lock()
	a.seen = append(a.seen, req.URL.RawQuery)
	reset := a.limited
	a.mu.Unlock()
	if reset.IsZero() {
		return a.base.RoundTrip(req)
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("X-RateLimit-Limit", "5000")
	h.Set("X-RateLimit-Remaining", "0")
	h.Set("X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
	body := `{"message":"API rate limit exceeded for user ID 1.","documentation_url":"https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting"}`
	return &http.Response{StatusCode: http.StatusForbidden, Status: "403 Forbidden", Header: h, Body: io.NopCloser(strings.NewReader(body)), Request: req}, nil
}

func (a *auditTransport) queries() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.seen...)
}

// afters are the after cursors the audit-log requests carried ("" for a
// first page).
func (a *auditTransport) afters() []string {
	var out []string
	for _, q := range a.queries() {
		out = append(out, valueOf(q, "after"))
	}
	return out
}

func valueOf(rawQuery, name string) string {
	for _, kv := range strings.Split(rawQuery, "&") {
		if k, v, _ := strings.Cut(kv, "="); k == name {
			return v
		}
	}
	return ""
}

func ev(action, repo, ago string, data map[string]any) sandbox.SeedTokenEvent {
	return sandbox.SeedTokenEvent{Action: action, Repo: repo, Ago: ago, Data: data}
}

func githubToken(value, org string, events ...sandbox.SeedTokenEvent) sandbox.SeedToken {
	return sandbox.SeedToken{Provider: "github", Value: value, Owner: "octocat", Scopes: []string{"repo", "admin:org"}, Org: org, Events: events}
}

// manyEvents are n clones of acme/api, a minute apart.
func manyEvents(n int) []sandbox.SeedTokenEvent {
	out := make([]sandbox.SeedTokenEvent, n)
	for i := range out {
		out[i] = ev("git.clone", fmt.Sprintf("acme/repo-%03d", i%7), fmt.Sprintf("%dm", n-i), map[string]any{"actor_ip": "198.51.100.7"})
	}
	return out
}

func TestTokenImpactClassifiesWhatTheTokenDid(t *testing.T) {
	t.Parallel()
	ip := map[string]any{"actor_ip": "203.0.113.9"}
	b := setupImpact(t,
		githubToken(impactPAT, "acme",
			ev("git.clone", "acme/api", "3000h", ip), // before the window
			ev("git.clone", "acme/api", "50h", ip),
			ev("git.fetch", "acme/web", "49h", ip),
			ev("git.push", "acme/api", "48h", ip),
			ev("repo.update", "acme/api", "47h", nil),
			ev("repo.access", "acme/api", "46h", map[string]any{"visibility": "public"}),
			ev("org.update_member", "", "45h", map[string]any{"user": "mallory", "permission": "admin"}),
			ev("team.add_member", "", "44h", map[string]any{"team": "acme/ops", "user": "mallory"}),
			ev("org.create_actions_secret", "", "43h", map[string]any{"name": "DEPLOY_KEY"}),
			ev("secret_scanning_alert.resolve", "acme/api", "42h", nil),
			ev("public_key.create", "", "41h", map[string]any{"title": "laptop"}),
			ev("personal_access_token.request_created", "", "40h", nil),
			ev("hook.create", "acme/api", "39h", nil),
			ev("protected_branch.destroy", "acme/api", "38h", map[string]any{"branch": "main"}),
			ev("issues.create", "acme/api", "37h", nil), // not a finding
		),
		githubToken(impactOther, "acme", ev("repo.destroy", "acme/web", "1h", nil)),
	)
	fp := leaked.Process.Remember(impactPAT)
	with := map[string]any{"credential": fp, "org": "acme", "lookback": "720h"}

	plan, err := testkit.PlanAction(t, b.act, b.stepEnv(nil, 0), with)
	require.NoError(t, err)
	require.Len(t, plan.Calls, 1)
	require.Equal(t, "GET /orgs/{org}/audit-log", plan.Calls[0].Operation)
	require.False(t, plan.Calls[0].Mutates)
	require.Contains(t, plan.Calls[0].Params["phrase"], `hashed_token:"`+sandbox.GitHubHashedToken(impactPAT)+`"`)
	require.Equal(t, "all", plan.Calls[0].Params["include"])
	require.Empty(t, b.sb.Calls(), "a plan reads nothing")

	res, err := testkit.RunAction(t, b.act, b.stepEnv(nil, 0), with)
	require.NoError(t, err)
	require.Equal(t, actions.Done, res.Outcome, res.Message)
	out := res.Outputs
	require.Equal(t, 14, out["events"], "the event before the window and the other token's are not counted")
	require.Equal(t, fp, out["credential"])
	require.Equal(t, sandbox.GitHubHashedToken(impactPAT), out["hashed_token"])
	require.Equal(t, []string{"acme/api", "acme/web"}, out["cloned"])
	require.Equal(t, []string{"acme/api"}, out["pushed"])
	require.Equal(t, []string{"acme/api", "acme/web"}, out["repositories"])
	require.Equal(t, map[string]int{"203.0.113.9": 3}, out["by_source_ip"])
	require.Equal(t, map[string]int{"git/2.47.0": 14}, out["by_user_agent"])
	require.Equal(t, map[string]int{"acme": 14}, out["by_org"])
	require.Equal(t, 1, out["by_action"].(map[string]int)["git.push"])
	require.Equal(t, map[string]int{"persistence": 2, "permissions": 2, "secrets": 2, "code_change": 1, "settings_change": 4, "data_access": 2}, out["finding_counts"])
	require.Empty(t, out["orgs_failed"])

	findings := out["findings"].([]map[string]any)
	require.Len(t, findings, 13)
	var order []string
	for _, f := range findings {
		order = append(order, fmt.Sprintf("%s %s %s", f["severity"], f["category"], f["event"]))
	}
	require.Equal(t, []string{
		"critical persistence public_key.create",
		"critical permissions org.update_member",
		"critical settings_change repo.access",
		"critical settings_change protected_branch.destroy",
		"high persistence personal_access_token.request_created",
		"high permissions team.add_member",
		"high secrets org.create_actions_secret",
		"high secrets secret_scanning_alert.resolve",
		"high code_change git.push",
		"high settings_change hook.create",
		"medium settings_change repo.update",
		"medium data_access git.clone",
		"medium data_access git.fetch",
	}, order)
	require.Equal(t, "org.update_member in acme: user mallory, permission admin", findings[1]["what"])
	require.Equal(t, "pushed to acme/api", findings[8]["what"])
	require.Equal(t, "203.0.113.9", findings[8]["source_ip"])
	require.Regexp(t, `^14 event\(s\) of sha256:\w+ in the audit log of acme, first \S+, last \S+; 2 repositor\(ies\) cloned; 1 pushed to; findings: persistence 2, permissions 2, secrets 2, code_change 1, settings_change 4, data_access 2$`, res.Message)
	require.Equal(t, 1, b.sb.Count("GetAuditLog"), "one page; the padded hash found the events")
	b.noToken(t, plan, res, err)
}

func TestTokenImpactPagesThroughTheLog(t *testing.T) {
	t.Parallel()
	b := setupImpact(t, githubToken(impactFine, "acme", manyEvents(250)...))
	fp := leaked.Process.Remember(impactFine)
	res, err := testkit.RunAction(t, b.act, b.stepEnv(nil, 0), map[string]any{"credential": fp, "org": []any{"acme"}})
	require.NoError(t, err)
	require.Equal(t, 250, res.Outputs["events"])
	require.Equal(t, 3, b.sb.Count("GetAuditLog"))
	afters := b.tr.afters()
	require.Len(t, afters, 3)
	require.Empty(t, afters[0])
	require.NotEmpty(t, afters[1])
	require.NotEqual(t, afters[1], afters[2])
	require.Equal(t, "100", valueOf(b.tr.queries()[0], "per_page"))
	require.Len(t, res.Outputs["findings"], 200, "at most 200 findings")
	require.Equal(t, 250, res.Outputs["finding_counts"].(map[string]int)["data_access"])
	require.Len(t, b.states, 3, "a checkpoint a page")

	// Newest first: the page that reaches past the lookback is the last.
	res, err = testkit.RunAction(t, b.act, b.env("run_2"), map[string]any{"credential": fp, "org": "acme", "lookback": "120m"})
	require.NoError(t, err)
	require.InDelta(t, 120, res.Outputs["events"], 1)
	require.Equal(t, 3+2, b.sb.Count("GetAuditLog"))
	require.Contains(t, valueOf(b.tr.queries()[3], "phrase"), "created%3A%3E%3D")
	b.noToken(t, res)
}

// A step that dies after two pages goes on, in its next attempt, from the
// third: no page is read twice, and the outputs are those of a search
// read in one go.
func TestTokenImpactResumesFromTheCheckpoint(t *testing.T) {
	t.Parallel()
	b := setupImpact(t, githubToken(impactFine, "acme", append(manyEvents(22), ev("org.update_member", "", "30s", map[string]any{"user": "eve", "permission": "admin"}))...))
	fp := leaked.Process.Remember(impactFine)
	with := map[string]any{"credential": fp, "org": "acme", "per_page": 5}

	_, err := testkit.RunAction(t, b.act, b.stepEnv(nil, 2), with)
	require.ErrorContains(t, err, "checkpoint: the step belongs to another attempt")
	require.Equal(t, 3, b.sb.Count("GetAuditLog"), "the third page was read, its checkpoint refused")
	saved := b.lastState()
	require.Contains(t, string(saved), `"pages":2`)

	res, err := testkit.RunAction(t, b.act, b.stepEnv(saved, 0), with)
	require.NoError(t, err)
	require.Equal(t, actions.Done, res.Outcome)
	afters := b.tr.afters()
	require.Len(t, afters, 3+3, "pages 3, 4 and 5 only")
	require.Equal(t, afters[2], afters[3], "the resumed attempt starts at the cursor of the page whose checkpoint failed")
	require.NotContains(t, afters[3:], "", "no first page again")

	fresh, err := testkit.RunAction(t, b.act, b.env("run_2"), with)
	require.NoError(t, err)
	require.Equal(t, 23, res.Outputs["events"])
	require.Equal(t, fresh.Outputs["findings"], res.Outputs["findings"])
	require.Equal(t, fresh.Outputs["by_action"], res.Outputs["by_action"])
	require.Equal(t, fresh.Outputs["first_used"], res.Outputs["first_used"])
	require.Equal(t, "critical", res.Outputs["findings"].([]map[string]any)[0]["severity"])
	b.noToken(t, res, fresh)

	// A checkpoint of other parameters is not used.
	before := b.sb.Count("GetAuditLog")
	_, err = testkit.RunAction(t, b.act, b.stepEnv(saved, 0), map[string]any{"credential": fp, "org": "acme", "per_page": 10})
	require.NoError(t, err)
	require.Equal(t, before+3, b.sb.Count("GetAuditLog"))
	require.Contains(t, b.log.String(), "saved for other parameters")
}

func TestTokenImpactRateLimitIsRetryableAfterTheReset(t *testing.T) {
	t.Parallel()
	b := setupImpact(t, githubToken(impactFine, "acme", manyEvents(12)...))
	fp := leaked.Process.Remember(impactFine)
	with := map[string]any{"credential": fp, "org": "acme", "per_page": 5}

	// GitHub's secondary limit, as the sandbox's throttle fault answers:
	// 429 with Retry-After.
	b.sb.SetFault("github", sandbox.Fault{ThrottleRate: 1})
	_, err := testkit.RunAction(t, b.act, b.stepEnv(nil, 0), with)
	require.Error(t, err)
	require.Equal(t, actions.KindRetryable, actions.KindOf(err))
	var rl *AuditRateLimitError
	require.ErrorAs(t, err, &rl)
	require.True(t, rl.Secondary)
	require.WithinDuration(t, time.Now().Add(time.Second), rl.Reset, 2*time.Second)
	api, ok := actions.APIErrorOf(err)
	require.True(t, ok)
	require.Equal(t, "http_429", api.Code)
	b.sb.SetFault("github", sandbox.Fault{})

	// The primary limit, spent after the first page.
	reset := time.Now().Add(20 * time.Minute).Truncate(time.Second)
	env := b.stepEnv(nil, 0)
	env.Checkpoint = func(_ context.Context, state []byte) error {
		b.mu.Lock()
		b.states = append(b.states, state)
		b.mu.Unlock()
		b.tr.mu.Lock()
		b.tr.limited = reset
		b.tr.mu.Unlock()
		return nil
	}
	_, err = testkit.RunAction(t, b.act, env, with)
	require.Equal(t, actions.KindRetryable, actions.KindOf(err), "%v", err)
	require.ErrorAs(t, err, &rl)
	require.False(t, rl.Secondary)
	require.True(t, reset.Equal(rl.Reset), "%s", rl.Reset)
	require.InDelta(t, 20*time.Minute, rl.RetryAfter(), float64(5*time.Second))
	require.Contains(t, err.Error(), "wait until "+reset.UTC().Format(time.RFC3339))

	// After the reset, the next attempt goes on from the second page.
	b.tr.mu.Lock()
	b.tr.limited = time.Time{}
	b.tr.mu.Unlock()
	// go-github refuses requests until the reset it was told; a new
	// client stands for the attempt after it.
	n := len(b.tr.afters())
	later := b.actions(t, Options{APIURL: b.url, Token: token, Transport: b.tr})["github.token_impact"]
	res, err := testkit.RunAction(t, later, b.stepEnv(b.lastState(), 0), with)
	require.NoError(t, err)
	require.Equal(t, 12, res.Outputs["events"])
	require.NotEmpty(t, b.tr.afters()[n], "resumed at the second page")
	b.noToken(t, res, err)
}

func TestTokenImpactWithoutTheTokenItself(t *testing.T) {
	t.Parallel()
	b := setupImpact(t, githubToken(impactUnseen, "acme", ev("git.clone", "acme/api", "2h", nil), ev("org.remove_member", "", "1h", map[string]any{"user": "alice"})))
	fp := alert.Fingerprint(impactUnseen)

	_, err := testkit.RunAction(t, b.act, b.stepEnv(nil, 0), map[string]any{"credential": fp, "org": "acme"})
	require.Equal(t, actions.KindPermanent, actions.KindOf(err))
	require.ErrorContains(t, err, "this process has not seen the token")
	require.ErrorContains(t, err, "Give the step hashed_token")
	require.Zero(t, b.sb.Count("GetAuditLog"))

	// Its hash is enough, padded or not.
	for _, h := range []string{sandbox.GitHubHashedToken(impactUnseen), strings.TrimRight(sandbox.GitHubHashedToken(impactUnseen), "=")} {
		res, err := testkit.RunAction(t, b.act, b.env("run_1"), map[string]any{"credential": fp, "org": "acme", "hashed_token": h})
		require.NoError(t, err)
		require.Equal(t, 2, res.Outputs["events"])
		require.Equal(t, map[string]int{"data_access": 1, "permissions": 1}, res.Outputs["finding_counts"])
		b.noToken(t, res)
	}

	// The token itself where its hash belongs is refused, and not echoed.
	_, err = b.act.Decode(map[string]any{"credential": fp, "org": "acme", "hashed_token": impactUnseen})
	require.ErrorContains(t, err, "hashed_token holds a token, not its hash")
	_, err = b.act.Decode(map[string]any{"credential": impactUnseen, "org": "acme"})
	require.ErrorContains(t, err, "not a token fingerprint")
	planted.RequireNone(t, "the refusals", err)
	_, err = b.act.Decode(map[string]any{"credential": fp, "org": "acme", "hashed_token": "bm90IGEgaGFzaA=="})
	require.ErrorContains(t, err, "not a base64 SHA-256")
	_, err = b.act.Decode(map[string]any{"credential": fp, "org": "acme", "per_page": 101})
	require.ErrorContains(t, err, "1 to 100")
}

func TestTokenImpactFindsNothingAndSaysWhere(t *testing.T) {
	t.Parallel()
	b := setupImpact(t, githubToken(impactPAT, "acme", ev("git.clone", "acme/api", "1h", nil)))
	fp := leaked.Process.Remember(impactPAT)
	res, err := testkit.RunAction(t, b.act, b.stepEnv(nil, 0), map[string]any{"credential": fp, "org": "acme-labs", "lookback": "24h"})
	require.NoError(t, err)
	require.Equal(t, 0, res.Outputs["events"])
	require.Contains(t, res.Message, "no event of "+fp+" in the audit log of acme-labs since ")
	phrases := b.tr.queries()
	require.Len(t, phrases, 2, "the padded hash, then the unpadded")
	require.NotEqual(t, valueOf(phrases[0], "phrase"), valueOf(phrases[1], "phrase"))

	// Credentials GitHub refuses fail every organisation: permanent.
	bad := b.actions(t, Options{APIURL: b.url, Token: "not-the-owner"})["github.token_impact"]
	_, err = testkit.RunAction(t, bad, b.env("run_2"), map[string]any{"credential": fp, "org": []any{"acme", "acme-labs"}})
	require.Equal(t, actions.KindPermanent, actions.KindOf(err), "%v", err)
	require.ErrorContains(t, err, "no audit log could be read: acme: ")
	b.noToken(t, res, err)
}

// The logs say what was read, never the token.
func TestTokenImpactLogs(t *testing.T) {
	t.Parallel()
	b := setupImpact(t, githubToken(impactPAT, "acme", ev("git.push", "acme/api", "1h", nil)))
	fp := leaked.Process.Remember(impactPAT)
	_, err := testkit.RunAction(t, b.act, b.stepEnv(nil, 0), map[string]any{"credential": fp, "org": "acme"})
	require.NoError(t, err)
	require.Contains(t, b.log.String(), "token impact: audit log read")
	b.noToken(t)
}
