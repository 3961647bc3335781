package slack

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	slackapi "github.com/slack-go/slack"
	"github.com/slack-go/slack/slacktest"
	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/alert"
)

// planted is a secret that must never reach Slack.
const planted = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYPLANTEDKEY"

func report() actions.Report {
	return actions.Report{
		RunID: "run_01TEST", Playbook: "aws-key-leaked", Status: "running", StartedAt: time.Now().Add(-time.Minute),
		Alert: alert.Alert{Source: "github", Kind: alert.KindCredentialExposed, Severity: "critical", ReceivedAt: time.Now(),
			Credential: alert.Credential{Provider: "aws", Kind: alert.CredentialAccessKey, ID: "AKIAIOSFODNN7EXAMPLE", Account: "111122223333"},
			Location:   alert.Location{Repo: "acme/payments", Path: "config/prod.env", Line: 12, URL: "https://github.com/acme/payments/security/secret-scanning/7"}},
		Steps: []actions.StepReport{
			{ID: "identify", Action: "aws.identify_key", Status: "succeeded", Outcome: "done", Message: "owned by ci-bot", Outputs: map[string]any{"user_name": "ci-bot", "account": "111122223333"}},
			{ID: "deactivate", Action: "aws.deactivate_key", Status: "succeeded", Outcome: "done", Message: "AKIAIOSFODNN7EXAMPLE deactivated; secret was " + planted},
			{ID: "tell", Action: "slack.notify", Status: "running"},
			{ID: "impact", Action: "aws.cloudtrail_impact", Status: "succeeded", Outputs: map[string]any{"events": 128, "regions": []string{"us-east-1", "us-west-2"},
				"finding_counts": map[string]int{"persistence": 3}, "findings": []map[string]any{{"event": "CreateAccessKey", "category": "persistence", "region": "us-east-1", "time": "2026-11-28T10:00:00Z", "source_ip": "198.51.100.7"}},
				"derived_credentials": []map[string]any{{"access_key_id": "AKIABACKDOORKEY00001", "kind": "access_key", "created_by_event": "CreateAccessKey"}}}},
			{ID: "delete", Action: "aws.delete_key", Status: "pending"},
		},
	}
}

// recorder is a chat.postMessage for slack-go's slacktest server that keeps
// what was posted, as slacktest itself only queues it for its RTM feed.
type recorder struct {
	mu      sync.Mutex
	posts   []url.Values
	limited int // answer this many posts with 429 first
}

func (rc *recorder) postMessage(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.limited > 0 {
		rc.limited--
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(`{"ok":false,"error":"ratelimited"}`))
		return
	}
	rc.posts = append(rc.posts, r.PostForm)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": "C0SECINCIDENTS", "ts": fmt.Sprintf("1764300000.%06d", len(rc.posts))})
}

// history answers conversations.history with what was posted, metadata
// included, as Slack does with include_all_metadata.
func (rc *recorder) history(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var msgs []map[string]any
	for i, p := range rc.posts {
		var md map[string]any
		_ = json.Unmarshal([]byte(p.Get("metadata")), &md)
		msgs = append(msgs, map[string]any{"type": "message", "ts": fmt.Sprintf("1764300000.%06d", i+1), "text": p.Get("text"), "metadata": md})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "messages": msgs, "has_more": false})
}

func slacktestClient(t *testing.T, rc *recorder) *Client {
	t.Helper()
	srv := slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/chat.postMessage", rc.postMessage)
		c.Handle("/conversations.history", rc.history)
		c.Handle("/chat.update", func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(`{"ok":true,"channel":"C0SECINCIDENTS","ts":"1764300000.000001"}`))
		})
		c.Handle("/conversations.list", func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(`{"ok":true,"channels":[{"id":"C0SECINCIDENTS","name":"sec-incidents"}],"response_metadata":{"next_cursor":""}}`))
		})
	})
	srv.Start()
	t.Cleanup(srv.Stop)
	return NewClient(Options{Token: "xoxb-test", APIURL: srv.GetAPIURL()})
}

