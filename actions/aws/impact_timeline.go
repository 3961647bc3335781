package aws

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"
)

// The timeline output: events per time bucket, per region and per event
// name, for the incident report's charts.
//
// The bucket is known only once every event is read (it depends on the
// span from the first to the last), and the step checkpoints as it reads.
// So the summary keeps each series at the finest bucket of the ladder that
// holds the span read so far in timelinePoints buckets, and coarsens it as
// the span grows. That is enough to give the output exactly: the ladder's
// buckets each divide the next and all are aligned on the same instants
// (time.Truncate rounds from the zero time), so a bucket is the union of
// whole buckets of every finer rung; and the span only grows, so the
// output's bucket is never finer than the one kept. A checkpoint holds at
// most timelinePoints counts per series, whatever the lookback.

// timelineBucket is a rung of the ladder the bucket is chosen from, with
// the name the output gives it (time.ParseDuration reads it back).
type timelineBucket struct {
	d    time.Duration
	name string
}

var timelineBuckets = []timelineBucket{
	{time.Minute, "1m"}, {5 * time.Minute, "5m"}, {15 * time.Minute, "15m"}, {time.Hour, "1h"},
	{6 * time.Hour, "6h"}, {24 * time.Hour, "24h"}, {7 * 24 * time.Hour, "168h"},
}

const (
	// timelinePoints is the most buckets the output has, as long as the
	// span fits in timelinePoints weeks; CloudTrail keeps 90 days, so it
	// always does unless the sandbox or a longer lookback says otherwise,
	// and then the largest bucket is used anyway.
	timelinePoints = 48
	// timelineTopEvents is how many event names have a series of their
	// own in the output; the others are summed under "other".
	timelineTopEvents = 8
	// timelineTracked is how many event names a summary keeps a series
	// for: a few times timelineTopEvents, so that the output's names are
	// right unless the key called more than that many distinct APIs (a
	// recon tool can call hundreds), while a checkpoint stays small (its
	// summaries, one per region being read, each hold at most this many
	// series of timelinePoints counts).
	timelineTracked = 32
	// timelineOther names the sum of the event names not listed.
	timelineOther = "other"
)

// impactTimeline is the events of a summary per bucket. Every series has
// Points counts, count k being the events at Start+k*Bucket ≤ t <
// Start+(k+1)*Bucket; Bucket is the finest of the ladder that holds the
// span counted in at most timelinePoints (none before the first event).
//
// By region, every region has a series, so their sum is every event.
// By event name, at most timelineTracked names have one (Events, in the
// order they got it); past that, a new name takes the place of the one
// with the fewest events (the first tracked among equals, so that a new
// name gets time to show it is frequent), and the names whose series was
// dropped or never kept (Folded) count only in the sum: the output names
// the top timelineTopEvents of those with a complete series.
type impactTimeline struct {
	Bucket   time.Duration    `json:"bucket,omitempty"`
	Start    time.Time        `json:"start,omitzero"`
	Points   int              `json:"points,omitempty"`
	ByRegion map[string][]int `json:"by_region,omitempty"`
	Events   []eventSeries    `json:"events,omitempty"`
	Folded   []string         `json:"folded,omitempty"`
}

// eventSeries is one event name's counts per bucket.
type eventSeries struct {
	Name   string `json:"name"`
	Counts []int  `json:"counts"`
}

func newTimeline() *impactTimeline {
	return &impactTimeline{ByRegion: map[string][]int{}}
}

// pointsOf is how many buckets of b from start (aligned on b) reach last.
func pointsOf(start, last time.Time, b time.Duration) int {
	return int(last.Sub(start)/b) + 1
}

// bucketFor returns the finest bucket of the ladder, not finer than
// atLeast, that holds first..last in at most timelinePoints buckets; the
// largest when none does.
func bucketFor(first, last time.Time, atLeast time.Duration) timelineBucket {
	for _, b := range timelineBuckets {
		if b.d >= atLeast && pointsOf(first.Truncate(b.d), last, b.d) <= timelinePoints {
			return b
		}
	}
	return timelineBuckets[len(timelineBuckets)-1]
}

