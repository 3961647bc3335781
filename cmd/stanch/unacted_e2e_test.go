package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/runner"
)

// Secrets of the GitHub alerts below: the literal of the paired
// aws_secret_access_key alert (otherKey's real secret in the sandbox) and of
// the one without a pair. Neither may appear anywhere stanch writes.
const (
	pairedSecret   = "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY"
	unpairedSecret = "Zq8WvT3nYc1KpL6xRb0JmF4hGd9sUe2aNo7iPk5E"
)

// unactedSeed is the e2e seed with Slack, a repository whose alerts the
// token may not read (the sandbox answers 404, as GitHub does for a token
// without permission), and two aws_secret_access_key alerts: one next to
// its aws_access_key_id alert, one alone.
func unactedSeed(t *testing.T) []byte {
	t.Helper()
	s := string(slackSeed(t))
	s = strings.Replace(s, "github:\n", "github:\n  no_access: [acme/locked-service]\n", 1)
	s = strings.Replace(s, "  alerts:\n", `  alerts:
    - {repo: acme/locked-service, number: 5, secret_type: aws_access_key_id, secret: `+leakedKey+`}
    - {repo: acme/payments-service, number: 43, secret_type: aws_access_key_id, secret: `+otherKey+`,
       locations: [{path: config/aws.py, line: 4, commit: 1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e}]}
    - {repo: acme/payments-service, number: 44, secret_type: aws_secret_access_key, secret: `+pairedSecret+`,
       locations: [{path: config/aws.py, line: 5, commit: 1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e}]}
    - {repo: acme/payments-service, number: 45, secret_type: aws_secret_access_key, secret: `+unpairedSecret+`,
       locations: [{path: legacy/creds.txt, line: 2, commit: 4f1c9d2a7e3b5c6d8e9f0a1b2c3d4e5f6a7b8c9d}]}
`, 1)
	return []byte(s)
}

func githubWebhook(repo string, number int, secretType string) []byte {
	return fmt.Appendf(nil, `{"action":"created","alert":{"number":%d,"secret_type":%q},"repository":{"full_name":%q}}`, number, secretType, repo)
}

// unactedMessages returns, by alert, the Slack messages about alerts that
// started no run.
func unactedMessages(e *e2e) map[string][]string {
	out := map[string][]string{}
	for _, m := range e.sb.SlackMessages(slackChannel) {
		if m.Metadata != nil && m.Metadata.EventPayload["run_id"] == "unacted" {
			key, _ := m.Metadata.EventPayload["key"].(string)
			out[key] = append(out[key], m.Text)
		}
	}
	return out
}

func (e *e2e) waitUnactedMessages(t *testing.T, log *syncBuffer, n int) map[string][]string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := unactedMessages(e)
		if len(got) >= n {
			return got
		}
		require.True(t, time.Now().Before(deadline), "%d of %d Slack messages about unacted alerts; serve log:\n%s", len(got), n, log.String())
		time.Sleep(20 * time.Millisecond)
	}
}

// resolveJobs returns the states of the resolve jobs in the store.
func (e *e2e) resolveJobs(t *testing.T) map[string]int {
	t.Helper()
	db, err := runner.OpenDatabase(context.Background(), e.db)
	require.NoError(t, err)
	defer db.Close()
	rows, err := db.SQL.Query(`SELECT state, attempt FROM river_job WHERE kind = 'stanch.resolve'`)
	require.NoError(t, err)
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var state string
		var attempt int
		require.NoError(t, rows.Scan(&state, &attempt))
		require.Equal(t, 1, attempt, "no resolution was retried")
		out[state]++
	}
	return out
}

