// Command bench measures stanch against the sandbox and writes
// docs/benchmarks.md (`make bench`): time to contain (webhook request sent
// to the UpdateAccessKey that makes the key Inactive) beside the same AWS
// calls made directly with the SDK, the acknowledgement latency and
// throughput of the webhook, a burst of 1,000 keys over 100 accounts with
// and without long impact queries, the AWS CLI runbook side by side, the
// memory of waiting runs, an idle stanch serve's CPU and writes, and the
// CloudTrail impact query against its rate limit. -only runs one part
// (ack, contain, idle or impact) and prints it.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/stanchhq/stanch/actions"
	awsactions "github.com/stanchhq/stanch/actions/aws"
	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/playbooks"
	"github.com/stanchhq/stanch/runner"
	"github.com/stanchhq/stanch/sandbox"
	"github.com/stanchhq/stanch/triggers"
)

const (
	account         = "111122223333"
	responderKey    = "AKIAIOSFODNN7RESPOND"
	responderSecret = "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"
	hookSecret      = "bench-eventbridge-secret"
)

// containment is the hot path measured: the containment steps of the
// example playbook.
const containment = `
name: contain
steps:
  - id: identify
    action: aws.identify_key
    with: {access_key_id: "${{ alert.credential.id }}"}
  - id: deactivate
    action: aws.deactivate_key
    with:
      access_key_id: ${{ alert.credential.id }}
      user_name: ${{ steps.identify.outputs.user_name }}
      account: ${{ steps.identify.outputs.account }}
  - id: revoke_sessions
    action: aws.revoke_sessions
    with:
      user_name: ${{ steps.identify.outputs.user_name }}
`

func main() {
	alerts := flag.Int("alerts", 200, "alerts per latency")
	latencies := flag.String("latencies", "0ms,50ms", "injected latency per AWS call, comma-separated")
	out := flag.String("out", "", "also write the report to this markdown file")
	only := flag.String("only", "", "run one benchmark only and print it: ack, contain, idle or impact")
	idleWindow := flag.Duration("idle", time.Minute, "how long the idle benchmark watches stanch serve")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the run to this file")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fail(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fail(err)
		}
		defer pprof.StopCPUProfile()
	}
	ctx := context.Background()
	if *only == "ack" {
		ack, err := acknowledge(ctx, 2000, 16)
		if err != nil {
			fail(err)
		}
		fmt.Print(ack.render())
		pprof.StopCPUProfile()
		return
	} else if *only == "idle" {
		idle, err := idleCost(ctx, 100, *idleWindow)
		if err != nil {
			fail(err)
		}
		fmt.Print(idle.render())
		return
	} else if *only == "contain" {
		rows, err := containRows(ctx, *latencies, *alerts)
		if err != nil {
			fail(err)
		}
		fmt.Print(render(rows, *alerts))
		pprof.StopCPUProfile()
		return
	} else if *only == "impact" {
		impact, err := impactQuery(ctx)
		if err != nil {
			fail(err)
		}
		fmt.Print(impact.render())
		return
	} else if *only != "" {
		fail(fmt.Errorf("-only %q: the benchmarks that run alone are: ack, contain, idle, impact", *only))
	}

	rows, err := containRows(ctx, *latencies, *alerts)
	if err != nil {
		fail(err)
	}
	ack, err := acknowledge(ctx, 2000, 16)
	if err != nil {
		fail(err)
	}
	burst, err := burstContain(ctx, 100, 10, 50*time.Millisecond, 0)
	if err != nil {
		fail(err)
	}
	busy, err := burstContain(ctx, 100, 10, 50*time.Millisecond, 20)
	if err != nil {
		fail(err)
	}
	mem, err := waitingMemory(ctx, 1000)
	if err != nil {
		fail(err)
	}
	idle, err := idleCost(ctx, 100, *idleWindow)
	if err != nil {
		fail(err)
	}
	cli, err := runbook(ctx, 10)
	if err != nil {
		fail(err)
	}
	cli.stanch = rows[0].revoke[0]
	impact, err := impactQuery(ctx)
	if err != nil {
		fail(err)
	}
	report := render(rows, *alerts) + renderBurst(burst, busy) + cli.render() + ack.render() + mem.render() + idle.render() + impact.render()
	fmt.Print(report)
	if *out != "" {
		if err := os.WriteFile(*out, []byte(report), 0o644); err != nil {
			fail(err)
		}
	}
}

