package aws

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/internal/testkit"
	"github.com/stanchhq/stanch/sandbox"
)

// at returns a list of n counts, zero but for the buckets given.
func at(n int, buckets map[int]int) []int {
	out := make([]int, n)
	for k, c := range buckets {
		out[k] = c
	}
	return out
}

// requireTimelineHoldsTogether checks what every timeline output must be:
// one count per bucket in every list, and every event counted once by
// region and once by event name.
func requireTimelineHoldsTogether(t *testing.T, out map[string]any) map[string]any {
	t.Helper()
	tl, ok := out["timeline"].(map[string]any)
	require.True(t, ok, "the timeline is a map: %#v", out["timeline"])
	points := tl["points"].(int)
	require.LessOrEqual(t, points, timelinePoints)
	for _, group := range []string{"by_region", "by_event"} {
		total := 0
		for name, c := range tl[group].(map[string][]int) {
			require.Len(t, c, points, "%s %s", group, name)
			total += sum(c)
		}
		require.Equal(t, out["events"], total, "every event once in %s", group)
	}
	require.LessOrEqual(t, len(tl["by_event"].(map[string][]int)), timelineTopEvents+1)
	if points > 0 {
		b, err := time.ParseDuration(tl["bucket"].(string))
		require.NoError(t, err)
		start, err := time.Parse(time.RFC3339, tl["start"].(string))
		require.NoError(t, err)
		first, err := time.Parse(time.RFC3339, out["first_used"].(string))
		require.NoError(t, err)
		last, err := time.Parse(time.RFC3339, out["last_used"].(string))
		require.NoError(t, err)
		require.Equal(t, first.Truncate(b), start)
		require.True(t, !last.Before(start.Add(time.Duration(points-1)*b)) && last.Before(start.Add(time.Duration(points)*b)), "the last event is in the last bucket")
	}
	return tl
}

// Events over 20 hours, in four regions, of the leaked key and of the key
// it created: hourly buckets from the first event's hour, an event at a
// bucket's start in that bucket, the eight busiest event names with their
// own series and the rest under other.
func TestImpactTimelineCountsEventsPerBucket(t *testing.T) {
	t.Parallel()
	b, sb := sandboxBackend(t)
	base := time.Now().UTC().Truncate(time.Hour).Add(-30 * time.Hour)
	ev := func(region string, d time.Duration, name, key string) sandbox.SeedEvent {
		return sandbox.SeedEvent{Region: region, Time: base.Add(d), Name: name, AccessKeyID: key, User: "ci-bot", SourceIP: "198.51.100.7"}
	}
	events := []sandbox.SeedEvent{
		ev("us-east-1", 0, "GetCallerIdentity", b.leaked),
		ev("us-east-1", 59*time.Minute+59*time.Second, "ListBuckets", b.leaked),
		ev("us-east-1", time.Hour, "ListBuckets", b.leaked),
		ev("eu-west-1", 2*time.Hour, "ListBuckets", b.leaked),
		ev("eu-west-1", 2*time.Hour+10*time.Minute, "ListBuckets", b.leaked),
		ev("eu-west-1", 2*time.Hour+20*time.Minute, "ListBuckets", b.leaked),
		ev("eu-west-1", 7*time.Hour+59*time.Minute, "GetCallerIdentity", b.leaked),
		// The derived key's events count as the leaked key's do.
		ev("us-west-2", 5*time.Hour, "StopLogging", backdoorKey),
		ev("us-west-2", 20*time.Hour+30*time.Minute, "GetSecretValue", backdoorKey),
	}
	created := ev("us-east-1", time.Hour+30*time.Minute, "CreateAccessKey", b.leaked)
	created.ResponseElements = map[string]any{"accessKey": map[string]any{"accessKeyId": backdoorKey, "userName": "backdoor", "status": "Active"}}
	events = append(events, created)
	// Recon in us-west-1: six names, 9 down to 3 times each.
	minute := 0
	for _, n := range []struct {
		name  string
		times int
		hour  time.Duration
	}{{"DescribeInstances", 9, 10}, {"ListUsers", 8, 11}, {"ListRoles", 7, 10}, {"ListAccessKeys", 6, 10}, {"GetAccountAuthorizationDetails", 4, 10}, {"ListAttachedUserPolicies", 3, 10}} {
		for range n.times {
			events = append(events, ev("us-west-1", n.hour*time.Hour+time.Duration(minute)*time.Minute, n.name, b.leaked))
			minute++
		}
	}
	require.NoError(t, sb.AddEvents(b.account, events...))

	res, err := testkit.RunAction(t, b.actions(t)["aws.cloudtrail_impact"], testkit.Env("run_timeline"), map[string]any{"access_key_id": b.leaked})
	require.NoError(t, err)
	require.Equal(t, 47, res.Outputs["events"])
	require.Len(t, res.Outputs["derived_credentials"], 1)
	tl := requireTimelineHoldsTogether(t, res.Outputs)

	// 20h30m from the first event: 82 quarter-hours, 21 hours.
	const n = 21
	require.Equal(t, map[string]any{
		"bucket": "1h", "start": base.Format(time.RFC3339), "points": n,
		"by_region": map[string][]int{
			"us-east-1": at(n, map[int]int{0: 2, 1: 2}),
			"eu-west-1": at(n, map[int]int{2: 3, 7: 1}),
			"us-west-1": at(n, map[int]int{10: 29, 11: 8}),
			"us-west-2": at(n, map[int]int{5: 1, 20: 1}),
		},
		"by_event": map[string][]int{
			"DescribeInstances":              at(n, map[int]int{10: 9}),
			"ListUsers":                      at(n, map[int]int{11: 8}),
			"ListRoles":                      at(n, map[int]int{10: 7}),
			"ListAccessKeys":                 at(n, map[int]int{10: 6}),
			"ListBuckets":                    at(n, map[int]int{0: 1, 1: 1, 2: 3}),
			"GetAccountAuthorizationDetails": at(n, map[int]int{10: 4}),
			"ListAttachedUserPolicies":       at(n, map[int]int{10: 3}),
			"GetCallerIdentity":              at(n, map[int]int{0: 1, 7: 1}),
			// CreateAccessKey, StopLogging, GetSecretValue: once each.
			"other": at(n, map[int]int{1: 1, 5: 1, 20: 1}),
		},
	}, tl)
}

