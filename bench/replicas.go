package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/stanchhq/stanch/runner"
)

// pgResult is the PostgreSQL section of the report: acknowledgement and
// the burst with one and three replicas, and the takeover after a kill.
type pgResult struct {
	unavailable string // why nothing was measured
	failed      string // the measurement that failed, and how
	version     string
	ack         [2]ackResult   // 1 and 3 replicas
	burst       [2]burstResult // 1 and 3 replicas
	// sqliteAck and sqliteBurst are the same harness on one process and
	// the embedded SQLite store.
	sqliteAck   ackResult
	sqliteBurst burstResult
	takeover    takeoverResult
}

var pgReplicaCounts = [2]int{1, 3}

// postgresFigures measures everything of the section; a failure is kept
// in the result (and printed) instead of ending the benchmark, so that the
// SQLite figures of the same run are still written.
func postgresFigures(ctx context.Context) pgResult {
	base, version, unavailable := pgServer(ctx)
	if unavailable != "" {
		fmt.Fprintln(os.Stderr, "bench: PostgreSQL unavailable:", unavailable)
		return pgResult{unavailable: unavailable}
	}
	res := pgResult{version: version}
	failed := func(what string, err error) pgResult {
		res.failed = fmt.Sprintf("%s: %v", what, err)
		fmt.Fprintln(os.Stderr, "bench: PostgreSQL:", res.failed)
		return res
	}
	dir, err := os.MkdirTemp("", "stanch-bench-pgbin-")
	if err != nil {
		return failed("build", err)
	}
	defer os.RemoveAll(dir)
	bin, err := buildStanch(ctx, dir)
	if err != nil {
		return failed("build", err)
	}
	if res.sqliteAck, err = pgAcknowledge(ctx, bin, "sqlite", 1, 2000, 16); err != nil {
		return failed("acknowledgement on SQLite", err)
	}
	if res.sqliteBurst, err = pgBurst(ctx, bin, "sqlite", 1, 100, 10, 50*time.Millisecond); err != nil {
		return failed("burst on SQLite", err)
	}
	for i, n := range pgReplicaCounts {
		if res.ack[i], err = pgAcknowledge(ctx, bin, base, n, 2000, 16); err != nil {
			return failed(fmt.Sprintf("acknowledgement with %d replica(s)", n), err)
		}
		if res.burst[i], err = pgBurst(ctx, bin, base, n, 100, 10, 50*time.Millisecond); err != nil {
			return failed(fmt.Sprintf("burst with %d replica(s)", n), err)
		}
	}
	if res.takeover, err = pgTakeover(ctx, bin, base, 10, 300*time.Millisecond); err != nil {
		return failed("takeover", err)
	}
	return res
}

// spread hands alert i to the live replicas in turn.
func spread(c *pgCluster, i int) string {
	live := c.live()
	return live[i%len(live)].base
}

func benchClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
}

