package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base32"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/apicall"
	"github.com/stanchhq/stanch/runner"
)

// The export benchmark fills a fresh store with months of incidents through
// the runner's store API (what the workers write, without running the
// playbooks, which would take hours) and runs the stanch binary's
// `runs export` over it, as a SIEM's nightly job would, reading the peak
// resident memory the kernel reports for the child.

// exportRunCount is how many runs the export benchmark writes: the figure the
// budget is set for (issue 17).
const exportRunCount = 10_000

// exportBudgetKiB is the most resident memory an export of exportRunCount
// runs may take: 100 MB, counted as the bench's other tables count them
// (1 MB = 1024 KiB).
const exportBudgetKiB = 100 * 1024

// exportFormats are the formats measured: both stream, but json wraps the
// runs in one array.
var exportFormats = []string{"ndjson", "json"}

type exportRow struct {
	store  string // "SQLite" or "PostgreSQL"
	format string
	runs   int   // runs in the output
	bytes  int64 // bytes written to stdout
	maxRSS int64 // KiB, the child's ru_maxrss
	// maxAnon is the most anonymous memory (KiB) seen while it ran: its
	// heaps, SQLite's included, without the binary's pages.
	maxAnon int64
	wall    time.Duration
}

func (r exportRow) over() bool { return r.maxRSS >= exportBudgetKiB }

// exportResult is the export section of the report.
type exportResult struct {
	runs   int
	seeded map[string]time.Duration // by store: how long seeding took
	// floor is the peak RSS (KiB) of `stanch version`: what the binary's
	// start costs before the export reads anything.
	floor int64
	rows  []exportRow
	// pgNote says why PostgreSQL was not measured, or how it failed.
	pgNote string
}

// failures are the rows over the budget, as FAIL lines.
func (r exportResult) failures() []string {
	var out []string
	for _, row := range r.rows {
		if row.over() {
			out = append(out, fmt.Sprintf("FAIL: stanch runs export --format %s of %d runs on %s peaked at %.1f MB RSS; the budget is %d MB",
				row.format, row.runs, row.store, float64(row.maxRSS)/1024, exportBudgetKiB/1024))
		}
	}
	return out
}

// exportFigures builds stanch, seeds n runs into a fresh SQLite store (and
// a fresh PostgreSQL database, when the bench has a server) and measures
// the export in each format. A PostgreSQL failure is kept in the result,
// as postgresFigures does, so that the SQLite figures still count.
func exportFigures(ctx context.Context, n int) (exportResult, error) {
	res := exportResult{runs: n, seeded: map[string]time.Duration{}}
	dir, err := os.MkdirTemp("", "stanch-bench-export-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	bin, err := buildStanch(ctx, dir)
	if err != nil {
		return res, err
	}
	floor, err := runMeasured(ctx, bin, dir, "version")
	if err != nil {
		return res, err
	}
	res.floor = floor.maxRSS
	sqlitePath := filepath.Join(dir, "stanch.db")
	sqliteURL := "file:" + sqlitePath
	if res.seeded["SQLite"], err = seedExportSQLite(ctx, sqlitePath, n); err != nil {
		return res, fmt.Errorf("seed SQLite: %w", err)
	}
	rows, err := measureExports(ctx, bin, dir, "SQLite", sqliteURL, n)
	if err != nil {
		return res, err
	}
	res.rows = append(res.rows, rows...)
	// A tenth of the runs beside them: a streaming export's memory does
	// not grow with the runs it writes.
	small := filepath.Join(dir, "small.db")
	if _, err := seedExportSQLite(ctx, small, n/10); err != nil {
		return res, fmt.Errorf("seed SQLite: %w", err)
	}
	row, err := measureExport(ctx, bin, dir, "file:"+small, "ndjson")
	if err != nil {
		return res, err
	}
	if row.runs != n/10 {
		return res, fmt.Errorf("export ndjson of %d runs on SQLite wrote %d", n/10, row.runs)
	}
	row.store = "SQLite"
	res.rows = append(res.rows, row)

	base, _, unavailable := pgServer(ctx)
	if unavailable != "" {
		res.pgNote = "not measured: " + unavailable
		fmt.Fprintln(os.Stderr, "bench: export on PostgreSQL", res.pgNote)
		return res, nil
	}
	pgURL, drop, err := pgDatabase(ctx, base, "export")
	if err != nil {
		res.pgNote = fmt.Sprintf("failed: %v", err)
		return res, nil
	}
	defer drop()
	seedStart := time.Now()
	if err := seedExportStore(ctx, pgSeedURL(pgURL), 0, n, n, 8); err != nil {
		res.pgNote = fmt.Sprintf("failed: seed: %v", err)
		return res, nil
	}
	res.seeded["PostgreSQL"] = time.Since(seedStart)
	rows, err = measureExports(ctx, bin, dir, "PostgreSQL", pgURL, n)
	if err != nil {
		res.pgNote = fmt.Sprintf("failed: %v", err)
		return res, nil
	}
	res.rows = append(res.rows, rows...)
	return res, nil
}

// pgSeedURL is the seeders' URL of the benchmark's own database: their
// commits do not wait for the WAL's fsync (synchronous_commit=off, a
// setting of their sessions only), which would otherwise make seeding
// take minutes; the export reads what they wrote either way.
func pgSeedURL(dbURL string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		return dbURL
	}
	q := u.Query()
	q.Set("synchronous_commit", "off")
	u.RawQuery = q.Encode()
	return u.String()
}