// lastSlot is the start of the last bucket.
func (tl *impactTimeline) lastSlot() time.Time {
	return tl.Start.Add(time.Duration(tl.Points-1) * tl.Bucket)
}

// cover makes the buckets reach first..last, with a bucket not finer than
// atLeast, coarsening the series when the span needs it.
func (tl *impactTimeline) cover(first, last time.Time, atLeast time.Duration) {
	if tl.Points > 0 {
		first, last = minTime(first, tl.Start), maxTime(last, tl.lastSlot())
		atLeast = max(atLeast, tl.Bucket)
	}
	b := bucketFor(first, last, atLeast).d
	start := first.Truncate(b)
	points := pointsOf(start, last, b)
	if b == tl.Bucket && start.Equal(tl.Start) && points == tl.Points {
		return
	}
	for region, c := range tl.ByRegion {
		tl.ByRegion[region] = regrid(c, tl.Start, tl.Bucket, start, b, points)
	}
	for i := range tl.Events {
		tl.Events[i].Counts = regrid(tl.Events[i].Counts, tl.Start, tl.Bucket, start, b, points)
	}
	tl.Bucket, tl.Start, tl.Points = b, start, points
}

// regrid moves counts of buckets of b from start to buckets of nb (a
// multiple of b) from nstart, points of them; every old bucket falls
// whole into one new one.
func regrid(counts []int, start time.Time, b time.Duration, nstart time.Time, nb time.Duration, points int) []int {
	out := make([]int, points)
	for i, n := range counts {
		if n != 0 {
			out[start.Add(time.Duration(i)*b).Sub(nstart)/nb] += n
		}
	}
	return out
}

// slot returns the bucket of t, which cover reached.
func (tl *impactTimeline) slot(t time.Time) int {
	return int(t.Sub(tl.Start) / tl.Bucket)
}

// add counts one event.
func (tl *impactTimeline) add(t time.Time, region, name string) {
	tl.cover(t, t, 0)
	k := tl.slot(t)
	tl.regionSeries(region)[k]++
	if s := tl.eventSeries(name); s != nil {
		s.Counts[k]++
	}
}

func (tl *impactTimeline) regionSeries(region string) []int {
	c, ok := tl.ByRegion[region]
	if !ok {
		c = make([]int, tl.Points)
		tl.ByRegion[region] = c
	}
	return c
}

// eventSeries returns name's series, making one for a name never seen
// (in the place of the one with the fewest events when there are
// timelineTracked), or nil for a folded name.
func (tl *impactTimeline) eventSeries(name string) *eventSeries {
	if i := slices.IndexFunc(tl.Events, func(s eventSeries) bool { return s.Name == name }); i >= 0 {
		return &tl.Events[i]
	}
	if slices.Contains(tl.Folded, name) {
		return nil
	}
	if len(tl.Events) >= timelineTracked {
		fewest := 0
		for i, s := range tl.Events {
			if sum(s.Counts) < sum(tl.Events[fewest].Counts) {
				fewest = i
			}
		}
		tl.fold(fewest)
	}
	tl.Events = append(tl.Events, eventSeries{Name: name, Counts: make([]int, tl.Points)})
	return &tl.Events[len(tl.Events)-1]
}

// fold drops the i-th event series: its events now count only in the
// sum, and so will its later ones.
func (tl *impactTimeline) fold(i int) {
	tl.Folded = append(tl.Folded, tl.Events[i].Name)
	tl.Events = slices.Delete(tl.Events, i, i+1)
}

