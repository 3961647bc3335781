package render

import (
	"strings"
	"testing"
	"time"

	slackapi "github.com/slack-go/slack"
	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/internal/planted"
	"github.com/stanchhq/stanch/internal/slackfixture"
	"github.com/stanchhq/stanch/slack"
)

func TestApprovalButtonsCarryValidTokens(t *testing.T) {
	tokens, err := slack.NewTokens([]byte("0123456789abcdef0123"))
	require.NoError(t, err)
	rep := slackfixture.Report()
	step := rep.Steps[4]
	step.Approval = &actions.ApprovalReport{Approvers: []string{"U0ALICE", "S0SECURITY", "security-oncall"}, Message: "Delete it?", Deadline: time.Now().Add(time.Hour), OnTimeout: "deny"}
	m := Approval(rep, step, tokens, false)
	text := slack.PlainText(m)
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
	require.Equal(t, slack.ButtonValue{RunID: "run_01TEST", StepID: "delete", Decision: "approved"}, v)
	v, err = tokens.Verify(values[1])
	require.NoError(t, err)
	require.Equal(t, "denied", v.Decision)

	// A token for another step, or with a flipped decision, does not verify.
	forged := strings.Replace(values[0], values[0][3:10], "AAAAAAA", 1)
	_, err = tokens.Verify(forged)
	require.ErrorIs(t, err, slack.ErrBadToken)
	other, _ := slack.NewTokens([]byte("another key, another stanch"))
	_, err = other.Verify(values[0])
	require.ErrorIs(t, err, slack.ErrBadToken)

	// Decided: no buttons, who and when.
	step.Approval.Decision, step.Approval.DecidedBy, step.Approval.Via, step.Approval.DecidedAt = "approved", "U0ALICE", "slack", time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	text = slack.PlainText(Approval(rep, step, tokens, false))
	require.NotContains(t, text, "[ Approve ]")
	require.Contains(t, text, "Approved by @U0ALICE at 2026-11-28 10:00:00Z")
}

// An approval message says every change the step will make, in the owner's
// account, the irreversible ones marked and repeated in the confirmation,
// and what a denial means; a planted secret in an effect never shows.
func TestApprovalStatesEveryEffect(t *testing.T) {
	tokens, err := slack.NewTokens([]byte("0123456789abcdef0123"))
	require.NoError(t, err)
	rep := slackfixture.Report()
	step := rep.Steps[4]
	step.Approval = &actions.ApprovalReport{Approvers: []string{"U0ALICE"}, Message: "Rotate it?", Deadline: time.Now().Add(time.Hour), OnTimeout: "deny", OnDeny: "skip",
		Effects: []actions.Effect{
			{Description: "delete the leaked access key AKIAIOSFODNN7EXAMPLE of user ci-bot in account 444455556666 to make room for the new one", Irreversible: true},
			{Description: "store the new key in secret iam-user/ci-bot of account 444455556666 (not " + planted.Random + ")"},
		}}
	m := Approval(rep, step, tokens, false)
	text := slack.PlainText(m)
	require.Contains(t, text, "If approved, stanch will:")
	require.Contains(t, text, "• ⚠️ delete the leaked access key AKIAIOSFODNN7EXAMPLE of user ci-bot in account 444455556666 to make room for the new one — *cannot be undone*")
	require.Contains(t, text, "• store the new key in secret iam-user/ci-bot of account 444455556666")
	require.Contains(t, text, "If denied, the step is skipped and the run goes on.")
	planted.RequireNone(t, "the approval", text, slack.BlocksJSON(m))
	var confirm string
	for _, b := range m.Blocks {
		if ab, ok := b.(*slackapi.ActionBlock); ok {
			btn := ab.Elements.ElementSet[0].(*slackapi.ButtonBlockElement)
			confirm = btn.Confirm.Text.Text
		}
	}
	require.Equal(t, "This cannot be undone: delete the leaked access key AKIAIOSFODNN7EXAMPLE of user ci-bot in account 444455556666 to make room for the new one.", confirm)
}
