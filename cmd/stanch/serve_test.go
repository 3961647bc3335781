package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/stanchhq/stanch/internal/testkit"
	"github.com/stanchhq/stanch/sandbox"
	"github.com/stretchr/testify/require"
)

// startServe runs `stanch serve` against the test's sandbox and returns its
// base URL.
func (e *e2e) startServe(t *testing.T, secret string, extra ...string) (string, *exec.Cmd, *syncBuffer) {
	t.Helper()
	return e.startServeWith(t, e.example("playbooks/aws-key-leaked.yaml"), secret, extra...)
}

func (e *e2e) startServeWith(t *testing.T, playbook, secret string, extra ...string) (string, *exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(e.bin, append([]string{"serve", "--listen", "127.0.0.1:0", "--playbooks", playbook, "--database", e.db, "--log-level", "info",
		"--github-api-url", e.url + "/api/v3/"}, extra...)...)
	cmd.Env = append(os.Environ(), "AWS_ENDPOINT_URL="+e.url, "AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID="+sandbox.ResponderKeyID, "AWS_SECRET_ACCESS_KEY="+sandbox.ResponderSecret,
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "HOME="+e.dir, "STANCH_EVENTBRIDGE_SECRET="+secret,
		"STANCH_GITHUB_WEBHOOK_SECRET="+githubSecret, "STANCH_GITHUB_TOKEN=ghp_sandboxTokenForStanchTests0000000000")
	cmd.Env = append(cmd.Env, e.env...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	out := bufio.NewReader(stdout)
	line, err := out.ReadString('\n')
	require.NoError(t, err, stderr.String())
	_, rest, ok := strings.Cut(line, "http://")
	require.True(t, ok, line)
	addr, _, _ := strings.Cut(rest, ",")
	// The rest of standard output joins the log: a test sees all of it.
	go func() { _, _ = out.WriteTo(stderr) }()
	return "http://" + addr, cmd, stderr
}

// syncBuffer is a bytes.Buffer that the process's output copier and the
// test may use at the same time.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func post(t *testing.T, url, header, secret string, body []byte) int {
	t.Helper()
	code, _ := postAnswer(t, url, header, secret, body)
	return code
}

// postAnswer is post that also returns the body of the answer.
func postAnswer(t *testing.T, url, header, secret string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if header != "" {
		req.Header.Set(header, secret)
	}
	return answer(t, req)
}

func answer(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, string(body)
}

func TestServeContainsKeyFromEventBridge(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	const secret = "eventbridge-connection-api-key"
	base, cmd, stderr := e.startServe(t, secret)
	event, err := os.ReadFile(filepath.Join(e.root, "triggers/testdata/health-credentials-exposed.json"))
	require.NoError(t, err)
	hook := base + "/hooks/aws/eventbridge"

	require.Equal(t, http.StatusUnauthorized, post(t, hook, "X-Stanch-Token", "wrong", event))
	require.Equal(t, http.StatusUnauthorized, post(t, hook, "", "", event))
	require.Equal(t, http.StatusRequestEntityTooLarge, post(t, hook, "X-Stanch-Token", secret, bytes.Repeat([]byte(" "), 2<<20)))
	require.Equal(t, http.StatusBadRequest, post(t, hook, "X-Stanch-Token", secret, []byte(`{"hello":"world"}`)), "nothing in it is an EventBridge event")
	require.Equal(t, http.StatusOK, post(t, hook, "X-Stanch-Token", secret, []byte(`{"source":"aws.ec2","detail-type":"x","detail":{}}`)), "an event stanch does not act on is read, and ignored")
	require.Zero(t, e.sb.Count("UpdateAccessKey"), "nothing rejected reaches AWS")

	require.Equal(t, http.StatusOK, post(t, hook, "X-Stanch-Token", secret, event))
	require.Equal(t, http.StatusOK, post(t, hook, "X-Stanch-Token", secret, event), "a redelivery is accepted and deduplicated")
	e.waitStatus(t, stderr, leakedKey, "Inactive")

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err, "graceful shutdown exits 0; log:\n%s", stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop on SIGTERM")
	}
	log := stderr.String()
	require.Contains(t, log, "reason=\"missing or wrong X-Stanch-Token\"")
	require.NotContains(t, log, "AWS_RISK_CREDENTIALS_EXPOSED-1a2b3c4d\",\"service", "rejections never log the body")
	require.Equal(t, 1, e.sb.EffectiveCount("UpdateAccessKey"))
	require.Equal(t, 1, e.runCount(), "the redelivery started no second run")
}