// containRows measures the time to contain at each of the comma-separated
// latencies.
func containRows(ctx context.Context, latencies string, n int) ([]row, error) {
	var rows []row
	for _, l := range strings.Split(latencies, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(l))
		if err != nil {
			return nil, err
		}
		r, err := timeToContain(ctx, n, d)
		if err != nil {
			return nil, err
		}
		rows = append(rows, r)
	}
	return rows, nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

type row struct {
	latency       time.Duration
	p50, p95, p99 time.Duration
	// revoke is the time to the session-revoking policy, p50/p95/p99.
	revoke [3]time.Duration
	floor  time.Duration // median summed SDK round trips
	lost   int
}

func keyID(i int) string { return fmt.Sprintf("AKIABENCH%011d", i) }

func seed(n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "accounts:\n  - id: %q\n    users:\n      - name: stanch-responder\n        keys: [{id: %s, secret: %s}]\n", account, responderKey, responderSecret)
	for i := range n {
		fmt.Fprintf(&b, "      - name: user%05d\n        keys: [{id: %s, secret: benchSecretBenchSecretBenchSecret%07d}]\n", i, keyID(i), i)
	}
	return b.String()
}

func healthEvent(key string, i int) []byte {
	return []byte(fmt.Sprintf(`{"version":"0","id":"bench-%d","detail-type":"AWS Health Event","source":"aws.health","account":%q,"time":"2026-11-28T12:00:00Z","region":"us-east-1","resources":[%q],
"detail":{"eventArn":"arn:aws:health:us-east-1::event/RISK/AWS_RISK_CREDENTIALS_EXPOSED/bench-%d","service":"RISK","eventTypeCode":"AWS_RISK_CREDENTIALS_EXPOSED","eventTypeCategory":"issue",
"eventMetadata":{"accountId":%q,"publicKey":%q},"affectedEntities":[{"entityValue":%q}]}}`, i, account, key, i, account, key, key))
}

// timeToContain sends n alerts one after another through the EventBridge
// endpoint and measures each from just before its request is sent to the
// sandbox's receipt of the effective UpdateAccessKey.
func timeToContain(ctx context.Context, n int, latency time.Duration) (row, error) {
	h, err := newHarness(ctx, n+40, latency, 50)
	if err != nil {
		return row{}, err
	}
	defer h.close()
	cfg := h.cfg

	// Warm up: the first alert pays for connections and the identity cache.
	if _, _, err := sendAndWait(h, n+10, n+10); err != nil {
		return row{}, err
	}
	var samples, revoked []time.Duration
	lost := 0
	for i := range n {
		d, r, err := sendAndWait(h, i, i)
		if err != nil {
			lost++
			continue
		}
		samples, revoked = append(samples, d), append(revoked, r)
	}
	floor, err := sdkFloor(ctx, cfg, n+11, 15)
	if err != nil {
		return row{}, err
	}
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	sort.Slice(revoked, func(i, j int) bool { return revoked[i] < revoked[j] })
	return row{latency: latency, p50: pct(samples, 50), p95: pct(samples, 95), p99: pct(samples, 99),
		revoke: [3]time.Duration{pct(revoked, 50), pct(revoked, 95), pct(revoked, 99)}, floor: floor, lost: lost}, nil
}

