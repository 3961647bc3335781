package notify

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/internal/planted"
	"github.com/stanchhq/stanch/internal/slackfixture"
	"github.com/stanchhq/stanch/slack"
)

// where is a wanted message's key with where it goes: what the pure stage
// decides.
type where struct {
	Key, Channel, ThreadTS, TS string
}

func places(want []wanted) []where {
	out := make([]where, len(want))
	for i, w := range want {
		out[i] = where{Key: w.Key, Channel: w.Message.Channel, ThreadTS: w.Message.ThreadTS, TS: w.TS}
	}
	return out
}

// A run that posted its incident message wants it kept up to date where it
// is, a line in its thread for each finished step (in the order of the
// steps), and its approval requests: in their channel, else in the thread,
// with the escalation in its own channel, under keys of the run's
// generation that asked.
func TestWantedMessages(t *testing.T) {
	t.Parallel()
	tokens, err := slack.NewTokens([]byte("0123456789abcdef0123"))
	require.NoError(t, err)
	rep := slackfixture.Report()
	rep.Steps[2].Status = "succeeded"
	rep.Steps[2].Outputs = map[string]any{"channel": "C0SECINCIDENTS", "ts": "1764300000.000001", "title": "Leak in payments"}
	rep.Steps[4].Status = "waiting_approval"
	rep.Steps[4].Approval = &actions.ApprovalReport{Approvers: []string{"U0ALICE"}, Message: "Delete it?", Deadline: time.Now().Add(time.Hour), OnTimeout: "escalate"}
	rep.Steps = append(rep.Steps,
		actions.StepReport{ID: "revoke", Action: "aws.revoke_sessions", Status: "failed", Error: "access denied"},
		actions.StepReport{ID: "resolve", Action: "github.resolve_alert", Status: "skipped"},
		actions.StepReport{ID: "rotate", Action: "aws.rotate_key", Status: "denied", Approval: &actions.ApprovalReport{
			Approvers: []string{"S0SECURITY"}, Channel: "#security", EscalatedTo: "#security-leads", Generation: 1,
			Decision: "denied", DecidedBy: "U0BOB", Via: "slack", DecidedAt: time.Now()}},
	)

	want := wantedMessages(rep, tokens, "")
	const thread = "1764300000.000001"
	require.Equal(t, []where{
		{Key: "notify/tell", Channel: "C0SECINCIDENTS", TS: thread},
		{Key: "thread/identify", Channel: "C0SECINCIDENTS", ThreadTS: thread},
		{Key: "thread/deactivate", Channel: "C0SECINCIDENTS", ThreadTS: thread},
		{Key: "thread/impact", Channel: "C0SECINCIDENTS", ThreadTS: thread},
		{Key: "thread/revoke", Channel: "C0SECINCIDENTS", ThreadTS: thread},
		{Key: "thread/rotate", Channel: "C0SECINCIDENTS", ThreadTS: thread},
		{Key: "approval/delete/0", Channel: "C0SECINCIDENTS", ThreadTS: thread},
		{Key: "approval/rotate/g1/0", Channel: "#security"},
		{Key: "approval/rotate/g1/1", Channel: "#security-leads"},
	}, places(want))

	require.True(t, strings.HasPrefix(want[0].Message.Text, "Leak in payments (running)"), "the incident keeps its title: %s", want[0].Message.Text)
	require.Equal(t, "✅ identify (aws.identify_key): succeeded — owned by ci-bot", want[1].Message.Text)
	require.Equal(t, "❌ revoke (aws.revoke_sessions): failed — access denied", want[4].Message.Text)
	require.Equal(t, "🚫 rotate (aws.rotate_key): denied (denied by U0BOB via slack)", want[5].Message.Text)
	require.Contains(t, slack.BlocksJSON(want[6].Message), slack.ActionApprove, "a waiting request has its buttons")
	require.True(t, strings.HasPrefix(want[8].Message.Text, "⏫ Escalated: Approval needed: rotate"), want[8].Message.Text)
	for _, w := range want {
		planted.RequireNone(t, "message "+w.Key, w.Message.Text, slack.BlocksJSON(w.Message))
	}
}

// Before slack.notify posted (or without it), there is no thread: no step
// lines, and an approval with no channel of its own is asked with stanch
// approve only.
func TestWantedMessagesWithoutIncident(t *testing.T) {
	t.Parallel()
	rep := slackfixture.Report()
	rep.Steps[4].Status = "waiting_approval"
	rep.Steps[4].Approval = &actions.ApprovalReport{Approvers: []string{"U0ALICE"}, Message: "Delete it?", Deadline: time.Now().Add(time.Hour)}
	require.Empty(t, wantedMessages(rep, nil, ""))

	rep.Steps[4].Approval.Channel = "C0SECINCIDENTS"
	want := wantedMessages(rep, nil, "")
	require.Equal(t, []where{{Key: "approval/delete/0", Channel: "C0SECINCIDENTS"}}, places(want))
	require.NotContains(t, slack.BlocksJSON(want[0].Message), slack.ActionApprove, "without tokens, no buttons")
	require.Contains(t, slack.PlainText(want[0].Message), "stanch approve run_01TEST delete")
}

// With a link maker, the incident message links the run's incident record,
// made from the run's id and creation time (so the same link every time
// the message is drawn); the other messages do not.
func TestWantedIncidentLinksRecord(t *testing.T) {
	t.Parallel()
	rep := slackfixture.Report()
	rep.Steps[2].Status = "succeeded"
	rep.Steps[2].Outputs = map[string]any{"channel": "C0SECINCIDENTS", "ts": "1764300000.000001"}
	var asked []string
	n := NewSlack(slack.NewClient(slack.Options{}), nil, nil).WithRecordLink(func(runID string, created time.Time) string {
		asked = append(asked, runID+"@"+created.UTC().Format(time.RFC3339Nano))
		return "https://stanch.example.com/reports/./" + runID + "?expires=1796202000&mac=00ff"
	})
	want := wantedMessages(rep, nil, n.recordLinkOf(rep))
	require.Equal(t, []string{rep.RunID + "@" + rep.StartedAt.UTC().Format(time.RFC3339Nano)}, asked)
	require.Equal(t, "notify/tell", want[0].Key)
	require.Contains(t, slack.BlocksJSON(want[0].Message), "\\u003chttps://stanch.example.com/reports/./run_01TEST?expires=1796202000\\u0026amp;mac=00ff|Incident record\\u003e")
	for _, w := range want[1:] {
		require.NotContains(t, slack.BlocksJSON(w.Message), "Incident record", w.Key)
	}
	require.NotContains(t, slack.BlocksJSON(wantedMessages(rep, nil, NewSlack(slack.NewClient(slack.Options{}), nil, nil).recordLinkOf(rep))[0].Message), "Incident record",
		"without a link maker, no link")
}
