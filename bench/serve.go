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
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/stanchhq/stanch/runner"
	"github.com/stanchhq/stanch/sandbox"
)

// The benchmarks of this file run the stanch binary itself (`stanch
// serve` on the embedded SQLite store), as people do, and read what it
// costs from /proc.

const holdPlaybook = `
name: hold
steps:
  - id: decide
    action: aws.deactivate_key
    approval: {approvers: [security-oncall], timeout: 24h}
    with: {access_key_id: "${{ alert.credential.id }}"}
`

// served is a `stanch serve` process holding runs parked on an approval.
type served struct {
	pid  int
	db   string // the SQLite file
	stop func()
}

// serveWaiting builds the stanch binary, starts `stanch serve` on a fresh
// SQLite store and posts n alerts whose runs park on an approval; it
// returns once all n wait.
func serveWaiting(ctx context.Context, n int) (*served, error) {
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	fail := func(err error) (*served, error) {
		closeAll()
		return nil, err
	}
	dir, err := os.MkdirTemp("", "stanch-bench-serve-")
	if err != nil {
		return nil, err
	}
	closers = append(closers, func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "stanch")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/stanch").CombinedOutput(); err != nil {
		return fail(fmt.Errorf("build stanch: %v: %s", err, out))
	}
	pbPath := filepath.Join(dir, "hold.yaml")
	if err := os.WriteFile(pbPath, []byte(holdPlaybook), 0o600); err != nil {
		return fail(err)
	}
	sd, err := sandbox.ParseSeed("bench", []byte(seed(n)))
	if err != nil {
		return fail(err)
	}
	sb, err := sandbox.New(sd, sandbox.Options{})
	if err != nil {
		return fail(err)
	}
	awsSrv := httptest.NewServer(sb)
	closers = append(closers, awsSrv.Close)
	path := filepath.Join(dir, "stanch.db")
	cmd := exec.CommandContext(ctx, bin, "serve", "--listen", "127.0.0.1:0", "--playbooks", pbPath, "--database", "file:"+path, "--rate-limit", "0")
	cmd.Env = append(os.Environ(), "AWS_ENDPOINT_URL="+awsSrv.URL, "AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID="+sandbox.ResponderKeyID, "AWS_SECRET_ACCESS_KEY="+sandbox.ResponderSecret,
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "HOME="+dir, "STANCH_EVENTBRIDGE_SECRET="+hookSecret)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fail(err)
	}
	if err := cmd.Start(); err != nil {
		return fail(err)
	}
	closers = append(closers, func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	out := bufio.NewReader(stdout)
	line, err := out.ReadString('\n')
	if err != nil {
		return fail(fmt.Errorf("serve did not start: %w", err))
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	_, rest, _ := strings.Cut(line, "http://")
	addr, _, _ := strings.Cut(rest, ",")
	for i := range n {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/hooks/aws/eventbridge", bytes.NewReader(healthEvent(keyID(i), 200000+i)))
		req.Header.Set("X-Stanch-Token", hookSecret)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return fail(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	db, err := runner.OpenDatabase(ctx, "file:"+path)
	if err != nil {
		return fail(err)
	}
	defer db.Close()
	store := runner.NewStore(db, nil)
	deadline := time.Now().Add(5 * time.Minute)
	for {
		waiting, err := store.ListRuns(ctx, runner.ListFilter{Status: runner.RunWaitingApproval})
		if err != nil {
			return fail(err)
		}
		if len(waiting) == n {
			break
		}
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("only %d of %d runs are waiting", len(waiting), n))
		}
		time.Sleep(200 * time.Millisecond)
	}
	return &served{pid: cmd.Process.Pid, db: path, stop: closeAll}, nil
}

type memoryResult struct {
	runs          int
	peak, current int // kB
}

// waitingMemory runs the stanch binary's serve with n runs parked on an
// approval and reads its peak resident memory from /proc.
func waitingMemory(ctx context.Context, n int) (memoryResult, error) {
	s, err := serveWaiting(ctx, n)
	if err != nil {
		return memoryResult{}, err
	}
	defer s.stop()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.pid))
	if err != nil {
		return memoryResult{}, err
	}
	r := memoryResult{runs: n}
	for _, l := range strings.Split(string(status), "\n") {
		fmt.Sscanf(l, "VmHWM: %d kB", &r.peak)
		fmt.Sscanf(l, "VmRSS: %d kB", &r.current)
	}
	return r, nil
}