// sendAndWait returns the time to the key's deactivation and to the
// session-revoking policy on its user.
func sendAndWait(h *harness, i, event int) (deactivated, revoked time.Duration, err error) {
	key := keyID(i)
	req, _ := http.NewRequest(http.MethodPost, h.hook.URL, bytes.NewReader(healthEvent(key, event)))
	req.Header.Set("X-Stanch-Token", hookSecret)
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("alert %d: HTTP %d", i, res.StatusCode)
	}
	user := fmt.Sprintf("user%05d", i)
	// Looked at after each AWS call the sandbox answers, not in a loop:
	// the benchmark shares the process and its CPU with stanch.
	deadline := time.After(30 * time.Second)
	for {
		d, okD := effectiveAt(h.sb, "UpdateAccessKey", "AccessKeyId", key)
		r, okR := effectiveAt(h.sb, "PutUserPolicy", "UserName", user)
		if okD && okR {
			return d.Sub(start), r.Sub(start), nil
		}
		select {
		case <-h.answered:
		case <-deadline:
			return 0, 0, fmt.Errorf("alert %d: key never contained", i)
		}
	}
}

// effectiveAt is when the sandbox received the effective call of action
// whose param has value.
func effectiveAt(sb *sandbox.Sandbox, action, param, value string) (time.Time, bool) {
	calls := sb.Calls()
	for i := len(calls) - 1; i >= 0; i-- {
		c := calls[i]
		if c.Action == action && c.Effective && c.Params[param] == value {
			return c.Time, true
		}
	}
	return time.Time{}, false
}

// sdkFloor is the median, over repeats, of the summed round trips of the
// calls the containment steps make, made directly with the SDK.
func sdkFloor(ctx context.Context, cfg aws.Config, firstKey, repeats int) (time.Duration, error) {
	stsc, iamc := sts.NewFromConfig(cfg), iam.NewFromConfig(cfg)
	var totals []time.Duration
	for i := range repeats {
		key := keyID(firstKey + i)
		start := time.Now()
		if _, err := stsc.GetAccessKeyInfo(ctx, &sts.GetAccessKeyInfoInput{AccessKeyId: aws.String(key)}); err != nil {
			return 0, err
		}
		last, err := iamc.GetAccessKeyLastUsed(ctx, &iam.GetAccessKeyLastUsedInput{AccessKeyId: aws.String(key)})
		if err != nil {
			return 0, err
		}
		if _, err := iamc.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: last.UserName}); err != nil {
			return 0, err
		}
		if _, err := iamc.UpdateAccessKey(ctx, &iam.UpdateAccessKeyInput{AccessKeyId: aws.String(key), Status: iamtypes.StatusTypeInactive, UserName: last.UserName}); err != nil {
			return 0, err
		}
		totals = append(totals, time.Since(start))
	}
	sort.Slice(totals, func(i, j int) bool { return totals[i] < totals[j] })
	return totals[len(totals)/2], nil
}

// awsConfig is the SDK configuration stanch gets from the environment in
// production, pointed at url. It carries one HTTP client, as
// config.LoadDefaultConfig's does: without one, every SDK client stanch
// creates would dial connections of its own and keep them open.
func awsConfig(url string) aws.Config {
	return aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(url), HTTPClient: awshttp.NewBuildableClient(),
		Credentials: aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(responderKey, responderSecret, ""))}
}

