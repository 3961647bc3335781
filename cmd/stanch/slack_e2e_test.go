package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/sandbox"
)

const (
	slackToken   = "xoxb-sandbox-stanch-e2e"
	slackSecret  = "e2e-signing-secret-0123456789abcdef"
	slackChannel = "C0SECINCIDENTS"
)

// slackSeed is the e2e seed with a Slack workspace: #sec-incidents and
// #security-leads, and the security user group.
func slackSeed(t *testing.T) []byte {
	t.Helper()
	seed, err := os.ReadFile("testdata/seed.yaml")
	require.NoError(t, err)
	return append(seed, []byte(`
slack:
  token: `+slackToken+`
  channels:
    - {id: `+slackChannel+`, name: sec-incidents}
    - {id: C0SECLEADS, name: security-leads}
  users:
    - {id: U0ALICE, name: alice}
  usergroups:
    - {id: S0SECURITY, handle: security, users: [U0ALICE]}
    - {id: S0SECLEADS, handle: security-leads, users: []}
`)...)
}

func (e *e2e) slackEnv() []string {
	return []string{"STANCH_SLACK_TOKEN=" + slackToken, "STANCH_SLACK_API_URL=" + e.url + "/slack/api/", "STANCH_SLACK_SIGNING_SECRET=" + slackSecret}
}

// byKey counts stanch's messages (top level and replies) by the key in
// their metadata.
func byKey(msgs []sandbox.SlackMessage) map[string]int {
	out := map[string]int{}
	for _, m := range msgs {
		if m.Metadata != nil && m.Metadata.EventType == "stanch_message" {
			key, _ := m.Metadata.EventPayload["key"].(string)
			out[key]++
		}
	}
	return out
}

// stanch run is killed right after slack.notify posted the incident message
// and before the journal learnt of it; the resumed run finds the message by
// its metadata and updates it: one message.
func TestSlackNotifyCrashAfterPostingLeavesOneMessage(t *testing.T) {
	t.Parallel()
	e := newE2EWithSeed(t, slackSeed(t))
	args := []string{"run", "--playbook", e.example("playbooks/aws-key-leaked.yaml"), "--alert", e.example("alerts/manual-aws-key.json"), "--database", e.db}
	crashed := e.stanch(append(e.slackEnv(), "STANCH_CRASHPOINT=slack:notify-posted"), args...)
	require.True(t, crashed.killed, "want SIGKILL after the post: %s%s", crashed.stdout, crashed.stderr)
	require.Equal(t, 1, e.sb.EffectiveCount("chat.postMessage"), "the message was posted before the crash")

	resumed := e.stanch(e.slackEnv(), args...)
	require.Equal(t, 3, resumed.code, "resumed to the first approval; stdout:\n%s\nstderr:\n%s", resumed.stdout, resumed.stderr)
	keys := byKey(e.sb.SlackMessages(slackChannel))
	require.Equal(t, 1, keys["notify/tell"], "exactly one incident message")
	for key, n := range keys {
		require.Equal(t, 1, n, "message %s posted %d times", key, n)
	}
	msgs := e.sb.SlackMessages(slackChannel)
	require.NotEmpty(t, msgs[0].EditedTS, "the resumed step updated the message it found")
	require.True(t, strings.HasSuffix(msgs[0].Text, "(waiting approval)"), "before exiting, stanch run brought the message up to date: %s", msgs[0].Text)
	require.Equal(t, 1, keys["approval/rotate/0"], "and asked for the rotation in Slack")

	// Approving on the command line updates the messages too.
	i := strings.Index(resumed.stdout, "stanch approve ")
	require.GreaterOrEqual(t, i, 0, resumed.stdout)
	runID := strings.Fields(resumed.stdout[i:])[2]
	approved := e.stanch(e.slackEnv(), "approve", runID, "rotate", "--by", "security-oncall", "--database", e.db)
	// The rotation made room with the leaked key, so deleting it asks
	// nobody, and nothing else is left to approve.
	require.Equal(t, 0, approved.code, "stdout:\n%s\nstderr:\n%s", approved.stdout, approved.stderr)
	require.Contains(t, approved.stdout, "no approval asked")
	for _, m := range e.sb.SlackMessages(slackChannel) {
		if m.Metadata != nil && m.Metadata.EventPayload["key"] == "approval/rotate/0" {
			require.Contains(t, m.Text, "Approved by security-oncall at ", "the approval message shows the decision")
			require.NotContains(t, string(m.Blocks), "stanch_approve", "and no longer has buttons")
		}
	}
}

// stanch serve is killed right after it posted a message of a run (a
// step's detail in the incident thread) and before it recorded the ts;
// after the restart every message of the run exists exactly once, and the
// approval message carries its buttons.
func TestSlackSyncCrashAfterPostingLeavesOneMessageEach(t *testing.T) {
	t.Parallel()
	e := newE2EWithSeed(t, slackSeed(t))
	const secret = "eventbridge-connection-api-key"
	event, err := os.ReadFile(e.root + "/triggers/testdata/health-credentials-exposed.json")
	require.NoError(t, err)

	e.env = append(e.slackEnv(), "STANCH_CRASHPOINT=slack:sync-posted")
	base, cmd, stderr := e.startServe(t, secret)
	require.Equal(t, 200, post(t, base+"/hooks/aws/eventbridge", "X-Stanch-Token", secret, event))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("serve was not killed at slack:sync-posted; log:\n%s", stderr.String())
	}
	require.Equal(t, 2, e.sb.EffectiveCount("chat.postMessage"), "the incident message, then the first message of a sync")

	e.env = e.slackEnv()
	_, _, stderr = e.startServe(t, secret)
	require.Eventually(t, func() bool {
		keys := byKey(e.sb.SlackMessages(slackChannel))
		return keys["approval/rotate/0"] == 1 && keys["thread/impact"] == 1
	}, 30*time.Second, 50*time.Millisecond, "log:\n%s", stderr.String())
	time.Sleep(500 * time.Millisecond) // let any straggling sync land
	for key, n := range byKey(e.sb.SlackMessages(slackChannel)) {
		require.Equal(t, 1, n, "message %s posted %d times", key, n)
	}
	var approval sandbox.SlackMessage
	for _, m := range e.sb.SlackMessages(slackChannel) {
		if m.Metadata != nil && m.Metadata.EventPayload["key"] == "approval/rotate/0" {
			approval = m
		}
	}
	require.Contains(t, string(approval.Blocks), "stanch_approve")
	require.True(t, strings.HasPrefix(approval.Text, "✋ Approval needed: rotate"), approval.Text)
}
