package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/runner"
	"github.com/stanchhq/stanch/sandbox"
	"github.com/stanchhq/stanch/slack"
)

const askTwice = `
name: ask-twice
steps:
  - id: tell
    action: slack.notify
    with:
      channel: "#sec-incidents"
  - id: destroy
    action: test.mark
    approval:
      approvers: [` + securityGroup + `]
      channel: "#sec-incidents"
    with: {name: destroy}
  - id: shred
    action: test.mark
    approval:
      approvers: [` + securityGroup + `]
      channel: "#sec-incidents"
    with: {name: shred}
`

// approvalFor waits for the approval message of a step and returns it
// with the value of its Approve button.
func (b *slackBench) approvalFor(t *testing.T, step string) (sandbox.SlackMessage, string) {
	t.Helper()
	var msg sandbox.SlackMessage
	require.Eventually(t, func() bool {
		for _, m := range b.sb.SlackMessages(channelID) {
			if m.Metadata != nil && m.Metadata.EventPayload["key"] == "approval/"+step+"/0" && m.ButtonValue(slack.ActionApprove) != "" {
				msg = m
				return true
			}
		}
		return false
	}, 10*time.Second, 10*time.Millisecond, "no approval message with buttons for %s", step)
	return msg, msg.ButtonValue(slack.ActionApprove)
}

// approve clicks Approve on a step's message as user and returns how long
// the endpoint took to answer.
func (b *slackBench) approve(t *testing.T, user, step string) time.Duration {
	t.Helper()
	msg, value := b.approvalFor(t, step)
	req, err := b.click(user, slack.ActionApprove, value, msg.TS, time.Time{}).Request(context.Background())
	require.NoError(t, err)
	start := time.Now()
	require.Equal(t, http.StatusOK, sendClick(t, req))
	return time.Since(start)
}

func (b *slackBench) decidedEntries(t *testing.T, runID string) []string {
	t.Helper()
	journal, err := b.r.Store().Journal(context.Background(), runID)
	require.NoError(t, err)
	var out []string
	for _, e := range journal {
		if e.Event == "approval_approved" || e.Event == "approval_denied" {
			out = append(out, e.Event+" "+e.Detail)
		}
	}
	return out
}

// Two clicks by the same person, two approvals recorded with her name,
// one users.info: the name is cached.
func TestSlackApproverNameLookedUpOnce(t *testing.T) {
	b := setupSlackWith(t, askTwice)
	ctx := context.Background()
	run := b.submit(t)
	b.waitRun(t, run.ID, runner.RunWaitingApproval)
	b.approve(t, alice, "destroy")
	b.approve(t, alice, "shred")
	run = b.waitRun(t, run.ID, runner.RunSucceeded, runner.RunFailed, runner.RunCancelled)
	require.Equal(t, runner.RunSucceeded, run.Status)

	approvals, err := b.r.Store().Approvals(ctx, run.ID)
	require.NoError(t, err)
	for _, step := range []string{"destroy", "shred"} {
		require.Equal(t, alice, approvals[step].DecidedBy, step)
		require.Equal(t, "Alice Smith", approvals[step].DecidedByName, step)
	}
	require.Equal(t, []string{"approval_approved by Alice Smith (U0ALICE) via slack", "approval_approved by Alice Smith (U0ALICE) via slack"}, b.decidedEntries(t, run.ID))
	require.Equal(t, 1, b.sb.Count("users.info"), "two clicks, one users.info")
}

// Slack cannot say who clicked (rate limited for an hour): the decision is
// recorded all the same, with the id alone, and a warning says why.
func TestSlackDecisionWithoutApproverName(t *testing.T) {
	b := setupSlack(t)
	ctx := context.Background()
	b.sb.SlackRateLimit("users.info", 100, time.Hour)
	run := b.submit(t)
	b.waitRun(t, run.ID, runner.RunWaitingApproval)
	b.approve(t, alice, "destroy")
	run = b.waitRun(t, run.ID, runner.RunSucceeded, runner.RunFailed, runner.RunCancelled)
	require.Equal(t, runner.RunSucceeded, run.Status)

	a, err := b.r.Store().Approval(ctx, run.ID, "destroy")
	require.NoError(t, err)
	require.Equal(t, alice, a.DecidedBy)
	require.Empty(t, a.DecidedByName)
	require.Equal(t, []string{"approval_approved by U0ALICE via slack"}, b.decidedEntries(t, run.ID))
	require.Contains(t, b.logs.String(), `level=WARN msg="the name of who clicked was not found; the decision is recorded with their Slack id only" user=U0ALICE`)
	require.Equal(t, 1, b.sb.Count("users.info"))
}

// users.info hangs: the click is answered without waiting for it and the
// decision goes on without the name.
func TestSlackSlowUserLookupDoesNotHoldTheClick(t *testing.T) {
	b := setupSlack(t)
	ctx := context.Background()
	b.sb.SlackDelay("users.info", time.Minute)
	run := b.submit(t)
	b.waitRun(t, run.ID, runner.RunWaitingApproval)
	took := b.approve(t, alice, "destroy")
	// Not a timing test (the handler's own 2 s cut is what keeps Slack's
	// 3 s): the answer must not wait for the lookup's minute, whatever
	// the machine's load.
	require.Less(t, took, 30*time.Second, "the click's answer waited for users.info")
	run = b.waitRun(t, run.ID, runner.RunSucceeded, runner.RunFailed, runner.RunCancelled)
	require.Equal(t, runner.RunSucceeded, run.Status)
	a, err := b.r.Store().Approval(ctx, run.ID, "destroy")
	require.NoError(t, err)
	require.Equal(t, alice, a.DecidedBy)
	require.Empty(t, a.DecidedByName)
	require.True(t, strings.Contains(b.logs.String(), "context deadline exceeded"), "the warning says the lookup timed out")
}