func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[min(max(i-1, 0), len(sorted)-1)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

func render(rows []row, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Benchmarks\n\n")
	fmt.Fprintf(&b, "Measured by `make bench` (`go run ./bench -out docs/benchmarks.md`) on %s at commit %s, %d cores, Go %s, %s.\n\n",
		time.Now().UTC().Format("2006-01-02"), commit(), runtime.NumCPU(), strings.TrimPrefix(runtime.Version(), "go"), memory())
	fmt.Fprintf(&b, "## Time to contain\n\nFrom just before an authenticated EventBridge webhook request is sent to stanch to the moment the sandbox receives the\n`UpdateAccessKey` that makes the leaked key Inactive (and, in the sessions column, the `PutUserPolicy` that revokes its\nuser's sessions); %d alerts one after another, embedded SQLite store. The floor is the\nsummed round trips of the same AWS calls (GetAccessKeyInfo, GetAccessKeyLastUsed, ListAccessKeys, UpdateAccessKey) made\ndirectly with the SDK against the same sandbox; the overhead ratio is p50 ÷ floor.\n\n", n)
	fmt.Fprintf(&b, "| injected latency per AWS call | p50 | p95 | p99 | SDK floor | overhead ratio (p50) | sessions revoked p50 / p95 / p99 | alerts lost |\n|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		ratio := "-"
		if r.floor > 0 {
			ratio = fmt.Sprintf("%.2f", float64(r.p50)/float64(r.floor))
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s / %s / %s | %d |\n", r.latency, ms(r.p50), ms(r.p95), ms(r.p99), ms(r.floor), ratio,
			ms(r.revoke[0]), ms(r.revoke[1]), ms(r.revoke[2]), r.lost)
	}
	fmt.Fprintf(&b, "\nThe intake wakes the workers once an alert is committed, and SQLite statements are compiled once per connection\n(docs/runs.md, runner/stmtcache.go). Before that (commit 6a0923a, workers polling every 10 ms, every statement compiled\nat each use) the 0 ms row read p50 12.5 ms, p95 22.1 ms, p99 25.3 ms.\n")
	return b.String()
}

func memory() string {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "memory unknown"
	}
	var kb int
	fmt.Sscanf(strings.TrimSpace(strings.SplitN(string(data), "\n", 2)[0]), "MemTotal: %d kB", &kb)
	return fmt.Sprintf("%.0f GiB memory", float64(kb)/1024/1024)
}

func commit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

type impactResult struct {
	events  int
	regions int
	elapsed time.Duration
	bound   time.Duration
}

// impactQuery runs aws.cloudtrail_impact over 10,000 events in 4 regions
// against the sandbox's real 2 requests/s limit. The bound is the pages of
// one region divided by 2 per second, the regions being read in parallel.
func impactQuery(ctx context.Context) (impactResult, error) {
	const perRegion, pageSize = 2500, 50
	regions := []string{"us-east-1", "us-west-2", "eu-west-1", "ap-southeast-2"}
	sd, err := sandbox.ParseSeed("bench", []byte(seed(0)))
	if err != nil {
		return impactResult{}, err
	}
	sd.Accounts[0].Regions = regions
	sd.Accounts[0].EventGenerators = []sandbox.SeedEventGenerator{{AccessKeyID: keyID(0), User: "user00000", Regions: regions, Count: perRegion,
		Start: time.Now().Add(-48 * time.Hour), End: time.Now().Add(-time.Hour), Seed: 1}}
	sb, err := sandbox.New(sd, sandbox.Options{})
	if err != nil {
		return impactResult{}, err
	}
	srv := httptest.NewServer(sb)
	defer srv.Close()
	cfg := awsConfig(srv.URL)
	reg, err := actions.NewRegistry(awsactions.Actions(awsactions.NewProvider(awsactions.ProviderOptions{
		Config: func(context.Context, string) (aws.Config, error) { return cfg, nil },
	}))...)
	if err != nil {
		return impactResult{}, err
	}
	impact, _ := reg.Lookup("aws.cloudtrail_impact")
	params, err := impact.Decode(map[string]any{"access_key_id": keyID(0), "regions": "all"})
	if err != nil {
		return impactResult{}, err
	}
	start := time.Now()
	// As a run has it after aws.identify_key: the key's owner is known.
	res, err := impact.Do(ctx, actions.Env{Owner: actions.Owner{Account: account, Credential: keyID(0)}}, params)
	if err != nil {
		return impactResult{}, err
	}
	pages := (perRegion + pageSize - 1) / pageSize
	return impactResult{events: res.Outputs["events"].(int), regions: len(regions), elapsed: time.Since(start), bound: time.Duration(pages) * time.Second / 2}, nil
}

func (r impactResult) render() string {
	return fmt.Sprintf("\n## CloudTrail impact query\n\naws.cloudtrail_impact over %d events in %d regions (%d per region, 50 per page) against the sandbox's\nreal limit of 2 LookupEvents per second per account and region. The bound is one region's pages ÷ 2 per second\n(the regions are read in parallel).\n\n| events read | time | rate-limit bound | ratio |\n|---|---|---|---|\n| %d | %.1f s | %.1f s | %.2f× |\n",
		r.events, r.regions, r.events/max(r.regions, 1), r.events, r.elapsed.Seconds(), r.bound.Seconds(), float64(r.elapsed)/float64(r.bound))
}

