package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/runner"
	"github.com/stanchhq/stanch/sandbox"
)

// The pieces of TestThreeReplicasSurviveKills: a sandbox whose AWS calls
// are slow and counted while in flight, a fresh PostgreSQL database, and
// `stanch serve` replicas that can be killed, stopped and restarted. Each
// process a replica slot runs (each incarnation) signs its AWS calls with
// an access key of its own, so that the sandbox's call log says which
// process made every call.

const (
	replicaAccount     = "111122223333"
	replicaHookSecret  = "replica-eventbridge-secret"
	replicaSlackToken  = "xoxb-sandbox-stanch-replicas"
	replicaSlackChanID = "C0SECINCIDENTS"
	// replicaIncarnations bounds the processes a test may start (three
	// replicas, then one per restart).
	replicaIncarnations = 12
)

// The playbook the replicas run: containment, the session cutoff, and the
// incident message in Slack. Retries ride out a slow or restarting
// dependency; nothing in it waits for people, so every run ends.
const replicaPlaybook = `name: replicas
description: containment on several replicas
on:
  providers: [aws]
  credential_kinds: [access_key]
steps:
  - id: identify
    action: aws.identify_key
    with:
      access_key_id: ${{ alert.credential.id }}
    retry: {attempts: 5, backoff: 200ms, max_backoff: 2s}
  - id: deactivate
    action: aws.deactivate_key
    if: steps.identify.outputs.user_name != ""
    retry: {attempts: 5, backoff: 200ms, max_backoff: 2s}
  - id: revoke_sessions
    action: aws.revoke_sessions
    if: steps.identify.outputs.user_name != ""
    retry: {attempts: 5, backoff: 200ms, max_backoff: 2s}
  - id: tell
    action: slack.notify
    with:
      channel: "#sec-incidents"
    retry: {attempts: 5, backoff: 200ms, max_backoff: 2s}
`

var replicaSteps = []string{"identify", "deactivate", "revoke_sessions", "tell"}

func replicaLeakedKey(i int) string  { return fmt.Sprintf("AKIALEAKED%010d", i) }
func replicaLeakedUser(i int) string { return fmt.Sprintf("leak-%03d", i) }

// replicaResponderKey is the access key incarnation n signs with.
func replicaResponderKey(n int) string { return fmt.Sprintf("AKIASTANCHREPLICA%03d", n) }

func replicaSeedYAML(keys int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "accounts:\n  - id: %q\n    users:\n", replicaAccount)
	for n := range replicaIncarnations {
		fmt.Fprintf(&b, "      - name: stanch-replica-%02d\n        keys: [{id: %s, secret: replicaSecretReplicaSecretReplicaSec%04d}]\n", n, replicaResponderKey(n), n)
	}
	for i := range keys {
		fmt.Fprintf(&b, "      - name: %s\n        keys: [{id: %s, secret: leakedSecretLeakedSecretLeakedSecre%05d}]\n", replicaLeakedUser(i), replicaLeakedKey(i), i)
	}
	fmt.Fprintf(&b, "slack:\n  token: %s\n  channels:\n    - {id: %s, name: sec-incidents}\n", replicaSlackToken, replicaSlackChanID)
	return b.String()
}

// replicaHealthEvent is an AWS Health AWS_RISK_CREDENTIALS_EXPOSED event
// about key, as an EventBridge API destination posts it.
func replicaHealthEvent(i int, key string) []byte {
	return []byte(fmt.Sprintf(`{"version":"0","id":"replica-%d","detail-type":"AWS Health Event","source":"aws.health","account":%q,"time":"2026-11-28T12:00:00Z","region":"us-east-1","resources":[%q],`+
		`"detail":{"eventArn":"arn:aws:health:us-east-1::event/RISK/AWS_RISK_CREDENTIALS_EXPOSED/replica-%d","service":"RISK","eventTypeCode":"AWS_RISK_CREDENTIALS_EXPOSED","eventTypeCategory":"issue",`+
		`"eventMetadata":{"accountId":%q,"publicKey":%q},"affectedEntities":[{"entityValue":%q}]}}`, i, replicaAccount, key, i, replicaAccount, key, key))
}

// awsFront is the sandbox behind a random latency per AWS call (not per
// Slack call), counting the calls in flight by the access key that signs
// them.
type awsFront struct {
	sb       *sandbox.Sandbox
	min, max time.Duration
	mu       sync.Mutex
	inflight map[string]int
}

