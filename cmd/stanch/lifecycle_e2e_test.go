package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/sandbox"
)

// The run lifecycle as people drive it from the command line: retry,
// cancel, close, decisions, deadlines, and what each command's exit code
// and words say.

func (e *e2e) writeFile(name, text string) string {
	e.t.Helper()
	path := filepath.Join(e.dir, name)
	require.NoError(e.t, os.WriteFile(path, []byte(text), 0o600))
	return path
}

func runIDOf(t *testing.T, out string) string {
	t.Helper()
	id := runIDPattern.FindString(out)
	require.NotEmpty(t, id, out)
	return id
}

// A run that failed on an outage is retried in one command once AWS is
// back, and the same alert again names the failed run and that command.
func TestRetryAFailedRunInOneCommand(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	noSDKRetries := []string{"AWS_MAX_ATTEMPTS=1"}
	e.sb.SetFault("iam", sandbox.Fault{ErrorRate: 1})
	res := e.runContain(noSDKRetries...)
	require.Equal(t, exitFailed, res.code, res.stdout+res.stderr)
	runID := runIDOf(t, res.stdout)
	require.Contains(t, res.stdout, runID+" failed at step identify")
	require.Contains(t, res.stdout, "stanch runs retry "+runID+" --database "+e.db)

	again := e.runContain(noSDKRetries...)
	require.Equal(t, exitFailed, again.code, again.stdout)
	require.Contains(t, again.stdout, "already has run "+runID)
	require.Contains(t, again.stdout, "stanch runs retry "+runID, "the same alert again says how to go on")

	e.sb.SetFault("iam", sandbox.Fault{})
	retried := e.stanch(noSDKRetries, "runs", "retry", runID, "--by", "alice", "--database", e.db)
	require.Equal(t, exitOK, retried.code, retried.stdout+retried.stderr)
	require.Contains(t, retried.stdout, runID+" retried by alice from step identify (retry 1)")
	require.Contains(t, retried.stdout, runID+" succeeded")
	status, _ := e.sb.KeyStatus(account, leakedKey)
	require.Equal(t, "Inactive", status)
	require.Equal(t, 1, e.sb.EffectiveCount("UpdateAccessKey"))

	show := e.stanch(nil, "runs", "show", runID, "--database", e.db)
	require.Contains(t, show.stdout, "run_retried")
	require.Contains(t, show.stdout, "by alice from step identify (retry 1)")
	require.Contains(t, show.stdout, "retried   1 time(s)")
	require.NotContains(t, show.stdout, "run_resumed", "nothing stopped")

	done := e.stanch(nil, "runs", "retry", runID, "--database", e.db)
	require.Equal(t, exitFailed, done.code)
	require.Contains(t, done.stderr, "succeeded: there is nothing to retry")
}

const approveOnePlaybook = `name: approve-one
steps:
  - id: identify
    action: aws.identify_key
    with:
      access_key_id: ${{ alert.credential.id }}
  - id: deactivate
    action: aws.deactivate_key
    approval:
      approvers: [alice, bob]
      timeout: %s
      on_timeout: %s
      %s
`