func doNotify(t *testing.T, c *Client, attempt int) actions.Result {
	t.Helper()
	a := Actions(c)[0]
	p, err := a.Decode(map[string]any{"channel": "#sec-incidents"})
	require.NoError(t, err)
	env := actions.Env{RunID: "run_01TEST", StepID: "tell", Attempt: attempt, Report: func(context.Context) (actions.Report, error) { return report(), nil }}
	res, err := a.Do(context.Background(), env, p)
	require.NoError(t, err)
	return res
}

// The posting path against slack-go's own test server: one message, with
// the run in its metadata, the incident in its blocks, no secret anywhere.
func TestNotifyPostsAgainstSlacktest(t *testing.T) {
	rc := &recorder{}
	c := slacktestClient(t, rc)
	res := doNotify(t, c, 1)
	require.Equal(t, actions.Done, res.Outcome)
	require.Len(t, rc.posts, 1)
	post := rc.posts[0]
	require.Equal(t, "#sec-incidents", post.Get("channel"))
	require.Equal(t, "1764300000.000001", res.Outputs["ts"])
	require.Equal(t, "C0SECINCIDENTS", res.Outputs["channel"])

	var md slackapi.SlackMetadata
	require.NoError(t, json.Unmarshal([]byte(post.Get("metadata")), &md))
	require.Equal(t, metadataType, md.EventType)
	require.Equal(t, "run_01TEST", md.EventPayload["run_id"])
	require.Equal(t, "notify/tell", md.EventPayload["key"])

	blocks := post.Get("blocks")
	for _, want := range []string{"AKIAIOSFODNN7EXAMPLE", "ci-bot", "acme/payments/config/prod.env:12", "128 event(s) in 2 region(s)", "AKIABACKDOORKEY00001",
		"✅ *deactivate*", "⚪ *delete*", "Findings: persistence 3", "[REDACTED]"} {
		require.Contains(t, blocks, want)
	}
	require.NotContains(t, blocks, planted)
	require.NotContains(t, post.Get("text"), planted)
	var parsed slackapi.Blocks
	require.NoError(t, json.Unmarshal([]byte(blocks), &parsed), "the blocks are valid Block Kit JSON")
	require.NotEmpty(t, parsed.BlockSet)
}

// A second attempt (the first died after posting) finds the message by its
// metadata and updates it instead of posting again.
func TestNotifyRetryFindsTheFirstPost(t *testing.T) {
	rc := &recorder{}
	c := slacktestClient(t, rc)
	doNotify(t, c, 1)
	res := doNotify(t, c, 2)
	require.Equal(t, actions.Already, res.Outcome)
	require.Len(t, rc.posts, 1, "exactly one message")
	require.Equal(t, "1764300000.000001", res.Outputs["ts"])
}

// A 429 is waited out for its Retry-After, then the post goes through.
func TestNotifyHonoursRetryAfter(t *testing.T) {
	rc := &recorder{limited: 1}
	c := slacktestClient(t, rc)
	start := time.Now()
	res := doNotify(t, c, 1)
	require.Equal(t, actions.Done, res.Outcome)
	require.Len(t, rc.posts, 1)
	require.GreaterOrEqual(t, time.Since(start), time.Second, "waited for Retry-After")

	// A Retry-After longer than the client waits in place is handed back,
	// so the caller can sleep without holding a worker.
	rc.limited = 1
	c.opts.MaxRetryAfter = 500 * time.Millisecond
	_, _, err := c.Post(context.Background(), "run_01TEST", "x", Message{Channel: "#sec-incidents", Text: "x"})
	var rl *RateLimited
	require.ErrorAs(t, err, &rl)
	require.Equal(t, time.Second, rl.RetryAfter())
}

func TestNotifyWithoutSlackDoesNothing(t *testing.T) {
	a := Actions(NewClient(Options{}))[0]
	p, err := a.Decode(map[string]any{"channel": "#sec-incidents"})
	require.NoError(t, err)
	res, err := a.Do(context.Background(), actions.Env{RunID: "r", StepID: "tell", Attempt: 1}, p)
	require.NoError(t, err, "a missing chat token must not stop the response")
	require.Equal(t, actions.NoOp, res.Outcome)
	require.Contains(t, res.Message, "STANCH_SLACK_TOKEN")
}