type ackResult struct {
	n, clients int
	p50, p99   time.Duration
	perSecond  float64
	failed     int
	contained  int
	drained    time.Duration // from the first post until every key was contained
}

// acknowledge posts n distinct alerts from several clients at once and
// measures how fast the webhook answers (each answer means the alert and
// its run are committed to SQLite), while the workers contain them.
func acknowledge(ctx context.Context, n, clients int) (ackResult, error) {
	h, err := newHarness(ctx, n, 0, 0)
	if err != nil {
		return ackResult{}, err
	}
	defer h.close()
	hook := h.hook

	var mu sync.Mutex
	var lat []time.Duration
	failed := 0
	next := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Go(func() {
			for i := range next {
				req, _ := http.NewRequest(http.MethodPost, hook.URL, bytes.NewReader(healthEvent(keyID(i), 100000+i)))
				req.Header.Set("X-Stanch-Token", hookSecret)
				t0 := time.Now()
				res, err := http.DefaultClient.Do(req)
				d := time.Since(t0)
				mu.Lock()
				if err != nil || res.StatusCode != http.StatusOK {
					failed++
				} else {
					lat = append(lat, d)
				}
				mu.Unlock()
				if err == nil {
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(start)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	res := ackResult{n: n, clients: clients, p50: pct(lat, 50), p99: pct(lat, 99), perSecond: float64(len(lat)) / elapsed.Seconds(), failed: failed}
	// Every acknowledged alert must also be contained: an answer that lost
	// its alert would be no answer at all.
	deadline := time.Now().Add(2 * time.Minute)
	for h.sb.EffectiveCount("UpdateAccessKey") < len(lat) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	res.contained, res.drained = h.sb.EffectiveCount("UpdateAccessKey"), time.Since(start)
	if res.contained < len(lat) {
		return res, fmt.Errorf("acknowledged %d alerts but only %d keys were contained", len(lat), res.contained)
	}
	return res, nil
}

func (a ackResult) render() string {
	return fmt.Sprintf("\n## Webhook acknowledgement\n\n%d distinct alerts posted to the EventBridge endpoint by %d concurrent clients; an answer means the alert, its run and\nits job are committed to the embedded SQLite store with synchronous=FULL (the workers contain the keys meanwhile, on their own\nconnection). Alerts answered together share one commit. Then every acknowledged key is checked to be contained.\n\n| ack p50 | ack p99 | accepted alerts per second | failed | contained | all contained after |\n|---|---|---|---|---|---|\n| %s | %s | %.0f | %d | %d | %.1f s |\n",
		a.n, a.clients, ms(a.p50), ms(a.p99), a.perSecond, a.failed, a.contained, a.drained.Seconds())
}

// harness is the sandbox, a runner on a fresh SQLite store with the
// containment playbook, and the EventBridge endpoint in front of it.
type harness struct {
	sb   *sandbox.Sandbox
	cfg  aws.Config
	hook *httptest.Server
	// answered receives after the sandbox answered an AWS call.
	answered chan struct{}
	close    func()
}

// newHarness seeds keys users with a key each; perSecond limits the
// endpoint per source address (0: unlimited).
func newHarness(ctx context.Context, keys int, latency time.Duration, perSecond float64) (*harness, error) {
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	fail := func(err error) (*harness, error) {
		closeAll()
		return nil, err
	}
	sd, err := sandbox.ParseSeed("bench", []byte(seed(keys)))
	if err != nil {
		return nil, err
	}
	sb, err := sandbox.New(sd, sandbox.Options{Latency: latency})
	if err != nil {
		return nil, err
	}
	answered := make(chan struct{}, 1)
	awsSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sb.ServeHTTP(w, r)
		select {
		case answered <- struct{}{}:
		default:
		}
	}))
	closers = append(closers, awsSrv.Close)
	cfg := awsConfig(awsSrv.URL)
	reg, err := actions.NewRegistry(awsactions.Actions(awsactions.NewProvider(awsactions.ProviderOptions{
		Config: func(context.Context, string) (aws.Config, error) { return cfg, nil },
	}))...)
	if err != nil {
		return fail(err)
	}
	pb, err := playbooks.Parse("contain.yaml", []byte(containment), reg)
	if err != nil {
		return fail(err)
	}
	dir, err := os.MkdirTemp("", "stanch-bench-")
	if err != nil {
		return fail(err)
	}
	closers = append(closers, func() { os.RemoveAll(dir) })
	db, err := runner.OpenDatabase(ctx, "file:"+filepath.Join(dir, "stanch.db"))
	if err != nil {
		return fail(err)
	}
	closers = append(closers, func() { db.Close() })
	r, err := runner.New(ctx, runner.Config{DB: db, Registry: reg})
	if err != nil {
		return fail(err)
	}
	if err := r.Start(ctx); err != nil {
		return fail(err)
	}
	closers = append(closers, func() { _ = r.Stop(context.WithoutCancel(ctx)) })
	sink := &runner.Dispatcher{Runner: r, Playbooks: []*playbooks.Playbook{pb}}
	hook := httptest.NewServer(triggers.NewEventBridgeLimited("X-Stanch-Token", []byte(hookSecret), sink, slog.New(slog.DiscardHandler), perSecond))
	closers = append(closers, hook.Close)
	return &harness{sb: sb, cfg: cfg, hook: hook, answered: answered, close: closeAll}, nil
}

type runbookResult struct {
	n      int
	perKey time.Duration // median wall time of the AWS CLI runbook per alert
	stanch time.Duration // stanch's time to the same last call, p50
}

// runbook times bench/runbook.sh, the same containment calls made with the
// AWS CLI, against a sandbox without injected latency.
func runbook(ctx context.Context, n int) (runbookResult, error) {
	if _, err := exec.LookPath("aws"); err != nil {
		return runbookResult{}, fmt.Errorf("the AWS CLI is needed for the runbook comparison: %w", err)
	}
	h, err := newHarness(ctx, n, 0, 0)
	if err != nil {
		return runbookResult{}, err
	}
	defer h.close()
	script, err := filepath.Abs("bench/runbook.sh")
	if err != nil {
		return runbookResult{}, err
	}
	var times []time.Duration
	for i := range n {
		cmd := exec.CommandContext(ctx, "bash", script, keyID(i))
		cmd.Env = append(os.Environ(), "AWS_ENDPOINT_URL="+awsURL(h), "AWS_ACCESS_KEY_ID="+responderKey, "AWS_SECRET_ACCESS_KEY="+responderSecret,
			"AWS_DEFAULT_REGION=us-east-1", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_PAGER=")
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			return runbookResult{}, fmt.Errorf("runbook: %v: %s", err, out)
		}
		times = append(times, time.Since(start))
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	return runbookResult{n: n, perKey: pct(times, 50)}, nil
}

func awsURL(h *harness) string { return aws.ToString(h.cfg.BaseEndpoint) }

func (r runbookResult) render() string {
	ratio := float64(r.perKey) / float64(max(r.stanch, 1))
	return fmt.Sprintf("\n## Side by side with an AWS CLI runbook\n\n`bench/runbook.sh` makes the same containment calls with the AWS CLI (get-access-key-info, get-access-key-last-used,\nupdate-access-key, put-user-policy) against the same sandbox; median of %d alerts, against stanch's p50 time to the\nsession-revoking policy (0 ms injected latency).\n\n| AWS CLI runbook per alert | stanch per alert | stanch is faster by |\n|---|---|---|\n| %s | %s | %.0f× |\n",
		r.n, ms(r.perKey), ms(r.stanch), ratio)
}

type burstResult struct {
	alerts, accounts, impacts int
	total                     time.Duration // first request to last containment
	p50, p99                  time.Duration
	lost                      int
}

func burstKey(account, user int) string { return fmt.Sprintf("AKIABURST%03d%08d", account, user) }

func burstAccount(i int) string { return fmt.Sprintf("2000000%05d", i) }

// burstContain posts accounts×users distinct leaked keys, spread over as
// many accounts reached through their response role, as fast as 32
// clients can, at the given injected latency; with impacts > 0, that many
// long CloudTrail queries are running when the burst starts.
func burstContain(ctx context.Context, accounts, users int, latency time.Duration, impacts int) (burstResult, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "accounts:\n  - id: %q\n    users:\n      - name: stanch-responder\n        keys: [{id: %s, secret: %s}]\n", account, responderKey, responderSecret)
	if impacts > 0 {
		fmt.Fprintf(&b, "      - name: noisy\n        keys: [{id: AKIANOISYKEY00000000, secret: noisySecretNoisySecretNoisySecretNoisy00}]\n")
		fmt.Fprintf(&b, "    regions: [us-east-1]\n    event_generators: [{access_key_id: AKIANOISYKEY00000000, user: noisy, regions: [us-east-1], count: 1000, seed: 1}]\n")
	}
	for a := range accounts {
		fmt.Fprintf(&b, "  - id: %q\n    roles: [{name: stanch-responder, trusted_accounts: [%q], external_id: bench}]\n    users:\n", burstAccount(a), account)
		for u := range users {
			fmt.Fprintf(&b, "      - name: u%02d\n        keys: [{id: %s, secret: burstSecretBurstSecretBurstSecret%03d%03d}]\n", u, burstKey(a, u), a, u)
		}
	}
	sd, err := sandbox.ParseSeed("burst", []byte(b.String()))
	if err != nil {
		return burstResult{}, err
	}
	sb, err := sandbox.New(sd, sandbox.Options{Latency: latency})
	if err != nil {
		return burstResult{}, err
	}
	awsSrv := httptest.NewServer(sb)
	defer awsSrv.Close()
	cfg := awsConfig(awsSrv.URL)
	reg, err := actions.NewRegistry(awsactions.Actions(awsactions.NewProvider(awsactions.ProviderOptions{
		Config: func(context.Context, string) (aws.Config, error) { return cfg, nil },
		Roles:  &awsactions.ResponseRoles{ARN: "arn:aws:iam::{account}:role/stanch-responder", ExternalID: "bench"},
	}))...)
	if err != nil {
		return burstResult{}, err
	}
	contain, err := playbooks.Parse("contain.yaml", []byte(containment), reg)
	if err != nil {
		return burstResult{}, err
	}
	dir, err := os.MkdirTemp("", "stanch-bench-burst-")
	if err != nil {
		return burstResult{}, err
	}
	defer os.RemoveAll(dir)
	db, err := runner.OpenDatabase(ctx, "file:"+filepath.Join(dir, "stanch.db"))
	if err != nil {
		return burstResult{}, err
	}
	defer db.Close()
	r, err := runner.New(ctx, runner.Config{DB: db, Registry: reg, Workers: 100, InvestigationWorkers: max(impacts, 1)})
	if err != nil {
		return burstResult{}, err
	}
	if err := r.Start(ctx); err != nil {
		return burstResult{}, err
	}
	defer func() {
		// The impact queries may still be reading; do not wait for them.
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = r.Stop(stopCtx)
	}()
	if impacts > 0 {
		// Long investigations: each reads 1,000 events (20 pages at 2 per
		// second) on the investigation queue.
		investigate, err := playbooks.Parse("investigate.yaml", []byte("name: investigate\ncorrelate: false\nsteps:\n  - id: impact\n    action: aws.cloudtrail_impact\n    with: {access_key_id: \"${{ alert.credential.id }}\", regions: [us-east-1]}\n"), reg)
		if err != nil {
			return burstResult{}, err
		}
		for i := range impacts {
			a := alert.Alert{Source: alert.SourceManual, DedupKey: fmt.Sprintf("noise-%d", i), Credential: alert.Credential{ID: "AKIANOISYKEY00000000"}}
			a.Normalise(time.Now())
			if _, err := r.Submit(ctx, a, []*playbooks.Playbook{investigate}); err != nil {
				return burstResult{}, err
			}
		}
		time.Sleep(time.Second) // let the queries get going
	}
	hook := httptest.NewServer(triggers.NewEventBridgeLimited("X-Stanch-Token", []byte(hookSecret), &runner.Dispatcher{Runner: r, Playbooks: []*playbooks.Playbook{contain}}, slog.New(slog.DiscardHandler), 0))
	defer hook.Close()

	type sent struct {
		key  string
		user string
		acct string
		at   time.Time
	}
	jobs := make(chan sent)
	var mu sync.Mutex
	var sends []sent
	lost := 0
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for s := range jobs {
				event := fmt.Sprintf(`{"version":"0","id":"%s","detail-type":"AWS Health Event","source":"aws.health","account":%q,"resources":[%q],"detail":{"eventArn":"arn:aws:health:us-east-1::event/RISK/AWS_RISK_CREDENTIALS_EXPOSED/%s","eventTypeCode":"AWS_RISK_CREDENTIALS_EXPOSED","eventMetadata":{"accountId":%q,"publicKey":%q}}}`,
					s.key, s.acct, s.key, s.key, s.acct, s.key)
				req, _ := http.NewRequest(http.MethodPost, hook.URL, strings.NewReader(event))
				req.Header.Set("X-Stanch-Token", hookSecret)
				s.at = time.Now()
				res, err := http.DefaultClient.Do(req)
				mu.Lock()
				if err != nil || res.StatusCode != http.StatusOK {
					lost++
				} else {
					sends = append(sends, s)
				}
				mu.Unlock()
				if err == nil {
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
				}
			}
		})
	}
	start := time.Now()
	for a := range accounts {
		for u := range users {
			jobs <- sent{key: burstKey(a, u), user: fmt.Sprintf("u%02d", u), acct: burstAccount(a)}
		}
	}
	close(jobs)
	wg.Wait()
	n := accounts * users
	deadline := time.Now().Add(5 * time.Minute)
	var last time.Time
	var lat []time.Duration
	for {
		contained := map[string]time.Time{}
		for _, c := range sb.Calls() {
			if c.Action == "UpdateAccessKey" && c.Effective {
				contained[c.Params["AccessKeyId"]] = c.Time
			}
		}
		if len(contained) >= n-lost || time.Now().After(deadline) {
			lat = lat[:0]
			for _, s := range sends {
				if at, ok := contained[s.key]; ok {
					lat = append(lat, at.Sub(s.at))
					if at.After(last) {
						last = at
					}
				}
			}
			lost += len(sends) - len(lat)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return burstResult{alerts: n, accounts: accounts, impacts: impacts, total: last.Sub(start), p50: pct(lat, 50), p99: pct(lat, 99), lost: lost}, nil
}

func renderBurst(quiet, busy burstResult) string {
	worse := (float64(busy.p99)/float64(max(quiet.p99, 1)) - 1) * 100
	return fmt.Sprintf("\n## Burst\n\n%d distinct leaked keys in %d sandbox accounts (each reached through its response role), posted by 32 clients\nas fast as they can, 50 ms injected latency per AWS call, 100 containment workers. The second row has %d long\nCloudTrail impact queries running on the investigation queue when the burst starts.\n\n| impact queries running | all contained after | per-alert p50 | per-alert p99 | alerts lost |\n|---|---|---|---|---|\n| 0 | %.1f s | %s | %s | %d |\n| %d | %.1f s | %s | %s | %d |\n\nContainment p99 with the queries running: %+.0f%%.\n",
		quiet.alerts, quiet.accounts, busy.impacts, quiet.total.Seconds(), ms(quiet.p50), ms(quiet.p99), quiet.lost,
		busy.impacts, busy.total.Seconds(), ms(busy.p50), ms(busy.p99), busy.lost, worse)
}
