package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/record"
	"github.com/stanchhq/stanch/sandbox"
	"github.com/stanchhq/stanch/slack"
)

// approverSeed is the e2e seed with a Slack workspace whose people have
// display names.
func approverSeed(t *testing.T) []byte {
	t.Helper()
	seed, err := os.ReadFile("testdata/seed.yaml")
	require.NoError(t, err)
	return append(seed, []byte(`
slack:
  token: `+slackToken+`
  channels:
    - {id: `+slackChannel+`, name: sec-incidents}
  users:
    - {id: U0ALICE, name: alice, real_name: Alice Liddell, display_name: Alice Smith}
    - {id: U0BOB, name: bob, real_name: Bob Jones}
  usergroups:
    - {id: S0SECURITY, handle: security, users: [U0ALICE]}
`)...)
}

// The first approval is a click in Slack, the second stanch approve with a
// Slack user id.
const approveInSlack = `
name: approve-in-slack
steps:
  - id: identify
    action: aws.identify_key
    with:
      access_key_id: ${{ alert.credential.id }}
  - id: tell
    action: slack.notify
    with:
      channel: "#sec-incidents"
  - id: deactivate
    action: aws.deactivate_key
    approval:
      approvers: [S0SECURITY]
      channel: "#sec-incidents"
      timeout: 1h
    with:
      access_key_id: ${{ alert.credential.id }}
      user_name: ${{ steps.identify.outputs.user_name }}
  - id: revoke_sessions
    action: aws.revoke_sessions
    approval:
      approvers: [U0BOB]
      timeout: 1h
`

// decisionsOf returns the approvals of a record by step.
func decisionsOf(approvals []record.Approval) map[string]record.Approval {
	out := map[string]record.Approval{}
	for _, a := range approvals {
		out[a.StepID] = a
	}
	return out
}

// Alice approves with the button in Slack (stanch serve), Bob on the
// command line by his Slack id: each approval is recorded with the id and
// the name Slack shows, in stanch runs show --json, in the journal and in
// the export.
func TestApproversRecordedWithTheirNames(t *testing.T) {
	t.Parallel()
	e := newE2EWithSeed(t, approverSeed(t))
	playbook := e.writeFile("approve-in-slack.yaml", approveInSlack)
	e.env = e.slackEnv()
	base, _, serveLog := e.startServeWith(t, playbook, "eb-secret")

	ingest := e.stanch(nil, "ingest", "--playbooks", playbook, "--database", e.db, e.example("alerts/manual-aws-key.json"))
	require.Equal(t, exitOK, ingest.code, ingest.stdout+ingest.stderr)
	runID := e.onlyRun(t)
	e.waitRunStatus(t, runID, "waiting_approval", serveLog)

	var msg sandbox.SlackMessage
	require.Eventually(t, func() bool {
		for _, m := range e.sb.SlackMessages(slackChannel) {
			if m.Metadata != nil && m.Metadata.EventPayload["key"] == "approval/deactivate/0" && m.ButtonValue(slack.ActionApprove) != "" {
				msg = m
				return true
			}
		}
		return false
	}, 30*time.Second, 50*time.Millisecond, "no approval message with buttons; serve's log:\n%s", serveLog)
	click := sandbox.SlackClick{URL: base + slackHooksRoute, SigningSecret: slackSecret, User: "U0ALICE", UserName: "alice", Channel: slackChannel,
		MessageTS: msg.TS, ActionID: slack.ActionApprove, BlockID: "stanch_approval", Value: msg.ButtonValue(slack.ActionApprove)}
	req, err := click.Request(context.Background())
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, sendClick(t, req))

	// The click resumes the run up to Bob's approval.
	deadline := time.Now().Add(30 * time.Second)
	for {
		show, _ := e.showRun(t, runID)
		if show.Run.WaitingStep == "revoke_sessions" {
			break
		}
		require.True(t, time.Now().Before(deadline), "the run never waited for Bob; serve's log:\n%s", serveLog)
	}
	approve := e.stanch(e.slackEnv(), "approve", runID, "revoke_sessions", "--by", "U0BOB", "--database", e.db)
	require.Equal(t, exitOK, approve.code, approve.stdout+approve.stderr)
	require.Contains(t, approve.stdout, "step revoke_sessions of "+runID+" approved by Bob Jones (U0BOB)")
	e.waitRunStatus(t, runID, "succeeded", serveLog)

	show, _ := e.showRun(t, runID)
	for _, approvals := range [][]record.Approval{show.Approvals, e.exported(t, runID).Approvals} {
		decided := decisionsOf(approvals)
		require.Equal(t, "U0ALICE", decided["deactivate"].DecidedBy)
		require.Equal(t, "Alice Smith", decided["deactivate"].DecidedByName)
		require.Equal(t, "slack", decided["deactivate"].Via)
		require.Equal(t, "U0BOB", decided["revoke_sessions"].DecidedBy)
		require.Equal(t, "Bob Jones", decided["revoke_sessions"].DecidedByName, "no display name: the real name")
		require.Equal(t, "cli", decided["revoke_sessions"].Via)
	}
	var journal []string
	for _, entry := range show.Journal {
		if entry.Event == "approval_approved" {
			journal = append(journal, entry.Detail)
		}
	}
	require.Equal(t, []string{"by Alice Smith (U0ALICE) via slack", "by Bob Jones (U0BOB) via cli"}, journal)

	lookups := map[string]int{}
	for _, c := range e.sb.Calls() {
		if c.Action == "users.info" {
			lookups[c.Params["user"]]++
		}
	}
	require.Equal(t, map[string]int{"U0ALICE": 1, "U0BOB": 1}, lookups)
}

// exported returns the run from stanch runs export.
func (e *e2e) exported(t *testing.T, runID string) record.Run {
	t.Helper()
	res := e.stanch(nil, "runs", "export", "--format", "ndjson", "--database", e.db)
	require.Equal(t, exitOK, res.code, res.stderr)
	for line := range strings.SplitSeq(strings.TrimSpace(res.stdout), "\n") {
		var run record.Run
		require.NoError(t, json.Unmarshal([]byte(line), &run), line)
		if run.Run.ID == runID {
			return run
		}
	}
	t.Fatalf("run %s is not in the export:\n%s", runID, res.stdout)
	return record.Run{}
}
