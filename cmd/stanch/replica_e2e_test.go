package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/runner"
)

// TestThreeReplicasSurviveKills runs three `stanch serve` processes (the
// real binary) on one fresh PostgreSQL database, behind one sandbox whose
// AWS calls take 100–300 ms each. 300 alerts (AWS Health events, one leaked
// key each) are spread over the three through the EventBridge webhook, a
// refused or unanswered delivery being sent again to another replica. During
// the burst, a replica is SIGKILLed three times (restarted at once each
// time, with the same flags) and one is stopped with SIGSTOP for longer than
// a lease, then resumed. Each disruption lands while the replica has an AWS
// call in flight, so that it always leaves runs mid-step.
//
// After every run has ended it checks: every accepted alert has exactly one
// run, and it succeeded; every key is Inactive; the sandbox received exactly
// one effective UpdateAccessKey per key and one effective PutUserPolicy per
// user, and no other effective AWS write; Slack holds one message per run
// and message key; each step of each run is journalled as succeeded once;
// every run a disruption left mid-step was taken over (run_taken_over in its
// journal), its next journal entry came within 15 s of the disruption, and no
// run took more than 15 s longer than the median run that no disruption
// touched; the stopped replica, once resumed, made no AWS write about any key
// whose run another replica had taken over from it meanwhile.
//
// Which process made which AWS call is told by the access key that signed
// it: each process gets its own. The schedule comes from a seed that the
// log prints; STANCH_REPLICA_SEED repeats it. The whole test is bounded by 3
// minutes, and a run that a disruption left mid-step and that no replica has
// touched 25 s later fails it at once.
func TestThreeReplicasSurviveKills(t *testing.T) {
	base := os.Getenv("STANCH_TEST_POSTGRES")
	if base == "" {
		t.Skip("STANCH_TEST_POSTGRES is not set: the three-replica test needs PostgreSQL (make test and .ci/run start it; by hand: source .ci/postgres.sh; start_postgres)")
	}
	const (
		alerts   = 300
		burst    = 36 * time.Second // the alerts are sent evenly over it
		pause    = 12 * time.Second // SIGSTOP to SIGCONT: longer than a lease (5 s)
		takeover = 15 * time.Second // the most a kill may add to a run
		// silent is how long after a disruption a run it left mid-step may
		// show no sign of life before the test gives up on it.
		silent = 25 * time.Second
	)
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("STANCH_REPLICA_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "STANCH_REPLICA_SEED")
		seed = v
	}
	t.Logf("seed %d (STANCH_REPLICA_SEED=%d repeats this schedule)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	deadline := time.Now().Add(3 * time.Minute)
	ctx := context.Background()

	// STANCH_REPLICA_BINARY runs another build (an older commit, a
	// release) through the same test.
	bin := os.Getenv("STANCH_REPLICA_BINARY")
	if bin == "" {
		bin = stanchBinary(t)
	}
	db := freshReplicaDatabase(t, base)
	c := newReplicaCluster(t, bin, db, alerts, 100*time.Millisecond, 300*time.Millisecond)
	// The first replica creates the tables alone; then the others join.
	for slot := range 3 {
		_, err := c.start(slot)
		require.NoError(t, err)
	}
	store := replicaStore(t, db)
	defer func() {
		if t.Failed() {
			t.Logf("replica logs:\n%s", c.logs(25))
		}
	}()

	// The sender: alert i leaves at burstStart + i×burst/alerts, whatever
	// happened to the ones before.
	deliveries := make([]*delivery, alerts)
	for i := range deliveries {
		deliveries[i] = &delivery{i: i, key: replicaLeakedKey(i)}
	}
	client := &http.Client{Timeout: 2 * time.Second}
	var senders sync.WaitGroup
	burstStart := time.Now()
	sendDeadline := burstStart.Add(burst + time.Minute)
	senders.Go(func() {
		for i, d := range deliveries {
			time.Sleep(time.Until(burstStart.Add(time.Duration(i) * burst / alerts)))
			senders.Go(func() { c.deliver(client, d, sendDeadline) })
		}
	})

	// The disruptions, each at a random moment of its window; the victim
	// is chosen at random (the stopped one is not killed afterwards, so that
	// what it does once resumed stays in view).
	plan := []struct {
		kind     string
		from, to time.Duration
	}{
		{"SIGKILL", 2 * time.Second, 4 * time.Second},
		{"SIGSTOP", 10 * time.Second, 11 * time.Second},
		{"SIGKILL", 24500 * time.Millisecond, 26 * time.Second},
		{"SIGKILL", 31 * time.Second, 33 * time.Second},
	}
	var disruptions []*replicaDisruption
	zombie := -1
	for _, p := range plan {
		at := burstStart.Add(p.from + time.Duration(rng.Int64N(int64(p.to-p.from))))
		slot := rng.IntN(3)
		if slot == zombie {
			slot = (slot + 1 + rng.IntN(2)) % 3
		}
		time.Sleep(time.Until(at))
		victim := c.current(slot)
		// A moment when it is mid-step: one of its AWS calls in flight.
		for gate := time.Now().Add(5 * time.Second); c.front.inFlight(victim.key) == 0 && time.Now().Before(gate); {
			time.Sleep(2 * time.Millisecond)
		}
		d := &replicaDisruption{kind: p.kind, proc: victim, inflight: c.front.inFlight(victim.key)}
		switch p.kind {
		case "SIGKILL":
			_, killedAt, err := c.kill(slot)
			require.NoError(t, err)
			d.at = killedAt
			_, err = c.start(slot)
			require.NoError(t, err, "restart replica %d", slot)
		case "SIGSTOP":
			zombie = slot
			require.NoError(t, victim.cmd.Process.Signal(syscall.SIGSTOP))
			d.at = time.Now()
			time.Sleep(pause)
			require.NoError(t, victim.cmd.Process.Signal(syscall.SIGCONT))
			d.resumed = time.Now()
		}
		disruptions = append(disruptions, d)
		t.Logf("%s %s at +%.1fs with %d AWS call(s) in flight%s", d.kind, victim, d.at.Sub(burstStart).Seconds(), d.inflight,
			map[bool]string{true: fmt.Sprintf(", SIGCONT after %.1fs", d.resumed.Sub(d.at).Seconds()), false: ""}[!d.resumed.IsZero()])
	}
	senders.Wait()
	accepted, resent := 0, 0
	for _, d := range deliveries {
		if d.dedup == "" {
			t.Errorf("alert %d (%s) was never accepted: %s", d.i, d.key, strings.Join(d.failures, "; "))
			continue
		}
		accepted++
		if d.tries > 1 {
			resent++
		}
	}

	// Wait for every run to end: polled from the store. A run that a
	// disruption left mid-step and that nobody has touched for `silent`
	// since ends the test at once: nothing took it over.
	var runs []runner.Run
	lastWatch := time.Time{}
	for {
		var err error
		runs, err = store.ListRuns(ctx, runner.ListFilter{})
		require.NoError(t, err)
		ended := 0
		for _, r := range runs {
			if replicaRunEnded(r) {
				ended++
			}
		}
		if len(runs) >= accepted && ended == len(runs) {
			break
		}
		if time.Since(lastWatch) > time.Second {
			lastWatch = time.Now()
			for _, d := range disruptions {
				if time.Since(d.at) < silent {
					continue
				}
				for _, r := range c.orphans(d, runs) {
					journal, err := store.Journal(ctx, r.ID)
					require.NoError(t, err)
					if _, ok := replicaNextEntry(journal, d.at); !ok {
						t.Fatalf("run %s (key %s) was mid-step on %s when it got %s at +%.1fs; %.0fs later no replica has journalled anything for it: "+
							"nothing took it over (without leases, River's rescuer gives a dead replica's jobs to another after RescueStuckJobsAfter, 10 minutes). "+
							"%d of %d runs ended so far",
							r.ID, r.Alert.Credential.ID, d.proc, d.kind, d.at.Sub(burstStart).Seconds(), time.Since(d.at).Seconds(), ended, len(runs))
					}
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 3 minutes, %d of %d runs have ended (%d alerts accepted)", ended, len(runs), accepted)
		}
		time.Sleep(200 * time.Millisecond)
	}
	drained := time.Since(burstStart)

	// Every accepted alert has exactly one run, and it succeeded.
	runsOf := map[string]int{}
	byKey := map[string]runner.Run{}
	succeeded := 0
	for _, r := range runs {
		runsOf[r.DedupKey]++
		byKey[r.Alert.Credential.ID] = r
		if r.Status == runner.RunSucceeded {
			succeeded++
		} else {
			t.Errorf("run %s (key %s) ended %s at step %s: %s", r.ID, r.Alert.Credential.ID, r.Status, r.FailedStep, r.Error)
		}
	}
	for _, d := range deliveries {
		if d.dedup != "" && runsOf[d.dedup] != 1 {
			t.Errorf("alert %d (%s) has %d runs, want 1", d.i, d.dedup, runsOf[d.dedup])
		}
	}
	if len(runs) != accepted {
		t.Errorf("%d runs for %d accepted alerts", len(runs), accepted)
	}

	// Every key is contained, and every effect happened once.
	inactive := 0
	for i := range alerts {
		if status, _ := c.sb.KeyStatus(replicaAccount, replicaLeakedKey(i)); status == "Inactive" {
			inactive++
		} else {
			t.Errorf("key %s is %s", replicaLeakedKey(i), status)
		}
	}
	calls := c.sb.Calls()
	deactivations, cutoffs := map[string]int{}, map[string]int{}
	otherEffective, idleWrites, awsCalls := 0, 0, 0
	for _, call := range calls {
		if call.Service == "slack" {
			continue
		}
		awsCalls++
		switch {
		case !call.Effective:
			if replicaAWSWrite(call.Action) {
				idleWrites++
			}
		case call.Action == "UpdateAccessKey" && call.Params["Status"] == "Inactive":
			deactivations[call.Params["AccessKeyId"]]++
		case call.Action == "PutUserPolicy":
			cutoffs[call.Params["UserName"]]++
		default:
			otherEffective++
			t.Errorf("unexpected effective AWS call %s %v by %s", call.Action, call.Params, call.CallerKey)
		}
	}
	for i := range alerts {
		if n := deactivations[replicaLeakedKey(i)]; n != 1 {
			t.Errorf("key %s: %d effective UpdateAccessKey to Inactive, want 1", replicaLeakedKey(i), n)
		}
		if n := cutoffs[replicaLeakedUser(i)]; n != 1 {
			t.Errorf("user %s: %d effective PutUserPolicy (session cutoff), want 1", replicaLeakedUser(i), n)
		}
	}
	// The runs each disruption left mid-step.
	orphaned := map[string]bool{}
	for _, d := range disruptions {
		d.orphans = c.orphans(d, runs)
		for _, r := range d.orphans {
			orphaned[r.ID] = true
		}
	}
	messages, posted := map[string]int{}, map[string][]string{}
	slackMessages := 0
	for _, m := range c.sb.SlackMessages(replicaSlackChanID) {
		if m.Metadata == nil || m.Metadata.EventType != "stanch_message" {
			continue
		}
		slackMessages++
		run, _ := m.Metadata.EventPayload["run_id"].(string)
		key, _ := m.Metadata.EventPayload["key"].(string)
		messages[run+" "+key]++
		posted[run+" "+key] = append(posted[run+" "+key], m.TS)
	}
	for k, n := range messages {
		if n != 1 {
			run, _, _ := strings.Cut(k, " ")
			journal, err := store.Journal(ctx, run)
			require.NoError(t, err)
			t.Errorf("Slack message %s posted %d times (ts %s), want once; the run was %s; its journal: %s", k, n, strings.Join(posted[k], ", "),
				map[bool]string{true: "left mid-step by a disruption", false: "not touched by any disruption"}[orphaned[run]], replicaEvents(journal))
		}
	}

	// The journals: each step succeeded once, the run once; the durations.
	journals := map[string][]runner.Entry{}
	var normal []time.Duration
	durations := map[string]time.Duration{}
	takenOver := 0
	for _, r := range runs {
		journal, err := store.Journal(ctx, r.ID)
		require.NoError(t, err)
		journals[r.ID] = journal
		if messages[r.ID+" notify/tell"] != 1 {
			t.Errorf("run %s: %d incident messages in Slack, want 1", r.ID, messages[r.ID+" notify/tell"])
		}
		counts := map[string]int{}
		var created, finished time.Time
		for _, e := range journal {
			counts[e.Event+" "+e.StepID]++
			switch e.Event {
			case "run_created":
				created = e.At
			case "run_succeeded":
				finished = e.At
			case "run_taken_over":
				takenOver++
			}
		}
		for _, step := range replicaSteps {
			if n := counts["step_succeeded "+step]; n != 1 {
				t.Errorf("run %s: step %s journalled succeeded %d times, want once", r.ID, step, n)
			}
		}
		if n := counts["run_succeeded "]; n != 1 {
			t.Errorf("run %s: run_succeeded journalled %d times, want once", r.ID, n)
		}
		if created.IsZero() || finished.IsZero() {
			continue
		}
		durations[r.ID] = finished.Sub(created)
		if !orphaned[r.ID] {
			normal = append(normal, finished.Sub(created))
		}
	}
	slices.Sort(normal)
	median := time.Duration(0)
	if len(normal) > 0 {
		median = normal[len(normal)/2]
	}
	var slowest time.Duration
	var slowestRun string
	for id, d := range durations {
		if d > slowest {
			slowest, slowestRun = d, id
		}
		if d > median+takeover {
			t.Errorf("run %s took %.1fs from its alert to its end, more than 15 s beyond the median run (%.1fs)%s", id, d.Seconds(), median.Seconds(),
				map[bool]string{true: ": a disruption left it mid-step", false: ""}[orphaned[id]])
		}
	}

	// Each disruption: the runs it left mid-step, taken over within 15 s.
	for _, d := range disruptions {
		var gaps []time.Duration
		for _, r := range d.orphans {
			journal := journals[r.ID]
			next, ok := replicaNextEntry(journal, d.at)
			if !ok {
				t.Errorf("run %s: nothing journalled after %s of %s", r.ID, d.kind, d.proc)
				continue
			}
			gap := next.At.Sub(d.at)
			gaps = append(gaps, gap)
			if gap > takeover {
				t.Errorf("run %s: %s of %s at +%.1fs, its next journal entry (%s) %.1fs later, want at most 15 s", r.ID, d.kind, d.proc, d.at.Sub(burstStart).Seconds(), next.Event, gap.Seconds())
			}
			if !slices.ContainsFunc(journal, func(e runner.Entry) bool { return e.Event == "run_taken_over" && e.At.After(d.at) }) {
				t.Errorf("run %s: mid-step on %s when it got %s, yet its journal has no run_taken_over after that: %s", r.ID, d.proc, d.kind, replicaEvents(journal))
			}
		}
		if len(d.orphans) == 0 {
			t.Errorf("%s of %s left no run mid-step: the disruption tested nothing", d.kind, d.proc)
		}
		sort.Slice(gaps, func(i, j int) bool { return gaps[i] < gaps[j] })
		d.maxGap = 0
		if len(gaps) > 0 {
			d.maxGap = gaps[len(gaps)-1]
		}
	}

	// The stopped replica, once resumed, wrote nothing about the keys whose
	// runs another replica took over while it was stopped. (Runs nobody had
	// taken over yet by then are its own to resume.)
	zombieCalls, zombieWrites, zombieStale, zombieStaleRuns := 0, 0, 0, 0
	for _, d := range disruptions {
		if d.kind != "SIGSTOP" {
			continue
		}
		stale := map[string]bool{}
		for _, r := range d.orphans {
			if slices.ContainsFunc(journals[r.ID], func(e runner.Entry) bool {
				return e.Event == "run_taken_over" && e.At.After(d.at) && e.At.Before(d.resumed)
			}) {
				stale[r.Alert.Credential.ID] = true
			}
		}
		zombieStaleRuns += len(stale)
		if len(stale) == 0 && len(d.orphans) > 0 {
			t.Errorf("no run of %s was taken over by another replica during its %.0fs stop, longer than a lease", d.proc, d.resumed.Sub(d.at).Seconds())
		}
		for _, call := range calls {
			if call.CallerKey != d.proc.key || !call.Time.After(d.resumed) {
				continue
			}
			zombieCalls++
			if !replicaAWSWrite(call.Action) {
				continue
			}
			zombieWrites++
			if stale[replicaCallKey(call.Params)] {
				zombieStale++
				t.Errorf("%s, resumed at +%.1fs after its runs were taken over, made %s %v at +%.1fs: a zombie acted", d.proc, d.resumed.Sub(burstStart).Seconds(), call.Action, call.Params, call.Time.Sub(burstStart).Seconds())
			}
		}
	}

	retried := 0
	for _, d := range deliveries {
		retried += len(d.failures)
	}
	t.Logf("alerts: %d sent, %d accepted (%d after a failed delivery, %d failed deliveries resent to another replica)", alerts, accepted, resent, retried)
	t.Logf("runs: %d, %d succeeded, all ended %.1fs after the burst began; exactly one run per accepted alert checked for %d alerts", len(runs), succeeded, drained.Seconds(), accepted)
	t.Logf("keys: %d of %d Inactive; effective UpdateAccessKey to Inactive: %d keys once each; effective PutUserPolicy: %d users once each; other effective AWS writes: %d; AWS writes that changed nothing: %d; AWS calls: %d",
		inactive, alerts, replicaOnce(deactivations), replicaOnce(cutoffs), otherEffective, idleWrites, awsCalls)
	t.Logf("Slack: %d stanch messages, %d distinct (run, key)", slackMessages, len(messages))
	for _, d := range disruptions {
		t.Logf("%s of %s at +%.1fs: %d run(s) left mid-step, next journal entry at most %.1fs later", d.kind, d.proc, d.at.Sub(burstStart).Seconds(), len(d.orphans), d.maxGap.Seconds())
	}
	t.Logf("run_taken_over entries: %d; run time alert→end: median %.1fs over %d undisturbed runs, slowest %.1fs (%s)", takenOver, median.Seconds(), len(normal), slowest.Seconds(), slowestRun)
	t.Logf("stopped replica after SIGCONT: %d AWS calls, %d writes, %d about the %d keys whose runs were taken over from it while it was stopped (want 0)", zombieCalls, zombieWrites, zombieStale, zombieStaleRuns)
}

// replicaDisruption is one SIGKILL or SIGSTOP of a replica.
type replicaDisruption struct {
	kind     string
	proc     *replicaProc
	at       time.Time // when the signal was sent (SIGKILL: and the process is gone)
	resumed  time.Time // SIGCONT, for a SIGSTOP
	inflight int       // its AWS calls in flight at that moment
	orphans  []runner.Run
	maxGap   time.Duration
}

// orphans are the runs that d left mid-step: runs of keys the victim's AWS
// calls were about (before it was resumed, for a SIGSTOP) that had not ended
// when it was disrupted.
func (c *replicaCluster) orphans(d *replicaDisruption, runs []runner.Run) []runner.Run {
	touched := map[string]bool{}
	for _, call := range c.sb.Calls() {
		if call.CallerKey != d.proc.key || (!d.resumed.IsZero() && call.Time.After(d.resumed)) {
			continue
		}
		if k := replicaCallKey(call.Params); k != "" {
			touched[k] = true
		}
	}
	var out []runner.Run
	for _, r := range runs {
		if touched[r.Alert.Credential.ID] && (r.FinishedAt.IsZero() || r.FinishedAt.After(d.at)) {
			out = append(out, r)
		}
	}
	return out
}

// replicaCallKey is the leaked key an AWS call is about: its access key id,
// or the key of the user it names.
func replicaCallKey(params map[string]string) string {
	if k := params["AccessKeyId"]; strings.HasPrefix(k, "AKIALEAKED") {
		return k
	}
	if u, ok := strings.CutPrefix(params["UserName"], "leak-"); ok {
		if i, err := strconv.Atoi(u); err == nil {
			return replicaLeakedKey(i)
		}
	}
	return ""
}

// replicaAWSWrite says whether an AWS action may change state.
func replicaAWSWrite(action string) bool {
	for _, read := range []string{"Get", "List", "Describe", "Lookup", "Simulate", "AssumeRole"} {
		if strings.HasPrefix(action, read) {
			return false
		}
	}
	return true
}

func replicaRunEnded(r runner.Run) bool {
	return r.Status == runner.RunSucceeded || r.Status == runner.RunFailed || r.Status == runner.RunCancelled
}

// replicaNextEntry is the first journal entry after t.
func replicaNextEntry(journal []runner.Entry, t time.Time) (runner.Entry, bool) {
	for _, e := range journal {
		if e.At.After(t) {
			return e, true
		}
	}
	return runner.Entry{}, false
}

func replicaEvents(journal []runner.Entry) string {
	var out []string
	for _, e := range journal {
		out = append(out, e.At.Format("15:04:05.000")+" "+e.Event+" "+e.StepID)
	}
	return strings.Join(out, ", ")
}

// replicaOnce counts the entries of m that are exactly 1.
func replicaOnce(m map[string]int) int {
	n := 0
	for _, v := range m {
		if v == 1 {
			n++
		}
	}
	return n
}