func (f *awsFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, cred, signed := strings.Cut(r.Header.Get("Authorization"), "Credential=")
	if !signed {
		f.sb.ServeHTTP(w, r)
		return
	}
	key, _, _ := strings.Cut(cred, "/")
	f.mu.Lock()
	f.inflight[key]++
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inflight[key]--
		f.mu.Unlock()
	}()
	d := f.min + rand.N(f.max-f.min+1)
	select {
	case <-time.After(d):
	case <-r.Context().Done():
		return // the caller died or gave up
	}
	f.sb.ServeHTTP(w, r)
}

// inFlight is how many AWS calls signed with key are being answered.
func (f *awsFront) inFlight(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.inflight[key]
}

// freshReplicaDatabase creates a PostgreSQL database of the test's own on
// the server STANCH_TEST_POSTGRES names, dropped at the end.
func freshReplicaDatabase(t *testing.T, base string) string {
	t.Helper()
	ctx := context.Background()
	admin, err := sql.Open("pgx", base)
	require.NoError(t, err)
	defer admin.Close()
	name := fmt.Sprintf("stanch_replicas_%d_%d", os.Getpid(), time.Now().UnixNano())
	_, err = admin.ExecContext(ctx, "CREATE DATABASE "+name)
	require.NoError(t, err, "create a database on STANCH_TEST_POSTGRES")
	u, err := url.Parse(base)
	require.NoError(t, err)
	u.Path = "/" + name
	t.Cleanup(func() {
		a, err := sql.Open("pgx", base)
		if err == nil {
			_, _ = a.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			a.Close()
		}
	})
	return u.String()
}

// replicaLog is a process's output, written by its copier and read by the
// test.
type replicaLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *replicaLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *replicaLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// tail is the last n lines.
func (l *replicaLog) tail(n int) string {
	lines := strings.Split(strings.TrimRight(l.String(), "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

// replicaProc is one `stanch serve` process.
type replicaProc struct {
	slot, incarnation int
	key               string // the AWS access key it signs with
	base              string // http://ADDR
	cmd               *exec.Cmd
	log               *replicaLog
	done              chan struct{} // closed when it has exited
}

func (p *replicaProc) String() string {
	return fmt.Sprintf("replica %d (incarnation %d, pid %d, AWS key %s)", p.slot, p.incarnation, p.cmd.Process.Pid, p.key)
}

// replicaCluster is the sandbox, the database and the replicas.
type replicaCluster struct {
	bin, dir, playbook, db string
	sb                     *sandbox.Sandbox
	front                  *awsFront
	awsURL                 string

	mu    sync.Mutex
	slots []*replicaProc // the current process of each slot; nil while it restarts
	procs []*replicaProc // every process started, by incarnation
}

func newReplicaCluster(t *testing.T, bin, db string, keys int, minLatency, maxLatency time.Duration) *replicaCluster {
	t.Helper()
	seed, err := sandbox.ParseSeed("replicas-seed.yaml", []byte(replicaSeedYAML(keys)))
	require.NoError(t, err)
	sb, err := sandbox.New(seed, sandbox.Options{})
	require.NoError(t, err)
	front := &awsFront{sb: sb, min: minLatency, max: maxLatency, inflight: map[string]int{}}
	srv := httptest.NewServer(front)
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	pb := filepath.Join(dir, "replicas.yaml")
	require.NoError(t, os.WriteFile(pb, []byte(replicaPlaybook), 0o600))
	c := &replicaCluster{bin: bin, dir: dir, playbook: pb, db: db, sb: sb, front: front, awsURL: srv.URL}
	t.Cleanup(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, p := range c.procs {
			_ = p.cmd.Process.Kill() // also ends a stopped process
			<-p.done
		}
	})
	return c
}

// start runs a new process in slot and returns once it listens.
func (c *replicaCluster) start(slot int) (*replicaProc, error) {
	c.mu.Lock()
	n := len(c.procs)
	c.mu.Unlock()
	if n >= replicaIncarnations {
		return nil, fmt.Errorf("more than %d processes: the seed has no AWS key for another", replicaIncarnations)
	}
	p := &replicaProc{slot: slot, incarnation: n, key: replicaResponderKey(n), log: &replicaLog{}, done: make(chan struct{})}
	p.cmd = exec.Command(c.bin, "serve", "--listen", "127.0.0.1:0", "--playbooks", c.playbook, "--database", c.db,
		"--rate-limit", "0", "--log-level", "info")
	p.cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + c.dir,
		"AWS_ENDPOINT_URL=" + c.awsURL,
		"AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=" + p.key,
		"AWS_SECRET_ACCESS_KEY=" + fmt.Sprintf("replicaSecretReplicaSecretReplicaSec%04d", n),
		"AWS_CONFIG_FILE=/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE=/dev/null",
		"AWS_EC2_METADATA_DISABLED=true",
		"STANCH_EVENTBRIDGE_SECRET=" + replicaHookSecret,
		"STANCH_SLACK_TOKEN=" + replicaSlackToken,
		"STANCH_SLACK_API_URL=" + c.awsURL + "/slack/api/",
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p.cmd.Stderr = p.log
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	lines := make(chan string, 1)
	go func() {
		out := bufio.NewReader(stdout)
		line, _ := out.ReadString('\n')
		lines <- line
		_, _ = io.Copy(p.log, out) // the rest of standard output joins the log
	}()
	select {
	case line := <-lines:
		// The first line: "stanch serve: http://ADDR, playbooks …".
		_, rest, ok := strings.Cut(line, "http://")
		if !ok {
			return nil, fmt.Errorf("%s: its first line names no address: %q\n%s", p, line, p.log.tail(30))
		}
		addr, _, _ := strings.Cut(rest, ",")
		p.base = "http://" + addr
	case <-time.After(time.Minute):
		return nil, fmt.Errorf("%s did not listen within a minute:\n%s", p, p.log.tail(30))
	}
	c.mu.Lock()
	for len(c.slots) <= slot {
		c.slots = append(c.slots, nil)
	}
	c.slots[slot] = p
	c.mu.Unlock()
	return p, nil
}

// current is the process of slot, nil while it restarts.
func (c *replicaCluster) current(slot int) *replicaProc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.slots[slot]
}

// kill SIGKILLs the process of slot and waits for it to be gone.
func (c *replicaCluster) kill(slot int) (*replicaProc, time.Time, error) {
	c.mu.Lock()
	p := c.slots[slot]
	c.slots[slot] = nil
	c.mu.Unlock()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return p, time.Time{}, err
	}
	at := time.Now()
	<-p.done
	return p, at, nil
}