// pgAcknowledge posts n distinct alerts from clients at once, spread over
// the replicas, measures the answers, then waits for every key to be
// contained.
func pgAcknowledge(ctx context.Context, bin, base string, replicas, n, clients int) (ackResult, error) {
	c, err := newPGCluster(ctx, bin, base, "ack", pgSeed(n, 0, 0), 0, replicas)
	if err != nil {
		return ackResult{}, err
	}
	defer c.close()
	client := benchClient()
	var mu sync.Mutex
	var lat []time.Duration
	failed := 0
	next := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Go(func() {
			for i := range next {
				d, ok := pgPost(client, spread(c, i), healthEvent(keyID(i), 300000+i))
				mu.Lock()
				if ok {
					lat = append(lat, d)
				} else {
					failed++
				}
				mu.Unlock()
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
	deadline := time.Now().Add(3 * time.Minute)
	for c.sb.EffectiveCount("UpdateAccessKey") < len(lat) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	res.contained, res.drained = c.sb.EffectiveCount("UpdateAccessKey"), time.Since(start)
	if res.contained < len(lat) {
		return res, fmt.Errorf("acknowledged %d alerts but only %d keys were contained", len(lat), res.contained)
	}
	return res, nil
}

// pgBurst posts accounts×users keys of other accounts, as fast as 32
// clients can, spread over the replicas, at latency per AWS call.
func pgBurst(ctx context.Context, bin, base string, replicas, accounts, users int, latency time.Duration) (burstResult, error) {
	c, err := newPGCluster(ctx, bin, base, "burst", pgSeed(0, accounts, users), latency, replicas)
	if err != nil {
		return burstResult{}, err
	}
	defer c.close()
	client := benchClient()
	type sent struct {
		key, acct string
		i         int
		at        time.Time
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
				s.at = time.Now()
				_, ok := pgPost(client, spread(c, s.i), []byte(event))
				mu.Lock()
				if ok {
					sends = append(sends, s)
				} else {
					lost++
				}
				mu.Unlock()
			}
		})
	}
	start := time.Now()
	for a := range accounts {
		for u := range users {
			jobs <- sent{key: burstKey(a, u), acct: burstAccount(a), i: a*users + u}
		}
	}
	close(jobs)
	wg.Wait()
	n := accounts * users
	deadline := time.Now().Add(5 * time.Minute)
	var contained map[string]time.Time
	for {
		contained = map[string]time.Time{}
		for _, call := range c.sb.Calls() {
			if call.Action == "UpdateAccessKey" && call.Effective {
				contained[call.Params["AccessKeyId"]] = call.Time
			}
		}
		if len(contained) >= n-lost || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	var last time.Time
	var lat []time.Duration
	for _, s := range sends {
		if at, ok := contained[s.key]; ok {
			lat = append(lat, at.Sub(s.at))
			if at.After(last) {
				last = at
			}
		}
	}
	lost += len(sends) - len(lat)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return burstResult{alerts: n, accounts: accounts, total: last.Sub(start), p50: pct(lat, 50), p99: pct(lat, 99), lost: lost}, nil
}

type takeoverResult struct {
	kills   int
	times   []time.Duration // kill to the run's next journal entry, sorted
	missed  int             // runs with no entry within a minute of the kill
	takenBy int             // next entries that were run_taken_over
	latency time.Duration
}

// pgTakeover runs three replicas and, kills times, sends one alert, waits
// for its run to be mid-step (one of its AWS calls in flight at the
// sandbox), SIGKILLs the replica making that call, restarts it at once,
// and measures from the kill to the run's next journal entry, which
// another replica writes.
func pgTakeover(ctx context.Context, bin, base string, kills int, latency time.Duration) (takeoverResult, error) {
	c, err := newPGCluster(ctx, bin, base, "takeover", pgSeed(kills, 0, 0), latency, 3)
	if err != nil {
		return takeoverResult{}, err
	}
	defer c.close()
	client := benchClient()
	res := takeoverResult{kills: kills, latency: latency}
	for k := range kills {
		key := keyID(k)
		if _, ok := pgPost(client, spread(c, k), healthEvent(key, 400000+k)); !ok {
			return res, fmt.Errorf("kill %d: the alert was not accepted", k+1)
		}
		// Let the run get into its steps (the second AWS call or later),
		// then kill the replica whose call is in flight.
		var victim *pgReplica
		deadline := time.Now().Add(30 * time.Second)
		for victim == nil {
			if time.Now().After(deadline) {
				return res, fmt.Errorf("kill %d: the run of %s never had an AWS call in flight", k+1, key)
			}
			if pgCallsAbout(c, key) >= 1+k%3 {
				live := c.live()
				keys := make([]string, len(live))
				for i, p := range live {
					keys[i] = p.key
				}
				if busy := c.front.busy(keys); busy != "" {
					for _, p := range live {
						if p.key == busy {
							victim = p
						}
					}
				}
			}
			if victim == nil {
				time.Sleep(2 * time.Millisecond)
			}
		}
		killedAt, err := c.kill(victim)
		if err != nil {
			return res, err
		}
		if _, err := c.start(victim.slot); err != nil {
			return res, err
		}
		run, err := pgRunOf(ctx, c, key)
		if err != nil {
			return res, err
		}
		var next runner.Entry
		found := false
		for until := killedAt.Add(time.Minute); !found && time.Now().Before(until); {
			journal, err := c.store.Journal(ctx, run)
			if err != nil {
				return res, err
			}
			for _, e := range journal {
				if e.At.After(killedAt) {
					next, found = e, true
					break
				}
			}
			if !found {
				time.Sleep(20 * time.Millisecond)
			}
		}
		if !found {
			res.missed++
			fmt.Fprintf(os.Stderr, "bench: takeover: run %s has no journal entry within a minute of the kill\n", run)
			continue
		}
		res.times = append(res.times, next.At.Sub(killedAt))
		if next.Event == "run_taken_over" {
			res.takenBy++
		}
		// The next kill starts from a quiet cluster.
		for until := time.Now().Add(time.Minute); ; {
			r, err := c.store.Run(ctx, run)
			if err != nil {
				return res, err
			}
			if r.Status == runner.RunSucceeded || r.Status == runner.RunFailed || r.Status == runner.RunCancelled {
				break
			}
			if time.Now().After(until) {
				return res, fmt.Errorf("kill %d: run %s did not end within a minute of its takeover", k+1, run)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	sort.Slice(res.times, func(i, j int) bool { return res.times[i] < res.times[j] })
	return res, nil
}

// pgCallsAbout counts the AWS calls the sandbox answered about key (or its
// user).
func pgCallsAbout(c *pgCluster, key string) int {
	user := "user" + strings.TrimPrefix(key, "AKIABENCH")[6:]
	n := 0
	for _, call := range c.sb.Calls() {
		if call.Params["AccessKeyId"] == key || call.Params["UserName"] == user {
			n++
		}
	}
	return n
}

// pgRunOf is the run of the alert about key.
func pgRunOf(ctx context.Context, c *pgCluster, key string) (string, error) {
	for until := time.Now().Add(10 * time.Second); time.Now().Before(until); time.Sleep(20 * time.Millisecond) {
		runs, err := c.store.ListRuns(ctx, runner.ListFilter{Limit: 20})
		if err != nil {
			return "", err
		}
		for _, r := range runs {
			if r.Alert.Credential.ID == key {
				return r.ID, nil
			}
		}
	}
	return "", fmt.Errorf("no run for %s", key)
}

func (r pgResult) render() string {
	var b strings.Builder
	b.WriteString("\n## PostgreSQL: several replicas\n\n")
	if r.unavailable != "" {
		fmt.Fprintf(&b, "**PostgreSQL was unavailable, so nothing of this section was measured in this run:** %s.\n", r.unavailable)
		return b.String()
	}
	fmt.Fprintf(&b, "PostgreSQL %s on the same machine, a fresh database for each figure, and the stanch binary: one or three `stanch serve`\n"+
		"processes (20 containment workers each, `--rate-limit 0`) behind one sandbox, the alerts handed to the replicas in turn\n"+
		"through the EventBridge endpoint. Unlike the SQLite figures above (the runner in the benchmark's process), every answer\n"+
		"here crosses the binary's HTTP server. Acknowledgement: 2000 distinct alerts from 16 concurrent clients, no injected\n"+
		"latency. Burst: 1000 distinct keys in 100 accounts (each reached through its response role) from 32 clients, 50 ms per\n"+
		"AWS call. Targets: acknowledgement p99 ≤ 20 ms; three replicas drain the burst at least 2× faster than one.\n\n", strings.Fields(r.version)[0])
	if r.failed != "" {
		fmt.Fprintf(&b, "**The measurement failed in this run:** %s.\n", r.failed)
		return b.String()
	}
	a1, a3, b1, b3 := r.ack[0], r.ack[1], r.burst[0], r.burst[1]
	b.WriteString("| store | ack p50 | ack p99 | accepted alerts per second | ack failed | all 2000 contained after | burst: all 1000 contained after | burst per-alert p50 | burst per-alert p99 | burst alerts lost |\n|---|---|---|---|---|---|---|---|---|---|\n")
	row := func(name string, a ackResult, u burstResult) {
		fmt.Fprintf(&b, "| %s | %s | %s | %.0f | %d | %.1f s | %.1f s | %s | %s | %d |\n", name, ms(a.p50), ms(a.p99), a.perSecond, a.failed, a.drained.Seconds(),
			u.total.Seconds(), ms(u.p50), ms(u.p99), u.lost)
	}
	for i, n := range pgReplicaCounts {
		row(fmt.Sprintf("PostgreSQL, %d replica(s)", n), r.ack[i], r.burst[i])
	}
	row("embedded SQLite, 1 process (reference, same harness)", r.sqliteAck, r.sqliteBurst)
	fmt.Fprintf(&b, "\nThree replicas drain the burst %.1f× as fast as one; they accept alerts %.1f× as fast.\n",
		b1.total.Seconds()/max(b3.total.Seconds(), 0.001), a3.perSecond/max(a1.perSecond, 0.001))

	t := r.takeover
	fmt.Fprintf(&b, "\n### Takeover after a SIGKILL\n\nThree replicas, %s per AWS call, one run at a time: once the run is in its steps, the replica that has one of\n"+
		"its AWS calls in flight is SIGKILLed (and restarted at once, as a supervisor would); the time is from the kill to the\n"+
		"run's next journal entry, written by another replica. Target: max ≤ 15 s.\n\n", t.latency)
	b.WriteString("| kills | takeover p50 | takeover max | min | next entry was run_taken_over | no entry within a minute |\n|---|---|---|---|---|---|\n")
	if len(t.times) == 0 {
		fmt.Fprintf(&b, "| %d | - | - | - | 0 | %d |\n", t.kills, t.missed)
	} else {
		fmt.Fprintf(&b, "| %d | %.1f s | %.1f s | %.1f s | %d | %d |\n", t.kills, pct(t.times, 50).Seconds(), t.times[len(t.times)-1].Seconds(), t.times[0].Seconds(), t.takenBy, t.missed)
	}
	return b.String()
}
