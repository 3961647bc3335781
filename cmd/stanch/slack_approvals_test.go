package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
	slackact "github.com/stanchhq/stanch/actions/slack"
	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/internal/planted"
	"github.com/stanchhq/stanch/internal/testkit"
	"github.com/stanchhq/stanch/notify"
	"github.com/stanchhq/stanch/playbooks"
	"github.com/stanchhq/stanch/runner"
	"github.com/stanchhq/stanch/sandbox"
	"github.com/stanchhq/stanch/slack"
	"github.com/stanchhq/stanch/triggers"
)

const (
	botToken      = "xoxb-sandbox-stanch-tests"
	signingSecret = "8f742231b10e8888abcd99yyyzzz85a5"
	channelID     = "C0SECINCIDENTS"
	alice         = "U0ALICE"   // in the security group: an approver
	mallory       = "U0MALLORY" // not an approver
	securityGroup = "S0SECURITY"
)

const slackBenchSeed = `
accounts:
  - id: "111122223333"
    users: [` + sandbox.ResponderSeedUser + `]
slack:
  token: ` + botToken + `
  channels:
    - {id: ` + channelID + `, name: sec-incidents}
    - {id: C0SECLEADS, name: security-leads}
  users:
    - {id: ` + alice + `, name: alice, real_name: Alice Liddell, display_name: Alice Smith}
    - {id: ` + mallory + `, name: mallory, real_name: Mallory}
  usergroups:
    - {id: ` + securityGroup + `, handle: security, users: [` + alice + `]}
`

const tellAndAsk = `
name: tell-and-ask
steps:
  - id: contain
    action: test.mark
    with: {name: contain}
  - id: tell
    action: slack.notify
    with:
      channel: "#sec-incidents"
  - id: destroy
    action: test.mark
    approval:
      approvers: [` + securityGroup + `, security-oncall]
      channel: "#sec-incidents"
      message: "Destroy ${{ alert.credential.id }}?"
    with: {name: destroy}
`

type slackBench struct {
	sb     *sandbox.Sandbox
	r      *runner.Runner
	hook   string
	world  *testkit.World
	tokens *slack.Tokens
	pb     *playbooks.Playbook
	// logs holds what the runner and the interactions endpoint logged.
	logs *syncBuffer
}

func setupSlack(t *testing.T) *slackBench { return setupSlackWith(t, tellAndAsk) }

func setupSlackWith(t *testing.T, playbook string) *slackBench {
	t.Helper()
	ctx := context.Background()
	sb := testkit.Sandbox(t, testkit.Seed(t, slackBenchSeed))
	client := slack.NewClient(slack.Options{Token: botToken, APIURL: sb.SlackAPI()})
	tokens, err := slack.NewTokens([]byte("approval-token-key-for-tests-0001"))
	require.NoError(t, err)
	// test.mark leaks a secret into the message of every step it does: it
	// must never reach Slack.
	w := testkit.NewWorld()
	w.Leak = planted.Random
	reg, err := actions.NewRegistry(append(slackact.Actions(client, slackact.Options{}), w.Actions()...)...)
	require.NoError(t, err)
	pb, err := playbooks.Parse("tell-and-ask.yaml", []byte(playbook), reg)
	require.NoError(t, err)

	db, err := runner.OpenDatabase(ctx, testkit.SQLiteURL(t))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(testWriter{t}, logs), &slog.HandlerOptions{Level: slog.LevelInfo}))
	n := notify.NewSlack(client, tokens, log)
	r, err := runner.New(ctx, runner.Config{DB: db, Registry: reg, Notifier: n, Logger: log})
	require.NoError(t, err)
	require.NoError(t, r.Start(ctx))
	t.Cleanup(func() { _ = r.Stop(context.Background()) })

	h := triggers.NewSlackInteractions(signingSecret, tokens, runDecider{r}, client, log)
	hook := httptest.NewServer(h)
	t.Cleanup(hook.Close)
	return &slackBench{sb: sb.Sandbox, r: r, hook: hook.URL, world: w, tokens: tokens, pb: pb, logs: logs}
}