// logs is the tail of every process's log, for a failure message.
func (c *replicaCluster) logs(lines int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	for _, p := range c.procs {
		fmt.Fprintf(&b, "--- %s, last %d lines of its log:\n%s\n", p, lines, p.log.tail(lines))
	}
	return b.String()
}

// delivery is one alert as a sender delivers it: to one replica, and on
// any failure (refused connection, timeout, an answer other than 200) to
// the next, as EventBridge's API destinations retry.
type delivery struct {
	i        int
	key      string
	dedup    string // the dedup key the accepting replica answered with
	sent     time.Time
	accepted time.Time
	by       int // the slot that accepted it
	tries    int
	failures []string
}

// deliver posts alert i until a replica accepts it or the deadline passes.
func (c *replicaCluster) deliver(client *http.Client, d *delivery, deadline time.Time) {
	body := replicaHealthEvent(d.i, d.key)
	d.sent = time.Now()
	for attempt := 0; time.Now().Before(deadline); attempt++ {
		slot := (d.i + attempt) % 3
		p := c.current(slot)
		if p == nil {
			continue // restarting: the next replica
		}
		d.tries++
		req, _ := http.NewRequest(http.MethodPost, p.base+"/hooks/aws/eventbridge", bytes.NewReader(body))
		req.Header.Set("X-Stanch-Token", replicaHookSecret)
		req.Header.Set("Content-Type", "application/json")
		res, err := client.Do(req)
		if err != nil {
			d.failures = append(d.failures, fmt.Sprintf("replica %d: %v", slot, err))
			time.Sleep(min(time.Duration(attempt+1)*50*time.Millisecond, 500*time.Millisecond))
			continue
		}
		answer, _ := io.ReadAll(res.Body)
		res.Body.Close()
		var a struct {
			Accepted []string `json:"accepted"`
		}
		if res.StatusCode != http.StatusOK || json.Unmarshal(answer, &a) != nil || len(a.Accepted) != 1 {
			d.failures = append(d.failures, fmt.Sprintf("replica %d: HTTP %d %s", slot, res.StatusCode, bytes.TrimSpace(answer)))
			time.Sleep(min(time.Duration(attempt+1)*50*time.Millisecond, 500*time.Millisecond))
			continue
		}
		d.dedup, d.accepted, d.by = a.Accepted[0], time.Now(), slot
		return
	}
}

// replicaStore reads the store the replicas share.
func replicaStore(t *testing.T, dbURL string) *runner.Store {
	t.Helper()
	db, err := runner.OpenDatabase(context.Background(), dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return runner.NewStore(db, nil)
}