func measureExports(ctx context.Context, bin, dir, store, dbURL string, n int) ([]exportRow, error) {
	var rows []exportRow
	for _, format := range exportFormats {
		row, err := measureExport(ctx, bin, dir, dbURL, format)
		if err != nil {
			return nil, fmt.Errorf("export %s on %s: %w", format, store, err)
		}
		if row.runs != n {
			return nil, fmt.Errorf("export %s on %s wrote %d runs, want %d", format, store, row.runs, n)
		}
		row.store = store
		rows = append(rows, row)
	}
	return rows, nil
}

// measureExport runs `stanch runs export` as a child.
func measureExport(ctx context.Context, bin, dir, dbURL, format string) (exportRow, error) {
	m, err := runMeasured(ctx, bin, dir, "runs", "export", "--database", dbURL, "--format", format)
	if err != nil {
		return exportRow{}, err
	}
	return exportRow{format: format, runs: m.out.runs, bytes: m.out.bytes, maxRSS: m.maxRSS, maxAnon: m.maxAnon, wall: m.wall}, nil
}

// measured is what runMeasured saw of a child.
type measured struct {
	out     *exportCounter
	maxRSS  int64 // KiB, ru_maxrss
	maxAnon int64 // KiB, the most RssAnon seen in /proc/PID/status
	wall    time.Duration
}

// runMeasured runs the stanch binary with args, reads its peak resident
// memory from the rusage wait4 returns, and samples its anonymous memory
// meanwhile: the rest of the RSS is the binary's own pages, which the
// kernel maps in as they are touched (and more of them when they are in
// the page cache), so the anonymous part is the process's own doing.
func runMeasured(ctx context.Context, bin, dir string, args ...string) (measured, error) {
	m := measured{out: &exportCounter{lineStart: true}}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	// HOME of its own: no configuration file of the machine's user applies.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	cmd.Stdout, cmd.Stderr = m.out, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return m, err
	}
	exited := make(chan struct{})
	sampled := make(chan int64, 1)
	go func() { sampled <- peakAnon(cmd.Process.Pid, exited) }()
	err := cmd.Wait()
	m.wall = time.Since(start)
	close(exited)
	m.maxAnon = <-sampled
	if err != nil {
		return m, fmt.Errorf("stanch %s: %v: %s", strings.Join(args, " "), err, tail(stderr.String(), 2000))
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return m, fmt.Errorf("no rusage for the child on this system")
	}
	m.maxRSS = ru.Maxrss
	return m, nil
}

// peakAnon reads pid's RssAnon every 20 ms until exited is closed and
// returns the most it saw (KiB).
func peakAnon(pid int, exited <-chan struct{}) int64 {
	var peak int64
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
			for _, l := range strings.Split(string(status), "\n") {
				var kb int64
				if _, err := fmt.Sscanf(l, "RssAnon: %d kB", &kb); err == nil {
					peak = max(peak, kb)
				}
			}
		}
		select {
		case <-exited:
			return peak
		case <-tick.C:
		}
	}
}