// A key used over 89 days gets weekly buckets, at most 48 of them; the
// weeks are aligned on Mondays, 00:00 UTC.
func TestImpactTimelineOver90Days(t *testing.T) {
	t.Parallel()
	b, sb := sandboxBackend(t)
	now := time.Now().UTC().Truncate(time.Second)
	var events []sandbox.SeedEvent
	for i, ago := range []time.Duration{89 * 24 * time.Hour, 60 * 24 * time.Hour, 30*24*time.Hour + 7*time.Minute, time.Hour, time.Minute} {
		events = append(events, sandbox.SeedEvent{Region: []string{"us-east-1", "eu-west-1"}[i%2], Time: now.Add(-ago), Name: "ListBuckets", AccessKeyID: b.leaked, User: "ci-bot"})
	}
	require.NoError(t, sb.AddEvents(b.account, events...))

	res, err := testkit.RunAction(t, b.actions(t)["aws.cloudtrail_impact"], testkit.Env("run_timeline"), map[string]any{"access_key_id": b.leaked})
	require.NoError(t, err)
	tl := requireTimelineHoldsTogether(t, res.Outputs)
	require.Equal(t, "168h", tl["bucket"], "daily buckets would be 90")
	start, err := time.Parse(time.RFC3339, tl["start"].(string))
	require.NoError(t, err)
	require.Equal(t, time.Monday, start.Weekday())
	require.Equal(t, 0, start.Hour()+start.Minute()+start.Second())
	weeks := int(now.Add(-time.Minute).Sub(start)/(7*24*time.Hour)) + 1
	require.Equal(t, weeks, tl["points"])
	want := make([]int, weeks)
	for _, e := range events {
		want[e.Time.Sub(start)/(7*24*time.Hour)]++
	}
	require.Equal(t, want, tl["by_event"].(map[string][]int)["ListBuckets"])
}