const githubSecret = "It's a Secret to Everybody"

func signedGitHub(t *testing.T, url, event, delivery string, body []byte, secret string) int {
	t.Helper()
	code, _ := signedGitHubAnswer(t, url, event, delivery, body, secret)
	return code
}

// signedGitHubAnswer is signedGitHub that also returns the body of the
// answer.
func signedGitHubAnswer(t *testing.T, url, event, delivery string, body []byte, secret string) (int, string) {
	t.Helper()
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", delivery)
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	return answer(t, req)
}

func TestServeContainsKeyFromGitHubSecretScanning(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	base, cmd, stderr := e.startServe(t, "unused-eventbridge-secret")
	hook := base + "/hooks/github"
	created := []byte(`{"action":"created","alert":{"number":42,"secret_type":"aws_access_key_id","secret_type_display_name":"Amazon AWS Access Key ID","html_url":"https://github.com/acme/payments-service/security/secret-scanning/42"},
"repository":{"id":1,"name":"payments-service","full_name":"acme/payments-service","private":true},"organization":{"login":"acme"},"sender":{"login":"octocat"}}`)

	require.Equal(t, http.StatusOK, signedGitHub(t, hook, "ping", "d-0", []byte(`{"zen":"Keep it logically awesome."}`), githubSecret))
	require.Equal(t, http.StatusUnauthorized, signedGitHub(t, hook, "secret_scanning_alert", "d-1", created, "wrong secret"))
	require.Zero(t, e.sb.Count("GetSecretScanningAlert"), "a forged delivery reaches nothing")

	// The same delivery 50 times (replays of one id, and redeliveries with
	// new ids): one run.
	for i := range 50 {
		delivery := "d-2"
		if i%2 == 1 {
			delivery = fmt.Sprintf("d-redelivery-%d", i)
		}
		require.Equal(t, http.StatusOK, signedGitHub(t, hook, "secret_scanning_alert", delivery, created, githubSecret))
	}
	e.waitStatus(t, stderr, leakedKey, "Inactive")
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	_ = cmd.Wait()

	require.Equal(t, 1, e.sb.Count("GetSecretScanningAlert"), "the alert is fetched once, by a worker")
	require.Equal(t, 1, e.sb.EffectiveCount("UpdateAccessKey"))
	list := e.stanch(nil, "runs", "list", "--json", "--database", e.db)
	var runs []map[string]any
	require.NoError(t, json.Unmarshal([]byte(list.stdout), &runs), list.stdout)
	require.Len(t, runs, 1)
	require.Equal(t, "github:acme/payments-service#42", runs[0]["dedup_key"])
	show := e.stanch(nil, "runs", "show", runs[0]["id"].(string), "--database", e.db)
	require.Contains(t, show.stdout, leakedKey)
}

