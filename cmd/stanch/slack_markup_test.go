package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/playbooks"
	"github.com/stanchhq/stanch/runner"
	"github.com/stanchhq/stanch/sandbox"
)

// markup is Slack markup an alert can carry in any of its fields: a
// mention of everyone, and a link that says it approves.
const markup = "<!channel> <https://evil.example/approve|Click here to approve> & <@U0MALLORY>"

// forbidden are what must never reach Slack as markup.
var forbidden = []string{"<!channel>", "<!here>", "<!everyone>", "<@U0MALLORY>", "<https://evil.example", "|Click here to approve>", "<javascript:", "|javascript:"}

const markupPlaybook = `
name: markup
steps:
  - id: contain
    action: test.mark
    with: {name: "${{ alert.title }}"}
  - id: tell
    action: slack.notify
    with:
      channel: "#sec-incidents"
      title: "${{ alert.title }}"
  - id: destroy
    action: test.mark
    approval:
      approvers: [S0SECURITY, security-oncall]
      channel: "#sec-incidents"
      message: "Destroy ${{ alert.location.path }}?"
    with: {name: "${{ alert.location.repo }}"}
`

// strings of a message as Slack reads them: its fallback text and every
// string in its blocks (JSON escapes < as \u003c, so the raw JSON is no
// guide).
func slackStrings(t *testing.T, m sandbox.SlackMessage) []string {
	t.Helper()
	out := []string{m.Text}
	if len(m.Blocks) == 0 {
		return out
	}
	var blocks any
	require.NoError(t, json.Unmarshal(m.Blocks, &blocks))
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			out = append(out, v)
		case []any:
			for _, e := range v {
				walk(e)
			}
		case map[string]any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(blocks)
	return out
}

// TestAlertMarkupNeverReachesSlackAsMarkup: the fallback text carried an
// alert's text unescaped (<!channel>, <https://…|Click here to approve>),
// and a javascript: location became a link target. Every field of every
// message (incident, approval with its confirmation dialog, thread
// replies) shows such text as text, and only http(s) locations are links.
func TestAlertMarkupNeverReachesSlackAsMarkup(t *testing.T) {
	b := setupSlackWith(t, markupPlaybook)
	ctx := context.Background()
	a := alert.Alert{Source: alert.SourceManual, Title: markup, DedupKey: "manual:" + markup,
		Credential: alert.Credential{Provider: "aws", ID: "AKIAIOSFODNN7EXAMPLE", Account: "111122223333", Principal: "<!here>"},
		Location:   alert.Location{Repo: "acme/<!everyone>", Path: markup + ".py", Line: 3, Commit: "<!channel>", URL: "javascript:alert(document.cookie)//<!channel>"}}
	a.Normalise(time.Now())
	sub, err := b.r.Submit(ctx, a, []*playbooks.Playbook{b.pb})
	require.NoError(t, err)
	require.Len(t, sub.Started, 1)
	run := sub.Started[0]
	b.waitRun(t, run.ID, runner.RunWaitingApproval)
	approval, _, _ := b.approvalMessage(t)
	require.Contains(t, string(approval.Blocks), `"confirm"`, "the confirmation dialogs are checked too")
	check := func() (replies int) {
		for _, m := range b.sb.SlackMessages(channelID) {
			if m.ThreadTS != "" && m.ThreadTS != m.TS {
				replies++
			}
			for _, s := range slackStrings(t, m) {
				for _, bad := range forbidden {
					require.NotContains(t, s, bad, "message %s", m.TS)
				}
			}
		}
		return replies
	}
	check()

	_, _, err = b.r.Decide(ctx, runner.Decision{RunID: run.ID, StepID: "destroy", Decision: runner.Approved, By: "security-oncall", Via: "cli"})
	require.NoError(t, err)
	b.waitRun(t, run.ID, runner.RunSucceeded)
	// The thread gets a reply for each finished step, destroy last.
	require.Eventually(t, func() bool {
		for _, m := range b.sb.SlackMessages(channelID) {
			if m.ThreadTS != "" && m.ThreadTS != m.TS && strings.Contains(m.Text, "destroy") {
				return true
			}
		}
		return false
	}, 10*time.Second, 10*time.Millisecond, "no thread reply for destroy")
	require.Positive(t, check(), "thread replies were checked")

	incident := b.topLevel()[0]
	all := strings.Join(slackStrings(t, incident), "\n")
	require.Contains(t, incident.Text, "&lt;!channel&gt;", "the fallback shows the text, escaped")
	require.Contains(t, all, "javascript:alert(document.cookie)//&lt;!channel&gt;", "another scheme is shown as text")
}