// merge adds what o counted.
func (tl *impactTimeline) merge(o *impactTimeline) {
	if o == nil || o.Points == 0 {
		return
	}
	tl.cover(o.Start, o.lastSlot(), o.Bucket)
	add := func(dst, src []int) {
		for i, n := range regrid(src, o.Start, o.Bucket, tl.Start, tl.Bucket, tl.Points) {
			dst[i] += n
		}
	}
	for _, region := range sortedKeys(o.ByRegion) {
		add(tl.regionSeries(region), o.ByRegion[region])
	}
	// A name o folded has events that o's series do not hold: its series
	// here would be incomplete.
	for _, name := range o.Folded {
		if i := slices.IndexFunc(tl.Events, func(s eventSeries) bool { return s.Name == name }); i >= 0 {
			tl.fold(i)
		} else if !slices.Contains(tl.Folded, name) {
			tl.Folded = append(tl.Folded, name)
		}
	}
	for _, s := range o.Events {
		if dst := tl.eventSeries(s.Name); dst != nil {
			add(dst.Counts, s.Counts)
		}
	}
}

// check refuses a saved timeline that does not hold together.
func (tl *impactTimeline) check() error {
	if tl.Points == 0 {
		if len(tl.ByRegion) > 0 || len(tl.Events) > 0 {
			return errors.New("timeline: series without buckets")
		}
		return nil
	}
	if !slices.ContainsFunc(timelineBuckets, func(b timelineBucket) bool { return b.d == tl.Bucket }) {
		return fmt.Errorf("timeline: bucket %s is not one of the ladder's", tl.Bucket)
	}
	if tl.Points < 0 || !tl.Start.Equal(tl.Start.Truncate(tl.Bucket)) || len(tl.Events) > timelineTracked {
		return errors.New("timeline: inconsistent")
	}
	series := make([][]int, 0, len(tl.ByRegion)+len(tl.Events))
	for _, c := range tl.ByRegion {
		series = append(series, c)
	}
	for _, s := range tl.Events {
		series = append(series, s.Counts)
	}
	for _, c := range series {
		if len(c) != tl.Points || slices.ContainsFunc(c, func(n int) bool { return n < 0 }) {
			return errors.New("timeline: a series does not have one count per bucket")
		}
	}
	return nil
}

// output returns the timeline output for events from first to last (the
// summary's, which a timeline resumed from a checkpoint saved before
// timelines existed covers only part of: the events counted before are
// then missing from it).
func (tl *impactTimeline) output(first, last time.Time) map[string]any {
	out := map[string]any{"bucket": timelineBuckets[0].name, "start": "", "points": 0,
		"by_region": map[string][]int{}, "by_event": map[string][]int{}}
	if tl.Points == 0 {
		return out
	}
	if first.IsZero() || last.IsZero() {
		first, last = tl.Start, tl.lastSlot()
	}
	first, last = minTime(first, tl.Start), maxTime(last, tl.lastSlot())
	b := bucketFor(first, last, tl.Bucket)
	start := first.Truncate(b.d)
	points := pointsOf(start, last, b.d)
	grid := func(c []int) []int { return regrid(c, tl.Start, tl.Bucket, start, b.d, points) }

	byRegion := map[string][]int{}
	total := make([]int, points)
	for region, c := range tl.ByRegion {
		byRegion[region] = grid(c)
		for i, n := range byRegion[region] {
			total[i] += n
		}
	}
	top := slices.Clone(tl.Events)
	slices.SortStableFunc(top, func(a, b eventSeries) int {
		return cmp.Or(cmp.Compare(sum(b.Counts), sum(a.Counts)), cmp.Compare(a.Name, b.Name))
	})
	byEvent := map[string][]int{}
	other := total
	for _, s := range top[:min(len(top), timelineTopEvents)] {
		byEvent[s.Name] = grid(s.Counts)
		for i, n := range byEvent[s.Name] {
			other[i] -= n
		}
	}
	if sum(other) > 0 {
		byEvent[timelineOther] = other
	}
	out["bucket"], out["start"], out["points"] = b.name, start.UTC().Format(time.RFC3339), points
	out["by_region"], out["by_event"] = byRegion, byEvent
	return out
}

func sum(c []int) int {
	n := 0
	for _, x := range c {
		n += x
	}
	return n
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func sortedKeys(m map[string][]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