func (m memoryResult) render() string {
	return fmt.Sprintf("\n## Memory with runs waiting for approval\n\n`stanch serve` (the binary, embedded SQLite) holding %d runs parked on an approval; from /proc/PID/status.\n\n| runs waiting | peak RSS | RSS now |\n|---|---|---|\n| %d | %.1f MB | %.1f MB |\n",
		m.runs, m.runs, float64(m.peak)/1024, float64(m.current)/1024)
}

type idleResult struct {
	runs     int
	window   time.Duration
	cpuTicks int64 // utime+stime, in clock ticks (USER_HZ, 100 a second)
	// walBefore and walAfter are the sizes of the -wal file.
	walBefore, walAfter int64
	// commits says whether another connection committed to the database
	// meanwhile (SQLite's data_version, read from a connection of the
	// benchmark's own).
	commits bool
	// written and writes are what the process passed to write(2) and
	// how many times (/proc/PID/io wchar and syscw).
	written, writes int64
}

// idleSettle lets the work of the last alerts (their jobs snoozing) end
// before the idle window starts.
const idleSettle = 3 * time.Second

// idleCost runs `stanch serve` with n runs parked on an approval and
// nothing happening, and measures over window the CPU it uses, whether it
// writes to its database and what it writes at all.
func idleCost(ctx context.Context, n int, window time.Duration) (idleResult, error) {
	s, err := serveWaiting(ctx, n)
	if err != nil {
		return idleResult{}, err
	}
	defer s.stop()
	time.Sleep(idleSettle)
	db, err := sql.Open("sqlite", "file:"+s.db+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return idleResult{}, err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return idleResult{}, err
	}
	defer conn.Close()
	version := func() (int64, error) {
		var v int64
		err := conn.QueryRowContext(ctx, `PRAGMA data_version`).Scan(&v)
		return v, err
	}
	walSize := func() int64 {
		fi, err := os.Stat(s.db + "-wal")
		if err != nil {
			return 0
		}
		return fi.Size()
	}
	res := idleResult{runs: n, window: window}
	v0, err := version()
	if err != nil {
		return idleResult{}, err
	}
	t0, err := cpuTicks(s.pid)
	if err != nil {
		return idleResult{}, err
	}
	io0, err := procIO(s.pid)
	if err != nil {
		return idleResult{}, err
	}
	res.walBefore = walSize()
	time.Sleep(window)
	t1, err := cpuTicks(s.pid)
	if err != nil {
		return idleResult{}, err
	}
	io1, err := procIO(s.pid)
	if err != nil {
		return idleResult{}, err
	}
	res.walAfter = walSize()
	v1, err := version()
	if err != nil {
		return idleResult{}, err
	}
	res.cpuTicks, res.commits = t1-t0, v1 != v0
	res.written, res.writes = io1["wchar"]-io0["wchar"], io1["syscw"]-io0["syscw"]
	return res, nil
}

// cpuTicks is the user and system time of a process, in clock ticks.
func cpuTicks(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: count fields
	// after it. utime and stime are fields 14 and 15 of the line.
	i := bytes.LastIndexByte(data, ')')
	fields := strings.Fields(string(data[i+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: unreadable times", pid)
	}
	return utime + stime, nil
}

// procIO reads /proc/PID/io.
func procIO(pid int) (map[string]int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, l := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(l, ": ")
		if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); ok && err == nil {
			out[k] = n
		}
	}
	return out, nil
}

func (r idleResult) render() string {
	const userHZ = 100
	cpu := float64(r.cpuTicks) / userHZ / r.window.Seconds() * 100
	commits := "none"
	if r.commits {
		commits = "yes"
	}
	return fmt.Sprintf("\n## Idle\n\n`stanch serve` (the binary, embedded SQLite) with %d runs parked on an approval and nothing else happening, over %.0f s\n"+
		"(starting %.0f s after the last run parked). CPU is utime+stime from /proc/PID/stat; commits are seen through SQLite's\n"+
		"`PRAGMA data_version` on a connection of the benchmark's own; bytes written are everything the process passed to\nwrite(2) (/proc/PID/io), database, WAL and logs alike.\n\n"+
		"| runs waiting | CPU (one core) | WAL before | WAL after | commits to the database | bytes written (calls) |\n|---|---|---|---|---|---|\n"+
		"| %d | %.2f %% (%d ticks) | %s | %s | %s | %d (%d) |\n",
		r.runs, r.window.Seconds(), idleSettle.Seconds(), r.runs, cpu, r.cpuTicks, kb(r.walBefore), kb(r.walAfter), commits, r.written, r.writes)
}

func kb(n int64) string { return fmt.Sprintf("%.1f KB", float64(n)/1024) }