// The bucket is the smallest of the ladder that holds the span in 48
// points, whatever the span and wherever it starts.
func TestTimelineBucketIsTheSmallestThatFits(t *testing.T) {
	t.Parallel()
	first := time.Date(2025, 6, 1, 10, 7, 31, 0, time.UTC)
	for _, c := range []struct {
		span time.Duration
		want string
	}{
		{0, "1m"}, {47*time.Minute + 28*time.Second, "1m"}, {47*time.Minute + 29*time.Second, "5m"},
		{3 * time.Hour, "5m"}, {4 * time.Hour, "15m"}, {11 * time.Hour, "15m"}, {12 * time.Hour, "1h"},
		{47 * time.Hour, "1h"}, {48 * time.Hour, "6h"}, {11 * 24 * time.Hour, "6h"}, {12 * 24 * time.Hour, "24h"},
		{47 * 24 * time.Hour, "24h"}, {48 * 24 * time.Hour, "168h"}, {90 * 24 * time.Hour, "168h"},
	} {
		require.Equal(t, c.want, bucketFor(first, first.Add(c.span), 0).name, "span %s", c.span)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		first := first.Add(time.Duration(rng.Int64N(int64(30 * 24 * time.Hour))))
		last := first.Add(time.Duration(rng.Int64N(int64(90 * 24 * time.Hour))))
		b := bucketFor(first, last, 0)
		require.LessOrEqual(t, pointsOf(first.Truncate(b.d), last, b.d), timelinePoints)
		if i := slices.Index(timelineBuckets, b); i > 0 {
			finer := timelineBuckets[i-1].d
			require.Greater(t, pointsOf(first.Truncate(finer), last, finer), timelinePoints, "%s..%s fits in %s", first, last, finer)
		}
	}
}

// testEvent is an event as the timeline sees it.
type testEvent struct {
	t            time.Time
	region, name string
}

// wantTimeline is the timeline output as the doc tag states it, counted
// directly from the events.
func wantTimeline(events []testEvent) map[string]any {
	if len(events) == 0 {
		return map[string]any{"bucket": "1m", "start": "", "points": 0, "by_region": map[string][]int{}, "by_event": map[string][]int{}}
	}
	first, last := events[0].t, events[0].t
	for _, e := range events {
		first, last = minTime(first, e.t), maxTime(last, e.t)
	}
	var b timelineBucket
	var start time.Time
	points := 0
	for _, b = range timelineBuckets {
		start = first.Truncate(b.d)
		if points = int(last.Sub(start)/b.d) + 1; points <= timelinePoints {
			break
		}
	}
	byRegion, byName := map[string][]int{}, map[string][]int{}
	for _, e := range events {
		k := int(e.t.Sub(start) / b.d)
		if byRegion[e.region] == nil {
			byRegion[e.region] = make([]int, points)
		}
		if byName[e.name] == nil {
			byName[e.name] = make([]int, points)
		}
		byRegion[e.region][k]++
		byName[e.name][k]++
	}
	names := make([]string, 0, len(byName))
	for name := range byName {
		names = append(names, name)
	}
	slices.SortFunc(names, func(a, b string) int { return cmp.Or(sum(byName[b])-sum(byName[a]), cmp.Compare(a, b)) })
	byEvent := map[string][]int{}
	for i, name := range names {
		if i < timelineTopEvents {
			byEvent[name] = byName[name]
			continue
		}
		if byEvent["other"] == nil {
			byEvent["other"] = make([]int, points)
		}
		for k, n := range byName[name] {
			byEvent["other"][k] += n
		}
	}
	return map[string]any{"bucket": b.name, "start": start.Format(time.RFC3339), "points": points, "by_region": byRegion, "by_event": byEvent}
}