// testWriter sends logs to the test's output, shown when it fails.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func (b *slackBench) submit(t *testing.T) runner.Run {
	t.Helper()
	a := alert.Alert{Source: alert.SourceManual, Credential: alert.Credential{Provider: "aws", ID: "AKIAIOSFODNN7EXAMPLE", Account: "111122223333"}, Title: "test leak"}
	a.Normalise(time.Now())
	sub, err := b.r.Submit(context.Background(), a, []*playbooks.Playbook{b.pb})
	require.NoError(t, err)
	require.Len(t, sub.Started, 1)
	return sub.Started[0]
}

func (b *slackBench) waitRun(t *testing.T, id string, statuses ...runner.RunStatus) runner.Run {
	t.Helper()
	var run runner.Run
	require.Eventually(t, func() bool {
		var err error
		run, err = b.r.Store().Run(context.Background(), id)
		require.NoError(t, err)
		for _, s := range statuses {
			if run.Status == s {
				return true
			}
		}
		return false
	}, 20*time.Second, 10*time.Millisecond, "run never reached %v", statuses)
	return run
}

// topLevel returns the channel's messages that are not thread replies.
func (b *slackBench) topLevel() []sandbox.SlackMessage {
	var out []sandbox.SlackMessage
	for _, m := range b.sb.SlackMessages(channelID) {
		if m.ThreadTS == "" || m.ThreadTS == m.TS {
			out = append(out, m)
		}
	}
	return out
}

// approvalMessage waits for the approval message and returns it with the
// values of its Approve and Deny buttons.
func (b *slackBench) approvalMessage(t *testing.T) (msg sandbox.SlackMessage, approve, deny string) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, m := range b.sb.SlackMessages(channelID) {
			if strings.Contains(string(m.Blocks), slack.ActionApprove) {
				msg = m
				return true
			}
		}
		return false
	}, 10*time.Second, 10*time.Millisecond, "no approval message with buttons")
	approve, deny = msg.ButtonValue(slack.ActionApprove), msg.ButtonValue(slack.ActionDeny)
	require.NotEmpty(t, approve)
	require.NotEmpty(t, deny)
	return msg, approve, deny
}

func (b *slackBench) click(user, action, value, ts string, at time.Time) sandbox.SlackClick {
	return sandbox.SlackClick{URL: b.hook, SigningSecret: signingSecret, User: user, UserName: strings.ToLower(strings.TrimPrefix(user, "U0")),
		Channel: channelID, MessageTS: ts, ActionID: action, BlockID: "stanch_approval", Value: value, At: at}
}

func sendClick(t *testing.T, req *http.Request) int {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	return res.StatusCode
}

