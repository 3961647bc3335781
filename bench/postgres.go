package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/stanchhq/stanch/runner"
	"github.com/stanchhq/stanch/sandbox"
)

// The PostgreSQL figures run `stanch serve` itself, one or three processes
// (replicas) on one fresh database, behind one sandbox. Each process signs
// its AWS calls with an access key of its own, so that the sandbox says
// which process is in the middle of a call (the takeover benchmark kills
// that one).

// pgServer is the PostgreSQL server the figures are measured on, or why
// there is none: STANCH_BENCH_POSTGRES, else STANCH_TEST_POSTGRES (which
// `make bench` sets when it could start the machine's PostgreSQL through
// .ci/postgres.sh).
func pgServer(ctx context.Context) (base, version, unavailable string) {
	base = os.Getenv("STANCH_BENCH_POSTGRES")
	if base == "" {
		base = os.Getenv("STANCH_TEST_POSTGRES")
	}
	if base == "" {
		return "", "", "neither STANCH_BENCH_POSTGRES nor STANCH_TEST_POSTGRES is set (`make bench` sets the latter when .ci/postgres.sh could start the machine's PostgreSQL)"
	}
	db, err := sql.Open("pgx", adminURL(base))
	if err != nil {
		return "", "", fmt.Sprintf("cannot open %s: %v", redactURL(base), err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.QueryRowContext(ctx, "SHOW server_version").Scan(&version); err != nil {
		return "", "", fmt.Sprintf("%s does not answer: %v", redactURL(base), err)
	}
	return base, version, ""
}

// adminURL is base without the pool_* parameters that only pgxpool (the
// pool stanch serve opens) understands: the benchmark's own connections
// would send them to the server as settings.
func adminURL(base string) string {
	u, err := url.Parse(base)
	if err != nil {
		return base
	}
	q := u.Query()
	for k := range q {
		if strings.HasPrefix(k, "pool_") {
			q.Del(k)
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "the PostgreSQL URL"
	}
	return u.Redacted()
}

// pgDatabase creates a database of its own on the server; drop removes it.
func pgDatabase(ctx context.Context, base, label string) (dbURL string, drop func(), err error) {
	admin, err := sql.Open("pgx", adminURL(base))
	if err != nil {
		return "", nil, err
	}
	defer admin.Close()
	name := fmt.Sprintf("stanch_bench_%s_%d", label, time.Now().UnixNano())
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, fmt.Errorf("create database: %w", err)
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", nil, err
	}
	u.Path = "/" + name
	return u.String(), func() {
		if a, err := sql.Open("pgx", adminURL(base)); err == nil {
			_, _ = a.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			a.Close()
		}
	}, nil
}

const pgMaxProcesses = 40

func pgResponderKey(n int) string { return fmt.Sprintf("AKIABENCHREPLICA%04d", n) }
func pgResponderSecret(n int) string {
	return fmt.Sprintf("benchReplicaSecretBenchReplicaSecret%04d", n)
}

// pgSeed is the base account with a responder user per process and users
// of its own keys (keyID), and accounts×users keys in other accounts reached
// through their response role (burstKey).
func pgSeed(users, accounts, accountUsers int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "accounts:\n  - id: %q\n    users:\n", account)
	for n := range pgMaxProcesses {
		fmt.Fprintf(&b, "      - name: stanch-replica-%02d\n        keys: [{id: %s, secret: %s}]\n", n, pgResponderKey(n), pgResponderSecret(n))
	}
	for i := range users {
		fmt.Fprintf(&b, "      - name: user%05d\n        keys: [{id: %s, secret: benchSecretBenchSecretBenchSecret%07d}]\n", i, keyID(i), i)
	}
	for a := range accounts {
		fmt.Fprintf(&b, "  - id: %q\n    roles: [{name: stanch-responder, trusted_accounts: [%q], external_id: bench}]\n    users:\n", burstAccount(a), account)
		for u := range accountUsers {
			fmt.Fprintf(&b, "      - name: u%02d\n        keys: [{id: %s, secret: burstSecretBurstSecretBurstSecret%03d%03d}]\n", u, burstKey(a, u), a, u)
		}
	}
	return b.String()
}

// inflightFront counts the AWS calls in flight by the key that signs them.
type inflightFront struct {
	sb       *sandbox.Sandbox
	mu       sync.Mutex
	inflight map[string]int
}

func (f *inflightFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, cred, ok := strings.Cut(r.Header.Get("Authorization"), "Credential=")
	key, _, _ := strings.Cut(cred, "/")
	if ok {
		f.mu.Lock()
		f.inflight[key]++
		f.mu.Unlock()
		defer func() {
			f.mu.Lock()
			f.inflight[key]--
			f.mu.Unlock()
		}()
	}
	f.sb.ServeHTTP(w, r)
}

// busy is the first of keys with an AWS call in flight, or "".
func (f *inflightFront) busy(keys []string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range keys {
		if f.inflight[k] > 0 {
			return k
		}
	}
	return ""
}

// pgReplica is one `stanch serve` process.
type pgReplica struct {
	slot, n int
	key     string
	base    string
	cmd     *exec.Cmd
	log     string // its stderr
	done    chan struct{}
}

// pgCluster is a sandbox, a fresh database and the replicas working it.
type pgCluster struct {
	bin, dir, db, config, playbook string
	sb                             *sandbox.Sandbox
	front                          *inflightFront
	aws                            *httptest.Server
	store                          *runner.Store
	closeStore                     func()
	drop                           func()

	mu    sync.Mutex
	slots []*pgReplica
	all   []*pgReplica
}

// newPGCluster starts replicas processes of bin on a fresh database of
// base, behind a sandbox seeded by seedYAML with latency per AWS call. With
// base "sqlite" it starts one process on a fresh embedded SQLite store
// instead: the same harness's reference.
func newPGCluster(ctx context.Context, bin, base, label, seedYAML string, latency time.Duration, replicas int) (*pgCluster, error) {
	sd, err := sandbox.ParseSeed("bench-postgres", []byte(seedYAML))
	if err != nil {
		return nil, err
	}
	sb, err := sandbox.New(sd, sandbox.Options{Latency: latency})
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "stanch-bench-pg-")
	if err != nil {
		return nil, err
	}
	c := &pgCluster{bin: bin, dir: dir, sb: sb, front: &inflightFront{sb: sb, inflight: map[string]int{}}}
	c.aws = httptest.NewServer(c.front)
	c.playbook = filepath.Join(dir, "contain.yaml")
	c.config = filepath.Join(dir, "stanch.yaml")
	if err := os.WriteFile(c.playbook, []byte(containment), 0o600); err != nil {
		c.close()
		return nil, err
	}
	conf := "aws:\n  response_roles:\n    arn: arn:aws:iam::{account}:role/stanch-responder\n    external_id: bench\n"
	if err := os.WriteFile(c.config, []byte(conf), 0o600); err != nil {
		c.close()
		return nil, err
	}
	if base == "sqlite" {
		c.db = "file:" + filepath.Join(dir, "stanch.db")
	} else if c.db, c.drop, err = pgDatabase(ctx, base, label); err != nil {
		c.close()
		return nil, err
	}
	// The first process creates the tables alone; then the others join.
	for slot := range replicas {
		if _, err := c.start(slot); err != nil {
			c.close()
			return nil, err
		}
	}
	db, err := runner.OpenDatabase(ctx, c.db)
	if err != nil {
		c.close()
		return nil, err
	}
	c.store, c.closeStore = runner.NewStore(db, nil), func() { db.Close() }
	return c, nil
}