func TestCancelAndCloseFromTheCommandLine(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	pb := e.writeFile("approve.yaml", fmt.Sprintf(approveOnePlaybook, "1h", "deny", ""))
	res := e.stanch(nil, "run", "--playbook", pb, "--alert", e.example("alerts/manual-aws-key.json"), "--database", e.db)
	require.Equal(t, exitWaiting, res.code, res.stdout+res.stderr)
	runID := runIDOf(t, res.stdout)
	require.Contains(t, res.stdout, "it would:\n    • deactivate access key "+leakedKey+" of user ci-bot in account "+account,
		"the command that leaves a run waiting says what approving it does")

	cancel := e.stanch(nil, "runs", "cancel", runID, "--by", "bob", "--note", "handled by hand", "--database", e.db)
	require.Equal(t, exitOK, cancel.code, cancel.stdout+cancel.stderr)
	require.Contains(t, cancel.stdout, runID+" cancelled: cancelled by bob: handled by hand")

	late := e.stanch(nil, "approve", runID, "deactivate", "--by", "alice", "--database", e.db)
	require.Equal(t, exitFailed, late.code, "an approval of a cancelled run is refused")
	require.Contains(t, late.stderr, "has ended")
	status, _ := e.sb.KeyStatus(account, leakedKey)
	require.Equal(t, "Active", status, "nothing ran after the cancel")

	twice := e.stanch(nil, "runs", "cancel", runID, "--database", e.db)
	require.Equal(t, exitFailed, twice.code)
	require.Contains(t, twice.stderr, "already ended")

	noNote := e.stanch(nil, "runs", "close", runID, "--database", e.db)
	require.Equal(t, exitUsage, noNote.code)
	closed := e.stanch(nil, "runs", "close", runID, "--by", "carol", "--note", "key was a test key", "--database", e.db)
	require.Equal(t, exitOK, closed.code, closed.stdout+closed.stderr)
	require.Contains(t, closed.stdout, "closed by carol: key was a test key")
	retry := e.stanch(nil, "runs", "retry", runID, "--database", e.db)
	require.Equal(t, exitFailed, retry.code)
	require.Contains(t, retry.stderr, "a closed incident is not retried")

	list := e.stanch(nil, "runs", "list", "--database", e.db)
	require.Regexp(t, regexp.MustCompile(runID+`\s+approve-one\s+cancelled, closed`), list.stdout)
	show := e.stanch(nil, "runs", "show", runID, "--database", e.db)
	require.Contains(t, show.stdout, "closed    ")
	require.Contains(t, show.stdout, "by carol: key was a test key")
	require.Contains(t, show.stdout, "deactivate: never decided: the run ended")
}

// A decision the other way than the first one is not a success.
func TestApproveTheOtherWayExitsNonZero(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	pb := e.writeFile("approve.yaml", fmt.Sprintf(approveOnePlaybook, "1h", "deny", ""))
	res := e.stanch(nil, "run", "--playbook", pb, "--alert", e.example("alerts/manual-aws-key.json"), "--database", e.db)
	require.Equal(t, exitWaiting, res.code, res.stdout+res.stderr)
	runID := runIDOf(t, res.stdout)

	deny := e.stanch(nil, "approve", runID, "deactivate", "--by", "bob", "--deny", "--database", e.db)
	require.Equal(t, exitFailed, deny.code, "the run ends cancelled")
	require.Contains(t, deny.stdout, runID+" cancelled at step deactivate")

	other := e.stanch(nil, "approve", runID, "deactivate", "--by", "alice", "--database", e.db)
	require.Equal(t, exitFailed, other.code, other.stdout+other.stderr)
	require.Contains(t, other.stdout, "was already denied by bob")
	require.Contains(t, other.stderr, "step deactivate was denied, not approved: the first decision stands")

	same := e.stanch(nil, "approve", runID, "deactivate", "--by", "alice", "--deny", "--database", e.db)
	require.Equal(t, exitOK, same.code, "the same decision again changes nothing and is no failure")
	status, _ := e.sb.KeyStatus(account, leakedKey)
	require.Equal(t, "Active", status)
}

const slackSeedTail = `
slack:
  token: xoxb-sandbox-lifecycle
  channels:
    - {id: C0SECINCIDENTS, name: sec-incidents}
    - {id: C0SECLEADS, name: security-leads}
  users:
    - {id: U0ALICE, name: alice}
`

// With only the command line in use, a deadline that passed is applied by
// the next command that works the store: it says what the run became, and
// Slack shows the denial or the escalation.
func TestDeadlineAppliedByTheNextCommand(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, onTimeout, escalate string
		code                      int
		says, slack               string
	}{
		{"deny", "deny", `channel: "#sec-incidents"`, exitFailed, "cancelled at step deactivate: step deactivate was denied by timeout", "Denied by timeout"},
		{"escalate", "escalate", "channel: \"#sec-incidents\"\n      escalate: {channel: \"#security-leads\", approvers: [carol], timeout: 1h}", exitWaiting,
			`waiting for approval of step "deactivate", escalated to #security-leads (approvers alice, bob, carol)`, "Escalated: Approval needed: deactivate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			seed, err := os.ReadFile("testdata/seed.yaml")
			require.NoError(t, err)
			e := newE2EWithSeed(t, append(seed, slackSeedTail...))
			env := []string{"STANCH_SLACK_TOKEN=xoxb-sandbox-lifecycle", "STANCH_SLACK_API_URL=" + e.url + "/slack/api/"}
			// Long enough that the first command has surely left before it
			// passes, even on a loaded machine.
			pb := e.writeFile("approve.yaml", fmt.Sprintf(approveOnePlaybook, "8s", tc.onTimeout, tc.escalate))
			args := []string{"run", "--playbook", pb, "--alert", e.example("alerts/manual-aws-key.json"), "--database", e.db}
			first := e.stanch(env, args...)
			require.Equal(t, exitWaiting, first.code, first.stdout+first.stderr)
			runID := runIDOf(t, first.stdout)
			deadline := firstDeadline(t, first.stdout)
			// The deadline passes with no stanch process running (it is
			// shown in whole seconds: the real one is within a second after).
			time.Sleep(time.Until(deadline) + 1500*time.Millisecond)

			second := e.stanch(env, args...)
			require.Equal(t, tc.code, second.code, second.stdout+second.stderr)
			require.Contains(t, second.stdout, runID+" ")
			require.Contains(t, second.stdout, tc.says)
			var shown bool
			for _, ch := range []string{"C0SECINCIDENTS", "C0SECLEADS"} {
				for _, m := range e.sb.SlackMessages(ch) {
					shown = shown || strings.Contains(m.Text, tc.slack)
				}
			}
			require.True(t, shown, "Slack shows %q", tc.slack)
		})
	}
}