func TestSlackApprovalsEndToEnd(t *testing.T) {
	b := setupSlack(t)
	ctx := context.Background()
	run := b.submit(t)
	b.waitRun(t, run.ID, runner.RunWaitingApproval)
	msg, approve, deny := b.approvalMessage(t)

	// Forged, stale and unsigned clicks are refused before anything is read.
	forged := b.click(alice, slack.ActionApprove, approve, msg.TS, time.Time{})
	forged.SigningSecret = "not the signing secret"
	req, err := forged.Request(ctx)
	require.NoError(t, err)
	require.Equal(t, http.StatusUnauthorized, sendClick(t, req))
	req, err = b.click(alice, slack.ActionApprove, approve, msg.TS, time.Now().Add(-6*time.Minute)).Request(ctx)
	require.NoError(t, err)
	require.Equal(t, http.StatusUnauthorized, sendClick(t, req), "a timestamp outside the five-minute window")
	req, err = b.click(alice, slack.ActionApprove, approve, msg.TS, time.Time{}).Request(ctx)
	require.NoError(t, err)
	req.Header.Del("X-Slack-Signature")
	require.Equal(t, http.StatusUnauthorized, sendClick(t, req))

	// Someone who is not an approver: refused privately, journalled.
	req, err = b.click(mallory, slack.ActionApprove, approve, msg.TS, time.Time{}).Request(ctx)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, sendClick(t, req))
	eph := b.sb.SlackEphemerals()
	require.Len(t, eph, 1)
	require.Equal(t, mallory, eph[0].User)
	require.Contains(t, eph[0].Text, "not an approver")
	require.Equal(t, runner.RunWaitingApproval, b.waitRun(t, run.ID, runner.RunWaitingApproval).Status)
	require.Zero(t, b.world.Calls("destroy"))

	// A made-up button value, correctly signed by Slack, decides nothing.
	req, err = b.click(alice, slack.ActionApprove, strings.Replace(approve, "v1.", "v1.x", 1), msg.TS, time.Time{}).Request(ctx)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, sendClick(t, req))

	// Alice is in the security group: her click resumes the run.
	click, err := b.click(alice, slack.ActionApprove, approve, msg.TS, time.Time{}).Request(ctx)
	require.NoError(t, err)
	replay := click.Clone(ctx)
	body, err := click.GetBody()
	require.NoError(t, err)
	replay.Body = body
	require.Equal(t, http.StatusOK, sendClick(t, click))
	run = b.waitRun(t, run.ID, runner.RunSucceeded, runner.RunFailed, runner.RunCancelled)
	require.Equal(t, runner.RunSucceeded, run.Status)
	require.Equal(t, 1, b.world.Calls("destroy"))

	// The same request again: refused, nothing happens.
	require.Equal(t, http.StatusUnauthorized, sendClick(t, replay))
	// A new click after the decision changes nothing and says who decided.
	req, err = b.click(alice, slack.ActionDeny, deny, msg.TS, time.Time{}).Request(ctx)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, sendClick(t, req))
	require.Eventually(t, func() bool { return len(b.sb.SlackEphemerals()) == 3 }, 5*time.Second, 10*time.Millisecond)
	require.Contains(t, b.sb.SlackEphemerals()[2].Text, "Already approved by <@"+alice+">")
	require.Equal(t, 1, b.world.Calls("destroy"))

	a, err := b.r.Store().Approval(ctx, run.ID, "destroy")
	require.NoError(t, err)
	require.Equal(t, alice, a.DecidedBy)
	require.Equal(t, "Alice Smith", a.DecidedByName, "the display name Slack shows for her")
	require.Equal(t, "slack", a.Via)
	journal, err := b.r.Store().Journal(ctx, run.ID)
	require.NoError(t, err)
	var approvals []string
	for _, e := range journal {
		if strings.HasPrefix(e.Event, "approval_") && e.Event != "approval_requested" {
			approvals = append(approvals, e.Event+" "+e.Detail)
		}
	}
	require.Equal(t, []string{"approval_refused " + mallory + " is not an approver (via slack)", "approval_approved by Alice Smith (" + alice + ") via slack"}, approvals)

	// The messages catch up: the approval shows who decided, without
	// buttons; the incident message shows the run succeeded. One of each.
	require.Eventually(t, func() bool {
		top := b.topLevel()
		if len(top) != 2 {
			return false
		}
		incident, approval := top[0], top[1]
		return strings.HasPrefix(approval.Text, "✋ Approval needed: destroy (test.mark) — Approved by <@"+alice+"> at ") &&
			!strings.Contains(string(approval.Blocks), slack.ActionApprove) && strings.HasSuffix(incident.Text, "(succeeded)")
	}, 10*time.Second, 20*time.Millisecond, "the messages never caught up")
	require.Equal(t, 2, b.sb.EffectiveCount("chat.postMessage")-len(b.replies()), "two top-level posts: the incident and the approval")
	require.NotEmpty(t, b.replies(), "step details go to the incident's thread")
	for _, m := range b.sb.SlackMessages(channelID) {
		planted.RequireNone(t, "a Slack message", m.Text, m.Blocks)
	}
	for _, m := range b.sb.SlackEphemerals() {
		planted.RequireNone(t, "a Slack ephemeral message", m.Text)
	}
}

func (b *slackBench) replies() []sandbox.SlackMessage {
	var out []sandbox.SlackMessage
	for _, m := range b.sb.SlackMessages(channelID) {
		if m.ThreadTS != "" && m.ThreadTS != m.TS {
			out = append(out, m)
		}
	}
	return out
}

const escalating = `
name: tell-and-escalate
steps:
  - id: tell
    action: slack.notify
    with:
      channel: "#sec-incidents"
  - id: destroy
    action: test.mark
    approval:
      approvers: [` + mallory + `]
      channel: "#sec-incidents"
      timeout: 1s
      on_timeout: escalate
      escalate:
        channel: "#security-leads"
        approvers: [` + securityGroup + `]
        timeout: 1h
    with: {name: destroy}
`