func TestServePollsSQS(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	queue := e.url + "/111122223333/stanch-alerts"
	client := sqs.NewFromConfig(testkit.AWSConfig(e.url, sandbox.ResponderKeyID, sandbox.ResponderSecret))
	event, err := os.ReadFile(filepath.Join(e.root, "triggers/testdata/health-credentials-exposed.json"))
	require.NoError(t, err)
	ctx := context.Background()
	for _, body := range []string{"not an event at all", string(event)} {
		_, err := client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(queue), MessageBody: aws.String(body)})
		require.NoError(t, err, "the SDK checks the sandbox's MD5 of the body")
	}

	_, cmd, stderr := e.startServe(t, "unused", "--sqs-queue-url", queue)
	deadline := time.Now().Add(30 * time.Second)
	for e.sb.QueueDepth(account, "stanch-alerts") > 0 {
		require.True(t, time.Now().Before(deadline), "queue never drained; log:\n%s", stderr.String())
		time.Sleep(20 * time.Millisecond)
	}
	e.waitStatus(t, stderr, leakedKey, "Inactive")
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait())
	log := stderr.String()
	require.Contains(t, log, "poison SQS message deleted")
	require.Contains(t, log, "received=2 accepted=1 poison=1")
	// The poison message is kept where people look, not only logged.
	list := e.stanch(nil, "alerts", "list", "--json", "--database", e.db)
	require.Equal(t, 0, list.code, list.stderr)
	var unacted []map[string]any
	require.NoError(t, json.Unmarshal([]byte(list.stdout), &unacted), list.stdout)
	require.Len(t, unacted, 1)
	require.Equal(t, "sqs", unacted[0]["source"])
	require.Contains(t, unacted[0]["reason"], "no EventBridge event in it: not an EventBridge event: the body is not JSON")
}

// TestServeGitHubBackstop contains a key whose webhook never arrived: the
// backstop lists the repository's open alerts.
func TestServeGitHubBackstop(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	_, cmd, stderr := e.startServe(t, "unused", "--github-poll-repo", "acme/payments-service", "--github-poll-interval", "1h")
	e.waitStatus(t, stderr, leakedKey, "Inactive")
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait())
	require.Equal(t, 1, e.sb.Count("ListSecretScanningAlertsForRepo"))
	require.Equal(t, 1, e.runCount())
}

// TestServeKilledAfterAcknowledging loses nothing: the server is SIGKILLed
// right after it acknowledged 100 alerts; after a restart every run exists
// and finishes.
func TestServeKilledAfterAcknowledging(t *testing.T) {
	t.Parallel()
	const n = 100
	var seed strings.Builder
	fmt.Fprintf(&seed, "accounts:\n  - id: %q\n    users:\n      - %s\n", account, sandbox.ResponderSeedUser)
	for i := range n {
		fmt.Fprintf(&seed, "      - name: user%03d\n        keys: [{id: AKIAKILLTEST%08d, secret: killTestSecretKillTestSecretKillTest%04d}]\n", i, i, i)
	}
	e := newE2EWithSeed(t, []byte(seed.String()))
	const secret = "eventbridge-secret"
	base, cmd, _ := e.startServeWith(t, "testdata/contain.yaml", secret)
	for i := range n {
		key := fmt.Sprintf("AKIAKILLTEST%08d", i)
		event := fmt.Sprintf(`{"version":"0","id":"k-%d","detail-type":"AWS Health Event","source":"aws.health","account":%q,"resources":[%q],"detail":{"eventArn":"arn:aws:health:us-east-1::event/RISK/AWS_RISK_CREDENTIALS_EXPOSED/k-%d","eventTypeCode":"AWS_RISK_CREDENTIALS_EXPOSED","eventMetadata":{"publicKey":%q}}}`, i, account, key, i, key)
		require.Equal(t, http.StatusOK, post(t, base+"/hooks/aws/eventbridge", "X-Stanch-Token", secret, []byte(event)))
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()

	_, restarted, stderr := e.startServeWith(t, "testdata/contain.yaml", secret)
	deadline := time.Now().Add(60 * time.Second)
	for {
		list := e.stanch(nil, "runs", "list", "--json", "--limit", "0", "--database", e.db)
		var runs []map[string]any
		require.NoError(t, json.Unmarshal([]byte(list.stdout), &runs), list.stdout+list.stderr)
		done := 0
		for _, r := range runs {
			if r["status"] == "succeeded" {
				done++
			}
		}
		if len(runs) == n && done == n {
			break
		}
		require.True(t, time.Now().Before(deadline), "%d runs, %d succeeded; log:\n%s", len(runs), done, stderr.String())
		time.Sleep(100 * time.Millisecond)
	}
	require.NoError(t, restarted.Process.Signal(syscall.SIGTERM))
	_ = restarted.Wait()
	require.Equal(t, n, e.sb.EffectiveCount("UpdateAccessKey"), "every key contained exactly once")
}