var deadlinePattern = regexp.MustCompile(`waiting for approval until (\S+Z)`)

func firstDeadline(t *testing.T, out string) time.Time {
	t.Helper()
	m := deadlinePattern.FindStringSubmatch(out)
	require.NotNil(t, m, out)
	d, err := time.Parse(time.RFC3339, m[1])
	require.NoError(t, err)
	return d
}

// stanch ingest beside a running stanch serve hands the findings to it.
func TestIngestBesideServe(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	_, _, serveLog := e.startServeWith(t, "testdata/contain.yaml", "eb-secret")
	res := e.stanch(nil, "ingest", "--playbooks", "testdata/contain.yaml", "--database", e.db, e.example("alerts/manual-aws-key.json"))
	require.Equal(t, exitOK, res.code, res.stdout+res.stderr)
	require.Contains(t, serveLog.String(), "stanch serve starting", "serve logs its version at start")
	require.Contains(t, serveLog.String(), "go=go1.")
	require.Contains(t, res.stdout, "1 run(s) started")
	require.Contains(t, res.stdout, "another stanch process works this store and runs them")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if status, _ := e.sb.KeyStatus(account, leakedKey); status == "Inactive" {
			break
		}
		require.True(t, time.Now().Before(deadline), "stanch serve did not run the ingested alert: %s", serveLog.String())
		time.Sleep(50 * time.Millisecond)
	}
}

// Without credentials, stanch says so once, with what to set, and does not
// retry what cannot work.
func TestNoAWSCredentialsSaysSoOnce(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	// Blank the responder's credentials given by e.stanch.
	env := []string{"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=", "AWS_EC2_METADATA_DISABLED=true"}
	plan := e.stanch(env, "plan", "--playbook", "testdata/contain.yaml", "--alert", e.example("alerts/manual-aws-key.json"))
	require.Equal(t, exitFailed, plan.code, plan.stdout+plan.stderr)
	out := plan.stdout + plan.stderr
	require.Equal(t, 1, strings.Count(out, "no AWS credentials found"), out)
	require.Contains(t, out, "AWS_ACCESS_KEY_ID")
	require.NotContains(t, out, "retryable")

	run := e.runContain(env...)
	require.Equal(t, exitFailed, run.code, run.stdout+run.stderr)
	require.Contains(t, run.stdout, "no AWS credentials found")
	require.Contains(t, run.stdout, "(permanent, attempt 1 of")
	require.NotContains(t, run.stdout, "retrying in")
}