// start runs a new process in slot and returns once it listens.
func (c *pgCluster) start(slot int) (*pgReplica, error) {
	c.mu.Lock()
	n := len(c.all)
	c.mu.Unlock()
	if n >= pgMaxProcesses {
		return nil, fmt.Errorf("more than %d processes: the seed has no AWS key for another", pgMaxProcesses)
	}
	p := &pgReplica{slot: slot, n: n, key: pgResponderKey(n), log: filepath.Join(c.dir, fmt.Sprintf("serve-%02d.log", n)), done: make(chan struct{})}
	logFile, err := os.Create(p.log)
	if err != nil {
		return nil, err
	}
	p.cmd = exec.Command(c.bin, "serve", "--config", c.config, "--listen", "127.0.0.1:0", "--playbooks", c.playbook,
		"--database", c.db, "--rate-limit", "0")
	p.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + c.dir, "AWS_ENDPOINT_URL=" + c.aws.URL, "AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=" + p.key, "AWS_SECRET_ACCESS_KEY=" + pgResponderSecret(n),
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_EC2_METADATA_DISABLED=true",
		"STANCH_EVENTBRIDGE_SECRET=" + hookSecret}
	p.cmd.Stderr = logFile
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		logFile.Close()
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	go func() {
		_ = p.cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	c.mu.Lock()
	c.all = append(c.all, p)
	c.mu.Unlock()
	first := make(chan string, 1)
	go func() {
		out := bufio.NewReader(stdout)
		line, _ := out.ReadString('\n')
		first <- line
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case line := <-first:
		_, rest, ok := strings.Cut(line, "http://")
		if !ok {
			return nil, fmt.Errorf("stanch serve on PostgreSQL did not start: %q; log: %s", line, tailFile(p.log, 20))
		}
		addr, _, _ := strings.Cut(rest, ",")
		p.base = "http://" + addr
	case <-time.After(time.Minute):
		return nil, fmt.Errorf("stanch serve on PostgreSQL did not listen within a minute; log: %s", tailFile(p.log, 20))
	}
	c.mu.Lock()
	for len(c.slots) <= slot {
		c.slots = append(c.slots, nil)
	}
	c.slots[slot] = p
	c.mu.Unlock()
	return p, nil
}

