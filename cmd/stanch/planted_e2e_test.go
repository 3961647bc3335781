package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/internal/planted"
	"github.com/stanchhq/stanch/internal/testkit"
	"github.com/stanchhq/stanch/sandbox"
)

// The keys whose leaks carry the planted secrets, one per path into stanch.
const (
	keyGitHubPair = "AKIAPLANTGITHUBPAIR1" // its secret is a GitHub alert's literal
	keyGitHubPath = "AKIAPLANTGITHUBPATH1" // found in a file whose path holds a secret
	keyGuardDuty  = "AKIAPLANTGUARDDUTY01" // EventBridge: a finding whose title holds one
	keyHealth     = "AKIAPLANTHEALTHEB001" // EventBridge: exposed at a URL whose query holds one
	keySNS        = "AKIAPLANTSNSPATH0001" // SNS: a finding whose title holds one
	keySQS        = "AKIAPLANTSQSPATH0001" // SQS: exposed at a URL whose path holds one
	keyManual     = "AKIAPLANTRUNALERT001" // stanch run --alert: one in every field
	keyTruffleHog = "AKIAPLANTTRUFFLEHOG1" // stanch ingest: its secret right after it
	keyGitleaks   = "AKIAPLANTGITLEAKS001" // stanch ingest: a match and a link with one
)

var plantedKeys = []string{keyGitHubPair, keyGitHubPath, keyGuardDuty, keyHealth, keySNS, keySQS, keyManual, keyTruffleHog, keyGitleaks}

// plantedSeed is the sandbox: one IAM user per key, the GitHub alerts, the
// SQS queue, and the Slack workspace.
func plantedSeed(t *testing.T) []byte {
	t.Helper()
	var b strings.Builder
	b.WriteString("accounts:\n  - id: \"111122223333\"\n    users:\n")
	fmt.Fprintf(&b, "      - %s\n", sandbox.ResponderSeedUser)
	for i, key := range plantedKeys {
		fmt.Fprintf(&b, "      - {name: planted-%d, keys: [{id: %s, secret: seedSecretOfThePlantedUserNumber%08d}]}\n", i, key, i)
	}
	b.WriteString("    queues: [stanch-alerts]\n")
	fmt.Fprintf(&b, `github:
  token: %s
  alerts:
    - {repo: acme/payments-service, number: 42, secret_type: aws_access_key_id, secret: %s,
       locations: [{path: deploy/settings.py, line: 12, commit: 4f1c9d2a7e3b5c6d8e9f0a1b2c3d4e5f6a7b8c9d}]}
    - {repo: acme/payments-service, number: 43, secret_type: aws_secret_access_key, secret: %q,
       locations: [{path: deploy/settings.py, line: 13, commit: 4f1c9d2a7e3b5c6d8e9f0a1b2c3d4e5f6a7b8c9d}]}
    - {repo: acme/payments-service, number: 44, secret_type: aws_access_key_id, secret: %s,
       locations: [{path: %q, line: 3, commit: 1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e}]}
slack:
  token: %s
  channels:
    - {id: %s, name: sec-incidents}
    - {id: C0SECLEADS, name: security-leads}
  users:
    - {id: U0ALICE, name: alice}
  usergroups:
    - {id: S0SECURITY, handle: security, users: [U0ALICE]}
    - {id: S0SECLEADS, handle: security-leads, users: []}
`, sandboxGitHubToken, keyGitHubPair, planted.InLiteral, keyGitHubPath, "config/"+planted.InPath+"/aws.py", slackToken, slackChannel)
	return []byte(b.String())
}

// plantedIssuePlaybook opens a GitHub issue for every alert with what the
// alert says: its title, where it leaked, who owns the key.
const plantedIssuePlaybook = `name: planted-issue
description: Open an issue about every leaked key with what the alert says.
on:
  providers: [aws]
steps:
  - id: issue
    action: github.open_issue
    with:
      repository: acme/security-incidents
      title: "${{ alert.title }}"
      body: "${{ alert.location.url + ' ' + alert.location.repo + '/' + alert.location.path + ' ' + alert.credential.principal + ' ' + alert.dedup_key }}"
`

// leakyCIURL is a CI job's URL with the secret in its query, URL-encoded.
var leakyCIURL = "https://ci.example.com/job/deploy/42/console?AWS_SECRET_ACCESS_KEY=" + neturl.QueryEscape(planted.InURL) + "&branch=main"