// The shipped example, as a responder drives it: every approval says what
// the step will change, a denial skips only that step, and a step whose
// work is already done asks nobody.
func TestExamplePlaybookApprovals(t *testing.T) {
	t.Parallel()
	t.Run("denying delete still asks for the derived credentials", func(t *testing.T) {
		t.Parallel()
		seed, err := os.ReadFile("../../examples/sandbox/seed.yaml")
		require.NoError(t, err)
		e := newE2EWithSeed(t, seed)
		run := e.stanch(nil, "run", "--playbook", e.example("playbooks/aws-key-leaked.yaml"), "--alert", e.example("alerts/manual-aws-key.json"), "--database", e.db)
		require.Equal(t, exitWaiting, run.code, run.stdout+run.stderr)
		runID := runIDOf(t, run.stdout)
		require.Contains(t, run.stdout, `waiting for approval of step "rotate"`)
		require.Contains(t, run.stdout, "• create a new access key for user ci-bot in account "+account)
		require.NotContains(t, run.stdout, "resumed", "nothing stopped")

		rotate := e.stanch(nil, "approve", runID, "rotate", "--by", "security-oncall", "--database", e.db)
		require.Equal(t, exitWaiting, rotate.code, rotate.stdout+rotate.stderr)
		require.Contains(t, rotate.stdout, `waiting for approval of step "delete"`)
		require.Contains(t, rotate.stdout, "⚠ delete access key "+leakedKey+" of user ci-bot in account "+account+" (irreversible)")

		deny := e.stanch(nil, "approve", runID, "delete", "--by", "security-oncall", "--deny", "--database", e.db)
		require.Equal(t, exitWaiting, deny.code, deny.stdout+deny.stderr)
		require.Contains(t, deny.stdout, `waiting for approval of step "contain_derived"`, "the denial skipped delete only")
		require.Contains(t, deny.stdout, "deactivate the derived access key AKIABACKDOORKEY00001 of user backdoor in account "+account)

		derived := e.stanch(nil, "approve", runID, "contain_derived", "--by", "security-oncall", "--database", e.db)
		require.Equal(t, exitOK, derived.code, derived.stdout+derived.stderr)
		status, ok := e.sb.KeyStatus(account, leakedKey)
		require.True(t, ok, "the deletion was denied: the leaked key stays, inactive")
		require.Equal(t, "Inactive", status)
		status, _ = e.sb.KeyStatus(account, "AKIABACKDOORKEY00001")
		require.Equal(t, "Inactive", status)
		show := e.stanch(nil, "runs", "show", runID, "--database", e.db)
		require.Regexp(t, `delete\s+aws.delete_key\s+denied`, show.stdout)
		require.NotContains(t, show.stdout, "run_resumed")
	})
	t.Run("a rotation that deletes the leaked key says so, and delete asks nobody", func(t *testing.T) {
		t.Parallel()
		e := newE2E(t) // ci-bot has two keys: the leaked one makes room
		run := e.stanch(nil, "run", "--playbook", e.example("playbooks/aws-key-leaked.yaml"), "--alert", e.example("alerts/manual-aws-key.json"), "--database", e.db)
		require.Equal(t, exitWaiting, run.code, run.stdout+run.stderr)
		runID := runIDOf(t, run.stdout)
		require.Contains(t, run.stdout, "⚠ delete the leaked access key "+leakedKey+" of user ci-bot in account "+account+" to make room for the new one")

		rotate := e.stanch(nil, "approve", runID, "rotate", "--by", "security-oncall", "--database", e.db)
		require.Equal(t, exitOK, rotate.code, rotate.stdout+rotate.stderr)
		require.Contains(t, rotate.stdout, "⚡ rotate       deleted the leaked access key "+leakedKey)
		require.Contains(t, rotate.stdout, "no approval asked: "+leakedKey+" is already gone from account "+account)
		show := e.stanch(nil, "runs", "show", runID, "--database", e.db)
		require.Contains(t, show.stdout, "approval_not_needed")
		require.Contains(t, show.stdout, "effect")
		require.Contains(t, show.stdout, "deleted the leaked access key "+leakedKey+" of user ci-bot in account "+account+" to make room for the new one (irreversible)")
	})
	t.Run("a user with no secret: no new key, no question, the run goes on", func(t *testing.T) {
		t.Parallel()
		seed, err := os.ReadFile("testdata/seed.yaml")
		require.NoError(t, err)
		text := string(seed)
		start := strings.Index(text, "    secrets:")
		end := strings.Index(text, "github:")
		require.True(t, start > 0 && end > start)
		e := newE2EWithSeed(t, []byte(text[:start]+text[end:]))
		run := e.stanch(nil, "run", "--playbook", e.example("playbooks/aws-key-leaked.yaml"), "--alert", e.example("alerts/manual-aws-key.json"), "--database", e.db)
		require.Equal(t, exitWaiting, run.code, run.stdout+run.stderr)
		require.Contains(t, run.stdout, "no approval asked: no secret iam-user/ci-bot in account "+account+": no consumer reads ci-bot's key from Secrets Manager, so no new key was created")
		require.Contains(t, run.stdout, `waiting for approval of step "delete"`, "the run went on to the deletion")
		require.Zero(t, e.sb.Count("CreateAccessKey"))
	})
}