// exportCounter counts what the export writes: its bytes, and its runs as
// the lines that open an object (each run is one line in either format:
// the json array puts "[" and "]" on lines of their own).
type exportCounter struct {
	bytes     int64
	runs      int
	lineStart bool
}

func (c *exportCounter) Write(p []byte) (int, error) {
	c.bytes += int64(len(p))
	for _, b := range p {
		if c.lineStart && b == '{' {
			c.runs++
		}
		c.lineStart = b == '\n'
	}
	return len(p), nil
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

func (r exportResult) render() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n## Export of %d runs\n\n`stanch runs export --format F` (the binary) over a fresh store of %d runs created over 180 days, each with an\n"+
		"alert carrying a ~2 KB raw document, 2 alerts that joined it, 6 steps with outputs, 2 approvals, 11 provider API calls\n"+
		"and 21 journal entries, seeded through the runner's store API (on SQLite in shards of %d runs copied into one store).\n"+
		"Max RSS is the child's ru_maxrss (wait4), the figure the budget of %d MB applies to; of it, the anonymous part is the\n"+
		"most RssAnon sampled from /proc/PID/status every 20 ms (the Go heap and SQLite's), the rest the binary's own pages.\n"+
		"Runs are counted in the output as it streams.\n\n", r.runs, r.runs, exportShard, exportBudgetKiB/1024)
	b.WriteString("| store | format | runs | bytes written | time | runs/s | max RSS | of which anonymous | within budget |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, row := range r.rows {
		verdict := "yes"
		if row.over() {
			verdict = "**FAIL**"
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %.1f MB | %.1f s | %.0f | %.1f MB | %.1f MB | %s |\n", row.store, row.format, row.runs, float64(row.bytes)/1024/1024,
			row.wall.Seconds(), float64(row.runs)/row.wall.Seconds(), float64(row.maxRSS)/1024, float64(row.maxAnon)/1024, verdict)
	}
	for _, store := range []string{"SQLite", "PostgreSQL"} {
		if d, ok := r.seeded[store]; ok {
			fmt.Fprintf(&b, "\nSeeding %s took %.1f s.", store, d.Seconds())
		}
	}
	fmt.Fprintf(&b, "\nThe binary's start alone (`stanch version`) peaks at %.1f MB RSS: the floor under each figure above.\n", float64(r.floor)/1024)
	if r.pgNote != "" {
		fmt.Fprintf(&b, "\nPostgreSQL %s\n", r.pgNote)
	}
	for _, f := range r.failures() {
		b.WriteString("\n" + f + "\n")
	}
	return b.String()
}

// exportSpan is the time the seeded runs are spread over: months of
// incidents, as the export is meant for.
const exportSpan = 180 * 24 * time.Hour

// seedClock is a seeding store's clock: every reading moves it on by a
// second, so a run's steps take seconds and its entries are in order.
// Each seeder has its own.
type seedClock struct{ t time.Time }

func (c *seedClock) now() time.Time {
	c.t = c.t.Add(time.Second)
	return c.t
}