// live are the processes working now.
func (c *pgCluster) live() []*pgReplica {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*pgReplica
	for _, p := range c.slots {
		if p != nil {
			out = append(out, p)
		}
	}
	return out
}

// kill SIGKILLs p and returns when it is gone, with the moment of the kill.
func (c *pgCluster) kill(p *pgReplica) (time.Time, error) {
	c.mu.Lock()
	c.slots[p.slot] = nil
	c.mu.Unlock()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return time.Time{}, err
	}
	at := time.Now()
	<-p.done
	return at, nil
}

func (c *pgCluster) close() {
	c.mu.Lock()
	all := c.all
	c.mu.Unlock()
	for _, p := range all {
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	if c.closeStore != nil {
		c.closeStore()
	}
	if c.aws != nil {
		c.aws.Close()
	}
	if c.drop != nil {
		c.drop()
	}
	os.RemoveAll(c.dir)
}

func tailFile(path string, lines int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	ls := strings.Split(string(bytes.TrimRight(data, "\n")), "\n")
	return strings.Join(ls[max(len(ls)-lines, 0):], "\n")
}

// pgPost sends one EventBridge event to a replica; ok is an answer 200.
func pgPost(client *http.Client, base string, body []byte) (time.Duration, bool) {
	req, _ := http.NewRequest(http.MethodPost, base+"/hooks/aws/eventbridge", bytes.NewReader(body))
	req.Header.Set("X-Stanch-Token", hookSecret)
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	res, err := client.Do(req)
	d := time.Since(start)
	if err != nil {
		return d, false
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return d, res.StatusCode == http.StatusOK
}

// buildStanch builds the stanch binary into dir.
func buildStanch(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "stanch")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/stanch").CombinedOutput(); err != nil {
		return "", fmt.Errorf("build stanch: %v: %s", err, out)
	}
	return bin, nil
}