// TestPlantedSecretsGoNowhere plants secrets in every field of alerts that
// come in by every path (GitHub webhook and REST resolver, EventBridge
// GuardDuty and Health, SNS, SQS, stanch run --alert, stanch ingest of
// truffleHog and gitleaks reports), lets the real stanch serve (logging at
// debug, Slack and GitHub configured) work every run to its end, and then
// looks for any 16 characters of any planted secret, as written or
// URL-decoded, in: the database files (while serve runs and after it
// stopped), serve's output, every Slack message and reply as posted and as
// updated, every call the sandbox received (GitHub comments and issues
// included), every HTTP answer, and what the CLI prints.
func TestPlantedSecretsGoNowhere(t *testing.T) {
	t.Parallel()
	e := newE2EWithSeed(t, plantedSeed(t))
	seen := map[string]string{} // where → what was there
	keep := func(where, text string) { seen[where] += text + "\n" }
	github := []string{"STANCH_GITHUB_TOKEN=" + sandboxGitHubToken, "STANCH_GITHUB_API_URL=" + e.url + "/api/v3/"}
	examplePlaybook := e.example("playbooks/aws-key-leaked.yaml")
	issuePlaybook := e.writeFile("planted-issue.yaml", plantedIssuePlaybook)

	// stanch run --alert, before serve holds the store: a stanch Alert
	// with a secret in every field it has.
	manual, err := json.Marshal(map[string]any{
		"source": "manual", "title": "Key and secret " + planted.Random + " pasted in chat",
		"credential": map[string]any{"id": keyManual, "principal": "planted-6/" + planted.NoDigit},
		"location":   map[string]any{"repo": "acme/infra", "path": "deploy/" + planted.InPath + "/settings.py", "commit": planted.NoUpper, "url": leakyCIURL},
		"raw":        map[string]any{"Secret": keyManual + planted.AfterKeyID, "note": "the secret was " + planted.InTitle},
	})
	require.NoError(t, err)
	alertFile := e.writeFile("manual.json", string(manual))
	res := e.stanch(append(e.slackEnv(), github...), "run", "--playbook", examplePlaybook, "--alert", alertFile, "--database", e.db, "--log-level", "debug")
	require.Equal(t, exitWaiting, res.code, "the run waits for the approval of delete:\n%s%s", res.stdout, res.stderr)
	keep("stanch run --alert", res.stdout+res.stderr)

	signer, err := sandbox.NewSNSSigner()
	require.NoError(t, err)
	certs := newSNSCertHost(t, signer)
	const topic = "arn:aws:sns:us-east-1:111122223333:stanch-guardduty"
	const ebSecret = "eventbridge-connection-api-key"
	queue := e.url + "/111122223333/stanch-alerts"
	e.env = append(e.slackEnv(), "HTTPS_PROXY="+certs.proxyURL, "https_proxy="+certs.proxyURL, "NO_PROXY=", "no_proxy=", "SSL_CERT_FILE="+certs.caFile)
	base, cmd, serveLog := e.startServeWith(t, examplePlaybook, ebSecret, "--playbooks", issuePlaybook, "--log-level", "debug",
		"--sns-topic", topic, "--sqs-queue-url", queue)

	// GitHub: a webhook for the secret's alert (its key id comes from the
	// alert at the same place) and one for a key found in a secret path.
	for _, number := range []int{43, 44} {
		code, body := signedGitHubAnswer(t, base+"/hooks/github", "secret_scanning_alert", fmt.Sprintf("d-%d", number),
			[]byte(fmt.Sprintf(`{"action":"created","alert":{"number":%d,"secret_type":"aws_secret_access_key"},"repository":{"full_name":"acme/payments-service"}}`, number)), githubSecret)
		require.Equal(t, http.StatusOK, code, body)
		keep("the answer to a GitHub webhook", body)
	}

	// EventBridge: a GuardDuty finding with a secret in its title, a Health
	// event exposed at a URL with one in its query, and findings whose key
	// id field holds one (refused, or ignored).
	hook := base + "/hooks/aws/eventbridge"
	finding := guardDutyFinding(t, e.root, keyGuardDuty, "planted-2", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb01")
	finding = strings.Replace(finding, "API ListAccessKeys was invoked from a known malicious IP address.", "Credentials "+planted.InTitle+" were used from a known malicious IP address.", 1)
	health := healthEvent(t, e.root, keyHealth, "planted-3", "health-eb", leakyCIURL)
	for _, body := range []string{finding, health,
		guardDutyFinding(t, e.root, planted.Random, "planted-0", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb02"),
		guardDutyFinding(t, e.root, keyGuardDuty+planted.AfterKeyID, "planted-0", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb03"),
		"[" + guardDutyFinding(t, e.root, planted.NoUpper, "planted-0", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb04") + `,{"source":"` + planted.NoDigit + `","detail-type":"x","detail":{}}]`,
	} {
		_, answer := postAnswer(t, hook, "X-Stanch-Token", ebSecret, []byte(body))
		keep("the answer to an EventBridge delivery", answer)
	}

	// SNS: a finding with a secret in its title.
	snsFinding := guardDutyFinding(t, e.root, keySNS, "planted-4", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb05")
	snsFinding = strings.Replace(snsFinding, "API ListAccessKeys was invoked from a known malicious IP address.", "Key used with its secret "+planted.NoUpper+" from a known malicious IP address.", 1)
	code, body := postAnswer(t, base+"/hooks/aws/sns", "", "", signer.Notification(topic, snsFinding, 1))
	require.Equal(t, http.StatusOK, code, body)
	keep("the answer to SNS", body)

	// SQS: a Health event about a key exposed at a URL whose path holds a
	// secret.
	client := sqs.NewFromConfig(testkit.AWSConfig(e.url, sandbox.ResponderKeyID, sandbox.ResponderSecret))
	_, err = client.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(queue),
		MessageBody: aws.String(healthEvent(t, e.root, keySQS, "planted-5", "health-sqs", "https://gist.githubusercontent.com/anon/raw/"+planted.NoDigit+"/creds.txt"))})
	require.NoError(t, err)

	// stanch ingest, beside serve: truffleHog found a key with its secret
	// right after it, in a file whose path holds another; gitleaks found a
	// key and its secret, linked at a URL with one.
	trufflehog := fmt.Sprintf(`{"SourceMetadata":{"Data":{"Github":{"commit":"4f1c9d2a7e3b5c6d8e9f0a1b2c3d4e5f6a7b8c9d","file":"src/%s/main.go","repository":"https://github.com/acme/api.git","link":%q,"line":4}}},"DetectorName":"AWS","Verified":true,"Raw":%q,"RawV2":%q,"Redacted":%q,"ExtraData":{"account":"111122223333","arn":"arn:aws:iam::111122223333:user/planted-7"}}`,
		planted.InPath, leakyCIURL, keyTruffleHog, keyTruffleHog+planted.AfterKeyID, keyTruffleHog)
	gitleaks := fmt.Sprintf(`[{"RuleID":"aws-access-token","Description":"AWS","File":"infra/%s/terraform.tfvars","StartLine":7,"Commit":"4f1c9d2a7e3b5c6d8e9f0a1b2c3d4e5f6a7b8c9d","Link":%q,"Match":%q,"Secret":%q,"Fingerprint":"4f1c9d2a:infra/terraform.tfvars:aws-access-token:7"}]`,
		planted.InPath, leakyCIURL, "aws_access_key_id = "+keyGitleaks+" aws_secret_access_key = "+planted.NoUpper, keyGitleaks)
	for name, report := range map[string]string{"trufflehog.jsonl": trufflehog, "gitleaks.json": gitleaks} {
		res := e.stanch(nil, "ingest", "--playbooks", examplePlaybook, "--playbooks", issuePlaybook, "--database", e.db, "--log-level", "debug", e.writeFile(name, report))
		require.Equal(t, exitOK, res.code, "%s:\n%s%s", name, res.stdout, res.stderr)
		keep("stanch ingest", res.stdout+res.stderr)
	}

	// Every run to its end: the example playbook asks before deleting the
	// key (it has no secret in Secrets Manager, so rotating asks nobody).
	const wantRuns = 9 + 8 // the example playbook for every alert, the issue one for all but stanch run's
	deadline := time.Now().Add(3 * time.Minute)
	approved := map[string]bool{}
	for {
		list := e.stanch(nil, "runs", "list", "--json", "--limit", "0", "--database", e.db)
		require.Equal(t, exitOK, list.code, list.stderr)
		var runs []struct {
			ID, Status, Playbook string
			WaitingStep          string `json:"waiting_step"`
		}
		require.NoError(t, json.Unmarshal([]byte(list.stdout), &runs), list.stdout)
		done := 0
		for _, r := range runs {
			switch {
			case r.Status == "succeeded":
				done++
			case r.Status == "failed" || r.Status == "cancelled":
				require.Failf(t, "a run did not succeed", "%s (%s) %s; serve's log:\n%s", r.ID, r.Playbook, r.Status, serveLog.String())
			case r.Status == "waiting_approval" && !approved[r.ID+r.WaitingStep]:
				approved[r.ID+r.WaitingStep] = true
				res := e.stanch(nil, "approve", r.ID, r.WaitingStep, "--by", "security-oncall", "--database", e.db)
				require.Contains(t, []int{exitOK, exitWaiting}, res.code, res.stdout+res.stderr)
				keep("stanch approve", res.stdout+res.stderr)
			}
		}
		if len(runs) == wantRuns && done == wantRuns {
			break
		}
		require.True(t, time.Now().Before(deadline), "%d runs, %d succeeded:\n%s\nserve's log:\n%s", len(runs), done, list.stdout, serveLog.String())
		time.Sleep(200 * time.Millisecond)
	}
	for _, key := range plantedKeys {
		_, exists := e.sb.KeyStatus(account, key)
		require.False(t, exists, "%s was contained, then deleted with approval", key)
	}
	for _, number := range []int{43, 44} {
		got, ok := e.sb.GitHubAlert("acme/payments-service", number)
		require.True(t, ok)
		require.Equal(t, "resolved", got.State, "alert #%d", number)
		keep("a GitHub resolution comment", got.ResolutionComment)
	}
	issues := e.sb.GitHubIssues("acme/security-incidents")
	require.Len(t, issues, 8)
	for _, i := range issues {
		keep("a GitHub issue", i.Title+"\n"+i.Body)
	}

	// The database, while serve holds it.
	planted.RequireNoneInFiles(t, "while serve runs", filepath.Join(e.dir, "stanch.db*"))
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait())
	planted.RequireNoneInFiles(t, "after serve stopped", filepath.Join(e.dir, "stanch.db*"))
	keep("serve's output (debug)", serveLog.String())
	require.Contains(t, serveLog.String(), "level=DEBUG", "serve logged at debug")

	// What the CLI shows.
	list := e.stanch(nil, "runs", "list", "--json", "--limit", "0", "--database", e.db)
	keep("stanch runs list --json", list.stdout+list.stderr)
	keep("stanch runs list", e.stanch(nil, "runs", "list", "--limit", "0", "--database", e.db).stdout)
	var runs []struct{ ID string }
	require.NoError(t, json.Unmarshal([]byte(list.stdout), &runs))
	for _, r := range runs {
		for _, args := range [][]string{{"runs", "show", r.ID, "--json"}, {"runs", "show", r.ID}} {
			res := e.stanch(nil, append(args, "--database", e.db)...)
			require.Equal(t, exitOK, res.code, res.stderr)
			keep("stanch "+strings.Join(args[:2], " "), res.stdout+res.stderr)
		}
	}
	for _, args := range [][]string{{"alerts", "list"}, {"alerts", "list", "--json"}} {
		res := e.stanch(nil, append(args, "--database", e.db)...)
		keep("stanch "+strings.Join(args, " "), res.stdout+res.stderr)
	}

	// Slack: every message and reply as it is now, every post and update
	// as it was sent, and every ephemeral.
	slack := 0
	for _, ch := range []string{slackChannel, "C0SECLEADS"} {
		for _, m := range e.sb.SlackMessages(ch) {
			keep("a Slack message", m.Text+"\n"+string(m.Blocks))
			slack++
		}
	}
	require.GreaterOrEqual(t, slack, 9, "an incident message per run of the example playbook")
	for _, m := range e.sb.SlackEphemerals() {
		keep("a Slack ephemeral message", m.Text+"\n"+string(m.Blocks))
	}
	var stanchCalls []sandbox.Call
	for _, c := range e.sb.Calls() {
		if c.Action != "SendMessage" { // the test's own, to the queue
			stanchCalls = append(stanchCalls, c)
		}
	}
	calls, err := json.Marshal(stanchCalls)
	require.NoError(t, err)
	keep("the calls the sandbox received (AWS, Slack, GitHub)", string(calls))

	wheres := make([]string, 0, len(seen))
	for where := range seen {
		wheres = append(wheres, where)
	}
	slices.Sort(wheres)
	for _, where := range wheres {
		planted.RequireNone(t, where, seen[where])
	}
	// And the alerts still said what leaked, less the secret.
	require.Contains(t, seen["a GitHub issue"], "AWS_SECRET_ACCESS_KEY=[REDACTED]&branch=main")
	require.Contains(t, seen["a GitHub issue"], "UnauthorizedAccess:IAMUser/MaliciousIPCaller: Credentials [REDACTED] were used")
}

// healthEvent is the sample AWS Health event about key, owned by user,
// exposed at exposedURL.
func healthEvent(t *testing.T, root, key, user, id, exposedURL string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "triggers/testdata/health-credentials-exposed.json"))
	require.NoError(t, err)
	s := strings.ReplaceAll(string(data), "AKIAIOSFODNN7EXAMPLE", key)
	s = strings.ReplaceAll(s, `"userName": "ci-bot"`, `"userName": "`+user+`"`)
	s = strings.ReplaceAll(s, "the IAM user ci-bot", "the IAM user "+user)
	s = strings.ReplaceAll(s, "AWS_RISK_CREDENTIALS_EXPOSED-1a2b3c4d", "AWS_RISK_CREDENTIALS_EXPOSED-"+id)
	return strings.ReplaceAll(s, "https://github.com/acme/payments-service/blob/4f1c9d2/deploy/settings.py", exposedURL)
}