// TestServeGitHubAlertsThatCannotBeActedOn sends stanch serve three GitHub
// webhooks: (a) an alert the token may not read (GitHub answers 404), (b)
// an aws_secret_access_key alert whose aws_access_key_id alert sits on the
// next line, (c) one without such a pair. (b) starts a run on the paired
// key id; (a) and (c) are not retried: each is kept with its reason
// (stanch alerts list, and a line under stanch runs list), logged at ERROR,
// and posted to the incident channel once. No secret appears anywhere.
func TestServeGitHubAlertsThatCannotBeActedOn(t *testing.T) {
	t.Parallel()
	e := newE2EWithSeed(t, unactedSeed(t))
	e.env = e.slackEnv()
	base, cmd, stderr := e.startServe(t, "unused")
	hook := base + "/hooks/github"
	require.Equal(t, http.StatusOK, signedGitHub(t, hook, "secret_scanning_alert", "d-a", githubWebhook("acme/locked-service", 5, "aws_access_key_id"), githubSecret))
	require.Equal(t, http.StatusOK, signedGitHub(t, hook, "secret_scanning_alert", "d-b", githubWebhook("acme/payments-service", 44, "aws_secret_access_key"), githubSecret))
	require.Equal(t, http.StatusOK, signedGitHub(t, hook, "secret_scanning_alert", "d-c", githubWebhook("acme/payments-service", 45, "aws_secret_access_key"), githubSecret))

	e.waitStatus(t, stderr, otherKey, "Inactive")
	msgs := e.waitUnactedMessages(t, stderr, 2)

	list := e.stanch(nil, "alerts", "list", "--json", "--database", e.db)
	require.Equal(t, 0, list.code, list.stderr)
	var unacted []map[string]any
	require.NoError(t, json.Unmarshal([]byte(list.stdout), &unacted), list.stdout)
	require.Len(t, unacted, 2)
	byKey := map[string]map[string]any{}
	for _, u := range unacted {
		byKey[u["dedup_key"].(string)] = u
	}
	a, c := byKey["github:acme/locked-service#5"], byKey["github:acme/payments-service#45"]
	require.NotNil(t, a, list.stdout)
	require.NotNil(t, c, list.stdout)
	require.Equal(t, "acme/locked-service#5", a["reference"])
	require.Contains(t, a["reason"], "GitHub answered 404 to get alert acme/locked-service#5: it does not exist, or the token or App lacks secret_scanning_alerts read permission on acme/locked-service")
	require.Contains(t, c["reason"], "holds the secret without its key id, and no aws_access_key_id or aws_temporary_access_key_id alert sits at the same place (legacy/creds.txt:2")
	require.EqualValues(t, 1, a["count"])

	text := e.stanch(nil, "alerts", "list", "--database", e.db)
	require.Equal(t, 0, text.code, text.stderr)
	require.Contains(t, text.stdout, "2 alert(s) could not be acted on and started no run")
	require.Contains(t, text.stdout, "github:acme/locked-service#5  (github acme/locked-service#5; 1 time(s), last ")
	runs := e.stanch(nil, "runs", "list", "--database", e.db)
	require.Equal(t, 0, runs.code, runs.stderr)
	require.True(t, strings.HasSuffix(runs.stdout, "2 alert(s) could not be acted on: see stanch alerts list\n"), runs.stdout)
	require.Contains(t, runs.stdout, otherKey, "(b) started a run on the paired key id")

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	_ = cmd.Wait()
	log := stderr.String()
	require.Equal(t, 2, strings.Count(log, `level=ERROR msg="alert cannot be acted on; it started no run"`), log)
	require.Equal(t, map[string]int{"cancelled": 2, "completed": 1}, e.resolveJobs(t))
	gets := 0
	for _, call := range e.sb.Calls() {
		if call.Action == "GetSecretScanningAlert" && strings.Contains(call.Params["path"], "locked-service") {
			gets++
		}
	}
	require.Equal(t, 1, gets, "the 404 was not retried")

	require.Len(t, msgs["github:acme/locked-service#5"], 1)
	require.Len(t, msgs["github:acme/payments-service#45"], 1)
	require.Contains(t, msgs["github:acme/locked-service#5"][0], "GitHub answered 404")
	require.NotContains(t, msgs, "github:acme/payments-service#44")

	var slack strings.Builder
	for _, m := range e.sb.SlackMessages(slackChannel) {
		slack.WriteString(m.Text + string(m.Blocks))
	}
	stored := dbFiles(t, e)
	for _, secret := range []string{pairedSecret, unpairedSecret} {
		for where, text := range map[string]string{"log": log, "alerts list": list.stdout + text.stdout, "runs list": runs.stdout, "Slack": slack.String(), "store": stored} {
			require.NotContains(t, text, secret, "secret in the %s", where)
		}
	}
}

// dbFiles returns the store's files, to look for secrets in.
func dbFiles(t *testing.T, e *e2e) string {
	t.Helper()
	path := strings.TrimPrefix(e.db, "file:")
	var b strings.Builder
	for _, p := range []string{path, path + "-wal"} {
		data, err := os.ReadFile(p)
		if err == nil {
			b.Write(data)
		}
	}
	require.NotZero(t, b.Len(), filepath.Base(path))
	return b.String()
}

// TestUnactedSlackMessageCrashAfterPosting kills stanch serve right after it
// posted the message about an unacted alert and before it recorded it; the
// restarted server finds the message by its metadata: one message.
func TestUnactedSlackMessageCrashAfterPosting(t *testing.T) {
	t.Parallel()
	e := newE2EWithSeed(t, unactedSeed(t))
	e.env = append(e.slackEnv(), "STANCH_CRASHPOINT=unacted:posted")
	base, cmd, stderr := e.startServe(t, "unused")
	require.Equal(t, http.StatusOK, signedGitHub(t, base+"/hooks/github", "secret_scanning_alert", "d-a", githubWebhook("acme/locked-service", 5, "aws_access_key_id"), githubSecret))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("serve was not killed at unacted:posted; log:\n%s", stderr.String())
	}
	require.Len(t, unactedMessages(e)["github:acme/locked-service#5"], 1, "posted before the crash")

	e.env = e.slackEnv()
	_, cmd, stderr = e.startServe(t, "unused")
	deadline := time.Now().Add(30 * time.Second)
	for {
		list := e.stanch(nil, "alerts", "list", "--json", "--database", e.db)
		require.Equal(t, 0, list.code, list.stderr)
		if strings.Contains(list.stdout, `"slack_ts"`) {
			break
		}
		require.True(t, time.Now().Before(deadline), "the message was never recorded; log:\n%s", stderr.String())
		time.Sleep(50 * time.Millisecond)
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	_ = cmd.Wait()
	require.Contains(t, stderr.String(), "found the message an interrupted attempt posted")
	require.Len(t, unactedMessages(e)["github:acme/locked-service#5"], 1, "exactly one message")
	require.Equal(t, 1, e.sb.EffectiveCount("chat.postMessage"))
}