// Counted in any order, in summaries of parts of the events merged
// together, saved and read back between any two events: the timeline is
// the one counted directly from the events, as long as there are no more
// event names than a summary keeps series for.
func TestTimelineIsTheSameHoweverItIsCounted(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	regions := []string{"us-east-1", "us-west-2", "eu-west-1", "ap-south-1"}
	roundTrip := func(s *impactSummary) *impactSummary {
		b, err := json.Marshal(s)
		require.NoError(t, err)
		var out impactSummary
		require.NoError(t, json.Unmarshal(b, &out))
		out.init()
		require.NoError(t, out.Timeline.check())
		return &out
	}
	for i := range 300 {
		span := time.Duration(rng.Int64N(int64([]time.Duration{time.Hour, 3 * 24 * time.Hour, 90 * 24 * time.Hour}[i%3])))
		first := time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(rng.Int64N(int64(24 * time.Hour)))).Truncate(time.Second)
		events := make([]testEvent, rng.IntN(120))
		for j := range events {
			events[j] = testEvent{t: first.Add(time.Duration(rng.Int64N(int64(span) + 1))).Truncate(time.Second),
				region: regions[rng.IntN(len(regions))], name: fmt.Sprintf("Op%02d", int(rng.ExpFloat64()*4)%timelineTracked)}
		}
		whole := newImpact()
		part := newImpact()
		for _, j := range rng.Perm(len(events)) {
			e := events[j]
			part.add(trailEvent{EventName: e.name, EventTime: e.t, AWSRegion: e.region})
			if rng.IntN(10) == 0 {
				part = roundTrip(part)
			}
			if rng.IntN(15) == 0 {
				whole.merge(part)
				whole, part = roundTrip(whole), newImpact()
			}
		}
		whole.merge(part)
		require.Equal(t, wantTimeline(events), whole.outputs().Timeline, "case %d", i)
	}
}

// A key that called a hundred APIs once each, recently, and a few others
// many times before: the checkpoint keeps series for at most
// timelineTracked names and stays small, every event is still counted,
// and the busy names, read last, still have their series.
func TestImpactTimelineStaysSmallWithManyEventNames(t *testing.T) {
	t.Parallel()
	b, sb := sandboxBackend(t)
	now := time.Now().UTC().Truncate(time.Second)
	var events []sandbox.SeedEvent
	for i := range 100 {
		events = append(events, sandbox.SeedEvent{Region: "us-east-1", Time: now.Add(-time.Duration(i+1) * time.Minute), Name: fmt.Sprintf("ListThings%03d", i), AccessKeyID: b.leaked})
	}
	busy := []string{"PutObject", "GetObject", "DescribeInstances", "SendMessage", "Publish"}
	for i := range 60 {
		// Read after the others (older), each busy name every fifth event.
		events = append(events, sandbox.SeedEvent{Region: "us-east-1", Time: now.Add(-80*24*time.Hour + time.Duration(i)*time.Hour), Name: busy[i%len(busy)], AccessKeyID: b.leaked})
	}
	require.NoError(t, sb.AddEvents(b.account, events...))

	var a impactAttempt
	res, err := a.run(t, b, map[string]any{"access_key_id": b.leaked, "regions": []any{"us-east-1", "eu-west-1"}}, nil, 0)
	require.NoError(t, err)
	require.Equal(t, 160, res.Outputs["events"])
	tl := requireTimelineHoldsTogether(t, res.Outputs)
	byEvent := tl["by_event"].(map[string][]int)
	for _, name := range busy {
		require.Equal(t, 12, sum(byEvent[name]), name)
	}
	require.Equal(t, 100-3, sum(byEvent["other"]), "three of the names used once are listed")
	for i, s := range a.saved {
		var st impactState
		require.NoError(t, json.Unmarshal(s, &st))
		for _, pr := range append(st.Pairs, &pairState{Summary: st.Summary}) {
			require.LessOrEqual(t, len(pr.Summary.Timeline.Events), timelineTracked)
		}
		require.Less(t, len(s), 24<<10, "checkpoint %d", i)
	}
}