// Nobody decides in time: the request goes to the escalation channel with
// its own buttons, the first message says so, and a member of the added
// group decides there.
func TestSlackApprovalEscalates(t *testing.T) {
	b := setupSlackWith(t, escalating)
	ctx := context.Background()
	run := b.submit(t)
	var second sandbox.SlackMessage
	require.Eventually(t, func() bool {
		for _, m := range b.sb.SlackMessages("C0SECLEADS") {
			if strings.Contains(string(m.Blocks), slack.ActionApprove) {
				second = m
				return true
			}
		}
		return false
	}, 15*time.Second, 20*time.Millisecond, "no escalated approval message")
	require.True(t, strings.HasPrefix(second.Text, "⏫ Escalated: Approval needed: destroy"), second.Text)
	require.Eventually(t, func() bool {
		for _, m := range b.topLevel() {
			if strings.Contains(m.Text, "escalated to #security-leads") && !strings.Contains(string(m.Blocks), slack.ActionApprove) {
				return true
			}
		}
		return false
	}, 10*time.Second, 20*time.Millisecond, "the first request does not say it was escalated")

	approve := second.ButtonValue(slack.ActionApprove)
	require.NotEmpty(t, approve)
	click := b.click(alice, slack.ActionApprove, approve, second.TS, time.Time{})
	click.Channel = "C0SECLEADS"
	req, err := click.Request(ctx)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, sendClick(t, req))
	run = b.waitRun(t, run.ID, runner.RunSucceeded, runner.RunFailed, runner.RunCancelled)
	require.Equal(t, runner.RunSucceeded, run.Status)
	require.Equal(t, 1, b.world.Calls("destroy"))
}

// What people do with a run shows in Slack: a cancel takes the buttons
// away and says why, a retry asks again in a new message, and a closing
// note reaches the incident message.
func TestSlackShowsCancelRetryAndClose(t *testing.T) {
	b := setupSlack(t)
	ctx := context.Background()
	run := b.submit(t)
	b.waitRun(t, run.ID, runner.RunWaitingApproval)
	first, approve, _ := b.approvalMessage(t)

	_, err := b.r.Cancel(ctx, run.ID, "bob", "handled by hand")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		var approval, incident sandbox.SlackMessage
		for _, m := range b.topLevel() {
			switch {
			case m.TS == first.TS:
				approval = m
			case strings.HasPrefix(m.Text, "🚨") || strings.Contains(m.Text, "AKIAIOSFODNN7EXAMPLE"):
				incident = m
			}
		}
		return strings.Contains(approval.Text, "The run ended (cancelled) before a decision") && !strings.Contains(string(approval.Blocks), slack.ActionApprove) &&
			strings.Contains(string(incident.Blocks), "cancelled by bob: handled by hand")
	}, 10*time.Second, 20*time.Millisecond, "Slack never showed the cancel")

	// The old button decides nothing now.
	req, err := b.click(alice, slack.ActionApprove, approve, first.TS, time.Time{}).Request(ctx)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, sendClick(t, req))
	require.Equal(t, runner.RunCancelled, b.waitRun(t, run.ID, runner.RunCancelled).Status)
	require.Zero(t, b.world.Calls("destroy"))

	_, err = b.r.Retry(ctx, run.ID, "", "carol")
	require.NoError(t, err)
	b.waitRun(t, run.ID, runner.RunWaitingApproval)
	var again sandbox.SlackMessage
	require.Eventually(t, func() bool {
		for _, m := range b.topLevel() {
			if m.TS != first.TS && strings.Contains(string(m.Blocks), slack.ActionApprove) {
				again = m
				return true
			}
		}
		return false
	}, 10*time.Second, 20*time.Millisecond, "the retried step was not asked again in a new message")
	require.Equal(t, "approval/destroy/g1/0", again.Metadata.EventPayload["key"])
	req, err = b.click(alice, slack.ActionApprove, again.ButtonValue(slack.ActionApprove), again.TS, time.Time{}).Request(ctx)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, sendClick(t, req))
	require.Equal(t, runner.RunSucceeded, b.waitRun(t, run.ID, runner.RunSucceeded, runner.RunFailed, runner.RunCancelled).Status)
	require.Equal(t, 1, b.world.Calls("destroy"))

	_, err = b.r.Close(ctx, run.ID, "carol", "rotated and reviewed")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		for _, m := range b.topLevel() {
			if strings.Contains(string(m.Blocks), "closed by carol: rotated and reviewed") {
				return true
			}
		}
		return false
	}, 10*time.Second, 20*time.Millisecond, "the incident message never showed the closing note")
}