// seedExportStore writes runs [from, to) of n into the store at dbURL,
// migrating it first, with workers seeders (PostgreSQL takes writers in
// parallel; SQLite one at a time). Run i is created at its share of
// exportSpan, so shards seeded apart fit together.
func seedExportStore(ctx context.Context, dbURL string, from, to, n, workers int) error {
	db, err := runner.OpenDatabase(ctx, dbURL)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := runner.NewStore(db, nil).Migrate(ctx); err != nil {
		return err
	}
	first := time.Now().Add(-exportSpan).Truncate(time.Hour)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			clock := &seedClock{}
			store := runner.NewStore(db, clock.now)
			for i := from + w; i < to; i += workers {
				clock.t = first.Add(exportSpan * time.Duration(i) / time.Duration(n))
				if err := seedExportRun(ctx, store, clock, i); err != nil {
					errs <- fmt.Errorf("run %d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// exportShard is how many runs one SQLite shard holds. An alert that joins
// an open run is matched by a scan of stanch_runs (no index serves that
// query on SQLite), so seeding one store of 10,000 runs with two joined
// alerts each is quadratic (over four minutes); shards of 500 keep every
// scan short.
const exportShard = 500

// seedExportSQLite writes n runs into a fresh SQLite store at path: shards
// of exportShard runs seeded in parallel through the store API, on tmpfs
// when the machine has one (the intake's commits are fsynced), then copied
// into the store table by table.
func seedExportSQLite(ctx context.Context, path string, n int) (time.Duration, error) {
	start := time.Now()
	scratch := os.TempDir()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		scratch = "/dev/shm"
	}
	dir, err := os.MkdirTemp(scratch, "stanch-bench-export-shards-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	var shards []string
	for from := 0; from < n; from += exportShard {
		shards = append(shards, filepath.Join(dir, fmt.Sprintf("shard-%03d.db", len(shards))))
	}
	errs := make(chan error, len(shards))
	sem := make(chan struct{}, runtime.NumCPU())
	var wg sync.WaitGroup
	for k, shard := range shards {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := seedExportStore(ctx, "file:"+shard, k*exportShard, min(n, (k+1)*exportShard), n, 1); err != nil {
				errs <- fmt.Errorf("shard %d: %w", k, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	if err := mergeShards(ctx, path, shards); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// mergeShards creates the store at path and copies every row of stanch's
// tables in shards into it, one transaction per shard.
func mergeShards(ctx context.Context, path string, shards []string) error {
	target, err := runner.OpenDatabase(ctx, "file:"+path)
	if err != nil {
		return err
	}
	err = runner.NewStore(target, nil).Migrate(ctx)
	target.Close()
	if err != nil {
		return err
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)")
	if err != nil {
		return err
	}
	defer db.Close()
	conn, err := db.Conn(ctx) // ATTACH holds for one connection
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, shard := range shards {
		if err := mergeShard(ctx, conn, shard); err != nil {
			return fmt.Errorf("merge %s: %w", filepath.Base(shard), err)
		}
	}
	return nil
}

func mergeShard(ctx context.Context, conn *sql.Conn, shard string) error {
	if _, err := conn.ExecContext(ctx, `ATTACH DATABASE ? AS shard`, shard); err != nil {
		return err
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `DETACH DATABASE shard`)
	var tables []string
	rows, err := conn.QueryContext(ctx, `SELECT name FROM shard.sqlite_master WHERE type = 'table' AND name LIKE 'stanch\_%' ESCAPE '\' AND name <> 'stanch_schema'`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return err
		}
		tables = append(tables, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	for _, t := range tables {
		// Both stores were made by the same Migrate: the columns match.
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(`INSERT INTO main.%s SELECT * FROM shard.%s`, t, t)); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("copy %s: %w", t, err)
		}
	}
	return tx.Commit()
}

var seedIDs = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// seedRunID is a run id shaped as the runner's (run_ and 26 characters
// that sort by time), unique by i.
func seedRunID(at time.Time, i, joined int) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(at.UnixMilli())<<16)
	binary.BigEndian.PutUint64(b[8:], uint64(i)<<8|uint64(joined))
	return "run_" + seedIDs.EncodeToString(b[:])
}

// seedStep is one step of the seeded playbook, with what it leaves.
type seedStep struct {
	id, action string
	approval   bool
	calls      []apicall.Call
	outputs    func(i int, cred string) map[string]any
}

var seedRegions = []string{"us-east-1", "us-west-2", "eu-west-1", "ap-southeast-2"}

func seedSteps() []seedStep {
	iam := func(op string) apicall.Call {
		return apicall.Call{Service: "iam", Operation: op, Account: account, Region: "us-east-1", Outcome: apicall.OK}
	}
	var lookups []apicall.Call
	for _, r := range seedRegions {
		lookups = append(lookups, apicall.Call{Service: "cloudtrail", Operation: "LookupEvents", Account: account, Region: r, Outcome: apicall.OK})
	}
	return []seedStep{
		{id: "identify", action: "aws.identify_key", calls: []apicall.Call{iam("GetAccessKeyLastUsed"), iam("ListAccessKeys")},
			outputs: func(i int, cred string) map[string]any {
				return map[string]any{"account": account, "user_name": seedUser(i), "arn": "arn:aws:iam::" + account + ":user/" + seedUser(i),
					"key_status": "Active", "key_created": "2024-03-14T09:26:53Z", "last_used": map[string]any{"date": "2025-05-30T22:10:00Z", "service": "s3", "region": "eu-west-1"}}
			}},
		{id: "deactivate", action: "aws.deactivate_key", approval: true, calls: []apicall.Call{iam("UpdateAccessKey"), iam("ListAccessKeys")},
			outputs: func(i int, cred string) map[string]any {
				return map[string]any{"access_key_id": cred, "status": "Inactive", "user_name": seedUser(i)}
			}},
		{id: "revoke_sessions", action: "aws.revoke_sessions", calls: []apicall.Call{iam("PutUserPolicy")},
			outputs: func(i int, cred string) map[string]any {
				return map[string]any{"policy_name": "stanch-revoke-sessions", "revoked_before": "2025-06-01T10:00:07Z", "user_name": seedUser(i)}
			}},
		{id: "impact", action: "aws.cloudtrail_impact", calls: lookups,
			outputs: func(i int, cred string) map[string]any {
				return map[string]any{"events": 137 + i%50, "regions": seedRegions, "window": "2025-05-25T10:00:00Z/2025-06-01T10:00:00Z",
					"apis":        map[string]any{"s3:GetObject": 61, "s3:ListBucket": 22, "sts:GetCallerIdentity": 14, "ec2:DescribeInstances": 11, "iam:ListUsers": 9, "iam:CreateAccessKey": 1},
					"source_ips":  []string{"203.0.113.7", "198.51.100.23", "192.0.2.44", "203.0.113.91"},
					"user_agents": []string{"aws-cli/2.15.0 Python/3.11.6 Linux/6.5.0", "Boto3/1.34.2 md/Botocore#1.34.2 ua/2.0 os/linux", "S3 Browser 11.5.7"},
					"findings":    map[string]any{"discovery": 3, "exfiltration": 1, "persistence": 1}}
			}},
		{id: "rotate", action: "aws.rotate_key", approval: true, calls: []apicall.Call{iam("CreateAccessKey")},
			outputs: func(i int, cred string) map[string]any {
				return map[string]any{"new_access_key_id": fmt.Sprintf("AKIAROTATED%09d", i), "secret_arn": "arn:aws:secretsmanager:us-east-1:" + account + ":secret:ci/" + seedUser(i)}
			}},
		{id: "notify", action: "slack.notify", calls: []apicall.Call{{Service: "slack", Operation: "chat.postMessage", Outcome: apicall.OK}},
			outputs: func(i int, cred string) map[string]any {
				return map[string]any{"channel": "C0INCIDENTS", "ts": fmt.Sprintf("1717236000.%06d", i)}
			}},
	}
}

func seedUser(i int) string { return fmt.Sprintf("ci-deployer-%05d", i) }

// seedAlert is a GitHub secret-scanning alert as received, its raw document
// about 2 KB; the alerts that join are GuardDuty findings about the same key.
func seedAlert(i int, cred string, at time.Time) (alert.Alert, error) {
	repo := fmt.Sprintf("acme/service-%04d", i%500)
	raw, err := json.Marshal(map[string]any{
		"number": i + 1, "created_at": at.Format(time.RFC3339), "updated_at": at.Format(time.RFC3339), "state": "open",
		"url":                      fmt.Sprintf("https://api.github.com/repos/%s/secret-scanning/alerts/%d", repo, i+1),
		"html_url":                 fmt.Sprintf("https://github.com/%s/security/secret-scanning/%d", repo, i+1),
		"locations_url":            fmt.Sprintf("https://api.github.com/repos/%s/secret-scanning/alerts/%d/locations", repo, i+1),
		"secret_type":              "aws_access_key_id",
		"secret_type_display_name": "Amazon AWS Access Key ID",
		"validity":                 "active", "publicly_leaked": false, "multi_repo": false, "push_protection_bypassed": false,
		"repository": map[string]any{"id": 700000000 + i, "node_id": fmt.Sprintf("R_kgDOJ%08d", i), "name": fmt.Sprintf("service-%04d", i%500),
			"full_name": repo, "private": true, "html_url": "https://github.com/" + repo, "default_branch": "main",
			"description": "Payment and invoicing service for the EU region: APIs, workers and the nightly reconciliation jobs.",
			"owner": map[string]any{"login": "acme", "id": 1000001, "type": "Organization", "html_url": "https://github.com/acme",
				"avatar_url": "https://avatars.githubusercontent.com/u/1000001?v=4"}},
		"first_location_detected": map[string]any{"path": "deploy/settings.py", "start_line": 12, "end_line": 12, "start_column": 19, "end_column": 39,
			"blob_sha": "4f1c9d2a7e3b5c6d8e9f0a1b2c3d4e5f6a7b8c9d", "commit_sha": "1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e",
			"commit_url": fmt.Sprintf("https://api.github.com/repos/%s/git/commits/1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e", repo)},
		"commit": map[string]any{"message": "Add deployment settings for the staging cluster and wire the nightly reconciliation job to the new bucket",
			"author": map[string]any{"name": "Dana Example", "email": "dana@example.com", "date": at.Add(-time.Hour).Format(time.RFC3339)}},
		"sender":       map[string]any{"login": "github-advanced-security[bot]", "id": 62310815, "type": "Bot"},
		"installation": map[string]any{"id": 41000000 + i%10, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uNDEwMDAwMDA="},
		"organization": map[string]any{"login": "acme", "id": 1000001, "url": "https://api.github.com/orgs/acme", "description": "ACME Corporation's engineering"},
	})
	if err != nil {
		return alert.Alert{}, err
	}
	return alert.Alert{Source: alert.SourceGitHub, Kind: alert.KindCredentialExposed, ReceivedAt: at,
		DedupKey:   fmt.Sprintf("github:%s:secret-scanning:%d", repo, i+1),
		Credential: alert.Credential{Provider: "aws", Kind: alert.CredentialAccessKey, ID: cred, Account: account},
		Location: alert.Location{Repo: repo, Path: "deploy/settings.py", Line: 12, Commit: "1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e",
			URL: fmt.Sprintf("https://github.com/%s/security/secret-scanning/%d", repo, i+1)},
		Severity: "high", Title: "Amazon AWS Access Key ID exposed in " + repo, Raw: raw}, nil
}

func seedJoinedAlert(i, j int, cred string, at time.Time) (alert.Alert, error) {
	raw, err := json.Marshal(map[string]any{
		"version": "0", "id": fmt.Sprintf("7bf73129-1428-4cd3-a780-%06d%06d", i, j), "detail-type": "GuardDuty Finding", "source": "aws.guardduty",
		"account": account, "time": at.Format(time.RFC3339), "region": "us-east-1",
		"detail": map[string]any{"type": "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS", "severity": 8,
			"title":       "Credentials used from an IP address outside AWS",
			"description": "API calls were made with the access key from 203.0.113.7, an address outside AWS that this account has not used before.",
			"resource":    map[string]any{"resourceType": "AccessKey", "accessKeyDetails": map[string]any{"accessKeyId": cred, "principalId": "AIDAEXAMPLE", "userName": seedUser(i), "userType": "IAMUser"}},
			"service": map[string]any{"action": map[string]any{"actionType": "AWS_API_CALL", "awsApiCallAction": map[string]any{"api": "ListBuckets", "serviceName": "s3.amazonaws.com",
				"remoteIpDetails": map[string]any{"ipAddressV4": "203.0.113.7", "country": map[string]any{"countryName": "Example"}}}}, "count": 3 + j}},
	})
	if err != nil {
		return alert.Alert{}, err
	}
	return alert.Alert{Source: alert.SourceGuardDuty, Kind: alert.KindCredentialMisused, ReceivedAt: at,
		DedupKey:   fmt.Sprintf("guardduty:%s:%d:%d", account, i, j),
		Credential: alert.Credential{Provider: "aws", Kind: alert.CredentialAccessKey, ID: cred, Account: account},
		Severity:   "high", Title: "Credentials used from an IP address outside AWS", Raw: raw}, nil
}

// seedExportRun writes run i as the runner leaves a run of the seeded
// playbook: the alert and two that joined it in one intake, each step's
// attempt, API calls and end, the two approvals decided in Slack, and the
// run's end. One run in twenty fails at its last step.
func seedExportRun(ctx context.Context, store *runner.Store, clock *seedClock, i int) error {
	cred := fmt.Sprintf("AKIAEXPORT%010d", i)
	created := clock.now()
	id := seedRunID(created, i, 0)
	newRun := func(joined int) []runner.NewRun {
		return []runner.NewRun{{ID: seedRunID(created, i, joined), Playbook: "contain", PlaybookFile: "playbooks/contain.yaml",
			PlaybookSource: []byte(containment), Correlate: true}}
	}
	started, err := seedAlert(i, cred, created)
	if err != nil {
		return err
	}
	items := []runner.Intake{{Alert: started, Runs: newRun(0)}}
	for j := 1; j <= 2; j++ {
		joined, err := seedJoinedAlert(i, j, cred, created.Add(time.Duration(j)*time.Minute))
		if err != nil {
			return err
		}
		items = append(items, runner.Intake{Alert: joined, Runs: newRun(j)})
	}
	got, err := store.CreateRunsBatch(ctx, items, nil)
	if err != nil {
		return err
	}
	if len(got[0].Created) != 1 || len(got[1].Joined) != 1 || len(got[2].Joined) != 1 {
		return fmt.Errorf("the intake did not create one run that two alerts joined: %+v", got)
	}
	failed := i%20 == 19
	steps := seedSteps()
	for seq, s := range steps {
		if s.approval {
			if _, err := store.RequestApproval(ctx, id, s.id, runner.ApprovalRequest{Approvers: []string{"security-oncall", "U024BE7LH"},
				Message: "Approve " + s.action + " for " + cred + "?", Deadline: clock.t.Add(24 * time.Hour), Channel: "#incidents",
				Effects: []actions.Effect{{Description: fmt.Sprintf("%s on access key %s of user %s in account %s", s.action, cred, seedUser(i), account)}},
				Plan:    "1 change"}); err != nil {
				return err
			}
			if _, _, err := store.Decide(ctx, id, s.id, runner.Approved, runner.Approver{ID: "U024BE7LH", Name: "Dana Example"}, "slack"); err != nil {
				return err
			}
		}
		attempt, err := store.BeginAttempt(ctx, id, s.id, seq, s.action)
		if err != nil {
			return err
		}
		calls := make([]apicall.Call, len(s.calls))
		for k, c := range s.calls {
			c.At, c.Duration = clock.now(), time.Duration(40+k*7)*time.Millisecond
			c.RequestID = fmt.Sprintf("%08x-%04x-4%03x-8000-%012x", i, seq, k, i*100+seq*10+k)
			calls[k] = c
		}
		end := runner.StepEnd{Seq: seq, Action: s.action, Attempt: attempt.Number, Status: runner.StepSucceeded, Outcome: string(actions.Done),
			Message: fmt.Sprintf("%s done for %s", s.action, cred), Outputs: s.outputs(i, cred)}
		if seq == 0 {
			end.Owner = &actions.Owner{Account: account, User: seedUser(i), Credential: cred, By: s.id}
		}
		if failed && seq == len(steps)-1 {
			calls[len(calls)-1].Outcome, calls[len(calls)-1].Error = apicall.Failed, "channel_not_found"
			end.Status, end.Outcome, end.Outputs, end.Error = runner.StepFailed, runner.OutcomeFailed, nil, "slack chat.postMessage: channel_not_found"
		}
		if err := store.AddCalls(ctx, id, s.id, attempt.Number, calls); err != nil {
			return err
		}
		if err := store.FinishStep(ctx, id, s.id, end); err != nil {
			return err
		}
	}
	u := runner.RunUpdate{Status: runner.RunSucceeded, Event: "run_succeeded", Detail: "every step succeeded"}
	if failed {
		u = runner.RunUpdate{Status: runner.RunFailed, FailedStep: "notify", Error: "slack chat.postMessage: channel_not_found", Event: "run_failed", Detail: "step notify failed"}
	}
	return store.UpdateRun(ctx, id, u)
}