// A step resumed from a checkpoint gives the timeline of a step never
// stopped; one resumed from a checkpoint saved before timelines existed
// resumes too, its timeline lacking only the events counted before.
func TestImpactTimelineResumes(t *testing.T) {
	t.Parallel()
	b, _ := resumeBackend(t)
	with := map[string]any{"access_key_id": b.leaked, "regions": "all"}
	whole := impactAttempt{unsaved: true}
	full, err := whole.run(t, b, with, nil, 0)
	require.NoError(t, err)
	want := requireTimelineHoldsTogether(t, full.Outputs)
	require.Equal(t, "6h", want["bucket"], "120 hours of history")
	require.Len(t, want["by_region"], 4)

	for _, stop := range []int{1, 6, 14} {
		t.Run(fmt.Sprintf("stopped after %d pages", stop), func(t *testing.T) {
			var first impactAttempt
			_, err := first.run(t, b, with, nil, stop)
			require.ErrorIs(t, err, errLeaseLost)
			state := first.last(t)
			require.Contains(t, string(state), `"timeline":`)

			var second impactAttempt
			res, err := second.run(t, b, with, state, 0)
			require.NoError(t, err)
			require.Contains(t, second.logs.String(), "resumed from the saved checkpoint")
			require.Equal(t, want, res.Outputs["timeline"])

			// The same checkpoint as one saved before timelines existed.
			var old map[string]any
			require.NoError(t, json.Unmarshal(state, &old))
			deleteTimelines(old)
			legacy, err := json.Marshal(old)
			require.NoError(t, err)
			require.NotContains(t, string(legacy), `"timeline"`)
			var third impactAttempt
			res, err = third.run(t, b, with, legacy, 0)
			require.NoError(t, err)
			require.Contains(t, third.logs.String(), "resumed from the saved checkpoint")
			for _, name := range []string{"events", "by_region", "by_event", "first_used", "last_used", "findings", "derived_credentials"} {
				require.Equal(t, full.Outputs[name], res.Outputs[name], name)
			}
			got := res.Outputs["timeline"].(map[string]any)
			require.Equal(t, want["bucket"], got["bucket"])
			require.Equal(t, want["start"], got["start"])
			require.Equal(t, want["points"], got["points"])
			counted := 0
			for region, c := range got["by_region"].(map[string][]int) {
				for k, n := range c {
					require.LessOrEqual(t, n, want["by_region"].(map[string][]int)[region][k], "%s bucket %d", region, k)
				}
				counted += sum(c)
			}
			var st impactState
			require.NoError(t, json.Unmarshal(state, &st))
			before := st.Summary.Total
			for _, pr := range st.Pairs {
				before += pr.Summary.Total
			}
			t.Logf("the checkpoint had counted %d event(s); the legacy resume counts %d in its timeline", before, counted)
			require.Equal(t, full.Outputs["events"].(int)-before, counted, "the events counted before the checkpoint are missing, and only those")
		})
	}
}

// deleteTimelines removes the timeline of every summary of a saved state.
func deleteTimelines(st map[string]any) {
	if s, ok := st["summary"].(map[string]any); ok {
		delete(s, "timeline")
	}
	pairs, _ := st["pairs"].([]any)
	for _, p := range pairs {
		if s, ok := p.(map[string]any)["summary"].(map[string]any); ok {
			delete(s, "timeline")
		}
	}
}

// A saved timeline that does not hold together makes the checkpoint
// unusable rather than the output wrong.
func TestTimelineCheckRefusesInconsistentState(t *testing.T) {
	t.Parallel()
	s := newImpact()
	base := time.Date(2026, 8, 1, 10, 0, 0, 0, time.UTC)
	for i := range 5 {
		s.add(trailEvent{EventName: "ListBuckets", EventTime: base.Add(time.Duration(i) * time.Hour), AWSRegion: "us-east-1"})
	}
	require.NoError(t, s.Timeline.check())
	for name, spoil := range map[string]func(tl *impactTimeline){
		"bucket off the ladder": func(tl *impactTimeline) { tl.Bucket = 2 * time.Hour },
		"start not aligned":     func(tl *impactTimeline) { tl.Start = tl.Start.Add(time.Minute) },
		"short series":          func(tl *impactTimeline) { tl.ByRegion["us-east-1"] = tl.ByRegion["us-east-1"][1:] },
		"negative count":        func(tl *impactTimeline) { tl.Events[0].Counts[0] = -1 },
		"series, no buckets":    func(tl *impactTimeline) { tl.Points = 0 },
	} {
		b, err := json.Marshal(s.Timeline)
		require.NoError(t, err)
		var tl impactTimeline
		require.NoError(t, json.Unmarshal(b, &tl))
		spoil(&tl)
		require.Error(t, tl.check(), name)
	}
}