func TestApprovalButtonsCarryValidTokens(t *testing.T) {
	tokens, err := NewTokens([]byte("0123456789abcdef0123"))
	require.NoError(t, err)
	rep := report()
	step := rep.Steps[4]
	step.Approval = &actions.ApprovalReport{Approvers: []string{"U0ALICE", "S0SECURITY", "security-oncall"}, Message: "Delete it?", Deadline: time.Now().Add(time.Hour), OnTimeout: "deny"}
	m := Approval(rep, step, tokens, false)
	text := PlainText(m)
	require.Contains(t, text, "[ Approve ] [ Deny ]")
	require.Contains(t, text, "@U0ALICE, @S0SECURITY, security-oncall")

	var values []string
	for _, b := range m.Blocks {
		if ab, ok := b.(*slackapi.ActionBlock); ok {
			for _, e := range ab.Elements.ElementSet {
				btn := e.(*slackapi.ButtonBlockElement)
				require.NotNil(t, btn.Confirm, "a confirm dialog guards each button")
				values = append(values, btn.Value)
			}
		}
	}
	require.Len(t, values, 2)
	v, err := tokens.Verify(values[0])
	require.NoError(t, err)
	require.Equal(t, ButtonValue{RunID: "run_01TEST", StepID: "delete", Decision: "approved"}, v)
	v, err = tokens.Verify(values[1])
	require.NoError(t, err)
	require.Equal(t, "denied", v.Decision)

	// A token for another step, or with a flipped decision, does not verify.
	forged := strings.Replace(values[0], values[0][3:10], "AAAAAAA", 1)
	_, err = tokens.Verify(forged)
	require.ErrorIs(t, err, ErrBadToken)
	other, _ := NewTokens([]byte("another key, another stanch"))
	_, err = other.Verify(values[0])
	require.ErrorIs(t, err, ErrBadToken)

	// Decided: no buttons, who and when.
	step.Approval.Decision, step.Approval.DecidedBy, step.Approval.Via, step.Approval.DecidedAt = "approved", "U0ALICE", "slack", time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	text = PlainText(Approval(rep, step, tokens, false))
	require.NotContains(t, text, "[ Approve ]")
	require.Contains(t, text, "Approved by @U0ALICE at 2026-11-28 10:00:00Z")
}

// An approval message says every change the step will make, in the owner's
// account, the irreversible ones marked and repeated in the confirmation,
// and what a denial means; a planted secret in an effect never shows.
func TestApprovalStatesEveryEffect(t *testing.T) {
	tokens, err := NewTokens([]byte("0123456789abcdef0123"))
	require.NoError(t, err)
	rep := report()
	step := rep.Steps[4]
	step.Approval = &actions.ApprovalReport{Approvers: []string{"U0ALICE"}, Message: "Rotate it?", Deadline: time.Now().Add(time.Hour), OnTimeout: "deny", OnDeny: "skip",
		Effects: []actions.Effect{
			{Description: "delete the leaked access key AKIAIOSFODNN7EXAMPLE of user ci-bot in account 444455556666 to make room for the new one", Irreversible: true},
			{Description: "store the new key in secret iam-user/ci-bot of account 444455556666 (not " + planted + ")"},
		}}
	m := Approval(rep, step, tokens, false)
	text := PlainText(m)
	require.Contains(t, text, "If approved, stanch will:")
	require.Contains(t, text, "• ⚠️ delete the leaked access key AKIAIOSFODNN7EXAMPLE of user ci-bot in account 444455556666 to make room for the new one — *cannot be undone*")
	require.Contains(t, text, "• store the new key in secret iam-user/ci-bot of account 444455556666")
	require.Contains(t, text, "If denied, the step is skipped and the run goes on.")
	require.NotContains(t, text+BlocksJSON(m), planted)
	var confirm string
	for _, b := range m.Blocks {
		if ab, ok := b.(*slackapi.ActionBlock); ok {
			btn := ab.Elements.ElementSet[0].(*slackapi.ButtonBlockElement)
			confirm = btn.Confirm.Text.Text
		}
	}
	require.Equal(t, "This cannot be undone: delete the leaked access key AKIAIOSFODNN7EXAMPLE of user ci-bot in account 444455556666 to make room for the new one.", confirm)
}
