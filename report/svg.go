package report

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// The pictures are laid out here, in the units of each SVG's viewBox; the
// template only writes the numbers out. Every SVG scales to the page's
// width (width 100%, height from the viewBox).

const (
	tlWidth    = 1000.0
	tlLabels   = 200.0 // the step names' column
	tlRight    = 24.0
	tlTop      = 46.0 // the axis and the markers' labels
	tlRowH     = 30.0
	tlBarH     = 14.0
	tlMinWidth = 4.0 // a step of a few milliseconds is still seen
	charWidth  = 6.4 // an estimate of a character's width at 11px
)

// timelineSVG is the run's timeline picture.
type timelineSVG struct {
	Width, Height float64
	PlotLeft      float64
	PlotRight     float64
	AxisY         float64
	Bottom        float64
	Ticks         []tick
	Alerts        []marker
	Rows          []stepRow
	Waits         []waitBox
	// Contained marks the time to contain, nil when nothing contained.
	Contained *marker
	// Compressed says the time axis is a square root scale.
	Compressed bool
}

type tick struct {
	X      float64
	Label  string
	Anchor string
}

type marker struct {
	X      float64
	TextX  float64
	Y      float64
	Label  string
	Title  string
	Anchor string
	Class  string
}

type stepRow struct {
	Y, LabelY float64
	Step      stepView
	BarX      float64
	BarY      float64
	BarW      float64
	Class     string
	Title     string
}

type waitBox struct {
	X, Y, W, H float64
	LabelX     float64
	LabelY     float64
	Anchor     string
	Label      string
	Title      string
	Class      string
}

func (v view) timeline() timelineSVG {
	t := timelineSVG{Width: tlWidth, PlotLeft: tlLabels, PlotRight: tlWidth - tlRight, AxisY: tlTop}
	start, end := v.Start, v.End
	if !end.After(start) {
		end = start.Add(time.Second)
	}
	span := end.Sub(start)
	// Containment takes seconds and an approval can wait for hours: past
	// a short run, the axis is a square root of the time since the alert,
	// so the first seconds stay readable beside the long waits.
	t.Compressed = span > compressAfter
	frac := func(d time.Duration) float64 {
		f := min(max(float64(d)/float64(span), 0), 1)
		if t.Compressed {
			f = math.Sqrt(f)
		}
		return f
	}
	x := func(at time.Time) float64 {
		if at.IsZero() {
			return t.PlotLeft
		}
		return t.PlotLeft + frac(at.Sub(start))*(t.PlotRight-t.PlotLeft)
	}
	for _, d := range tickTimes(span, t.Compressed, func(d time.Duration) float64 { return frac(d) * (t.PlotRight - t.PlotLeft) }) {
		label := fmtDur(d)
		if d >= time.Minute {
			label = fmtBucket(d)
		}
		t.Ticks = append(t.Ticks, tick{X: x(start.Add(d)), Label: "+" + label})
	}
	rowsTop := tlTop + 20
	// The label goes left of the line, where the step names' column is
	// empty: the containment line is often right after it.
	t.Alerts = append(t.Alerts, marker{X: x(start), TextX: x(start) - 6, Y: rowsTop - 4, Label: "alert received", Anchor: "end", Class: "start",
		Title: "alert received " + fmtTime(start)})
	for _, a := range v.Alerts {
		if a.Relation != "joined" {
			continue
		}
		t.Alerts = append(t.Alerts, marker{X: x(a.ReceivedAt), TextX: x(a.ReceivedAt) + 4, Y: rowsTop - 4, Label: "alert joined", Anchor: "start", Class: "joined",
			Title: "alert joined " + fmtTime(a.ReceivedAt) + ": " + a.Title})
	}
	rowOf := map[string]int{}
	for i, s := range v.Steps {
		y := rowsTop + float64(i)*tlRowH
		row := stepRow{Y: y, LabelY: y + tlRowH/2 + 4, Step: s, BarY: y + (tlRowH-tlBarH)/2, Class: "step status-" + classWord(s.Status) + " outcome-" + s.Class}
		switch {
		case s.StartedAt.IsZero():
			// Never started: a hollow mark at the end of the line.
			row.BarX, row.BarW = t.PlotRight-tlMinWidth, tlMinWidth
			row.Class += " not-started"
		default:
			endAt := s.EndedAt
			if endAt.IsZero() {
				endAt = end
			}
			row.BarX = x(s.StartedAt)
			row.BarW = max(x(endAt)-row.BarX, tlMinWidth)
			if row.BarX+row.BarW > t.PlotRight {
				row.BarX = t.PlotRight - row.BarW
			}
		}
		row.Title = fmt.Sprintf("%s (%s): %s", s.ID, s.Action, stepResult(s))
		if took := s.Took(); took > 0 {
			row.Title += ", took " + fmtDur(took)
		}
		rowOf[s.ID] = i
		t.Rows = append(t.Rows, row)
	}
	for _, a := range v.Approvals {
		i, ok := rowOf[a.StepID]
		if !ok {
			continue
		}
		y := rowsTop + float64(i)*tlRowH
		decided := a.DecidedAt
		label := "waiting for approval"
		if !decided.IsZero() {
			label = fmt.Sprintf("%s by %s at %s", decisionWord(a.Decision), a.DeciderName, fmtClock(decided))
		} else {
			decided = end
		}
		w := waitBox{X: x(a.RequestedAt), Y: y + 2, H: tlRowH - 4, Label: label, Class: "approval-wait", LabelY: y + tlRowH/2 + 4,
			Title: fmt.Sprintf("approval of %s asked %s, %s", a.StepID, fmtTime(a.RequestedAt), label)}
		w.W = max(x(decided)-w.X, 2)
		// The label goes after the box, or before it when there is no
		// room on the right.
		if w.X+w.W+6+float64(len(label))*charWidth <= t.PlotRight {
			w.LabelX, w.Anchor = w.X+w.W+6, "start"
		} else {
			w.LabelX, w.Anchor = w.X-6, "end"
		}
		t.Waits = append(t.Waits, w)
	}
	t.Bottom = rowsTop + float64(len(v.Steps))*tlRowH
	if v.Contained != nil {
		m := marker{X: x(v.Contained.EndedAt), TextX: x(v.Contained.EndedAt), Y: tlTop - 24, Label: "contained +" + fmtDur(v.TimeToContain), Class: "ttc",
			Title: fmt.Sprintf("contained by step %s at %s, %s after the alert", v.Contained.ID, fmtTime(v.Contained.EndedAt), fmtDur(v.TimeToContain))}
		m.Anchor = "middle"
		if m.X-float64(len(m.Label))*charWidth/2 < t.PlotLeft {
			m.Anchor = "start"
		} else if m.X+float64(len(m.Label))*charWidth/2 > t.PlotRight {
			m.Anchor = "end"
		}
		t.Contained = &m
	}
	t.Height = t.Bottom + 12
	return t
}

// stepResult is a step's status with its outcome, for people.
func stepResult(s stepView) string {
	if s.Outcome == "" || s.Outcome == s.Status {
		return s.Status
	}
	return s.Status + " (" + s.Outcome + ")"
}

func decisionWord(d string) string {
	switch d {
	case "approve", "approved":
		return "approved"
	case "deny", "denied":
		return "denied"
	case "":
		return "decided"
	}
	return d
}

// compressAfter is the longest run drawn on a linear time axis.
const compressAfter = 20 * time.Second

// niceDurations are the round durations ticks are put at.
var niceDurations = []time.Duration{
	time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second, 5 * time.Second,
	10 * time.Second, 15 * time.Second, 30 * time.Second, time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute,
	15 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour,
}

// niceStep is a round tick interval giving at most about eight ticks.
func niceStep(span time.Duration) time.Duration {
	for _, s := range niceDurations {
		if span/s <= 8 {
			return s
		}
	}
	return span / 8
}

// minTickGap is the least room between two tick labels.
const minTickGap = 64.0

// tickTimes are the offsets from the start to put ticks at: every round
// step on a linear axis; on a compressed one, round durations wherever
// there is room for their labels (dx is an offset's distance from the
// axis's start).
func tickTimes(span time.Duration, compressed bool, dx func(time.Duration) float64) []time.Duration {
	if !compressed {
		var out []time.Duration
		step := niceStep(span)
		for d := time.Duration(0); d <= span; d += step {
			out = append(out, d)
		}
		return out
	}
	out := []time.Duration{0}
	candidates := slices.Clone(niceDurations)
	for d := 2 * niceDurations[len(niceDurations)-1]; d <= span; d += niceDurations[len(niceDurations)-1] {
		candidates = append(candidates, d)
	}
	last := 0.0
	for _, d := range candidates {
		if d > span {
			break
		}
		if dx(d)-last >= minTickGap {
			out = append(out, d)
			last = dx(d)
		}
	}
	return out
}

// Stacked column charts of the impact timeline: one column per bucket,
// one segment per series (a segment of height 0 where a series has no
// event), so a bucket's height is all the events in it and its colours
// say where they came from.

const (
	chWidth  = 1000.0
	chHeight = 240.0
	chLeft   = 48.0
	chRight  = 16.0
	chTop    = 12.0
	chBottom = 28.0
)

type stackChart struct {
	Title         string
	Width, Height float64
	Left, Right   float64
	Top, Bottom   float64
	YTicks        []tick // X holds the y coordinate
	XTicks        []tick
	Series        []stackSeries
	Total         int
}

type stackSeries struct {
	Name     string
	Color    int
	Segments []segment
	Total    int
}

// segment is one series' count in one bucket.
type segment struct {
	X, Y, W, H float64
	Count      int
	Title      string
}

func stackChartOf(title string, tl *timeline, ss []series) stackChart {
	c := stackChart{Title: title, Width: chWidth, Height: chHeight, Left: chLeft, Right: chWidth - chRight, Top: chTop, Bottom: chHeight - chBottom}
	totals := make([]int, tl.Points)
	for _, s := range ss {
		for k, n := range s.Counts {
			totals[k] += n
		}
	}
	top := niceCeil(slices.Max(totals))
	colW := (c.Right - c.Left) / float64(tl.Points)
	gap := min(colW*0.15, 4)
	center := func(k int) float64 { return c.Left + (float64(k)+0.5)*colW }
	h := func(n int) float64 { return float64(n) / float64(top) * (c.Bottom - c.Top) }
	for _, n := range []int{0, top / 2, top} {
		c.YTicks = append(c.YTicks, tick{X: c.Bottom - h(n), Label: fmt.Sprint(n)})
	}
	layout := bucketLayout(tl.Bucket)
	for _, k := range xTickIndexes(tl.Points) {
		c.XTicks = append(c.XTicks, tick{X: center(k), Label: tl.Start.Add(time.Duration(k) * tl.Bucket).Format(layout), Anchor: "middle"})
	}
	if n := len(c.XTicks); n > 1 {
		// The first and last labels stay inside the chart.
		c.XTicks[0].X, c.XTicks[0].Anchor = c.Left, "start"
		c.XTicks[n-1].X, c.XTicks[n-1].Anchor = c.Right, "end"
	}
	base := make([]float64, tl.Points)
	for i, s := range ss {
		st := stackSeries{Name: s.Name, Color: i % paletteSize}
		for k, n := range s.Counts {
			seg := segment{X: c.Left + float64(k)*colW + gap/2, W: colW - gap, H: h(n), Count: n,
				Title: fmt.Sprintf("%s, %s: %d", s.Name, tl.Start.Add(time.Duration(k)*tl.Bucket).Format("2006-01-02 15:04 UTC"), n)}
			seg.Y = c.Bottom - base[k] - seg.H
			base[k] += seg.H
			st.Segments = append(st.Segments, seg)
			st.Total += n
		}
		c.Total += st.Total
		c.Series = append(c.Series, st)
	}
	return c
}

// paletteSize is how many series colours the stylesheet defines
// (.c0 … .c9).
const paletteSize = 10

func bucketLayout(b time.Duration) string {
	if b >= 24*time.Hour {
		return "Jan 2"
	}
	return "Jan 2 15:04"
}

// xTickIndexes are up to six evenly spread bucket indexes, first and last
// included.
func xTickIndexes(points int) []int {
	if points <= 6 {
		out := make([]int, points)
		for i := range out {
			out[i] = i
		}
		return out
	}
	var out []int
	for i := range 6 {
		out = append(out, i*(points-1)/5)
	}
	return out
}

// niceCeil rounds a chart's top up: to an even count up to 10, then to 2
// or 5 times a power of ten; even, so that its half is a whole count.
func niceCeil(n int) int {
	if n <= 10 {
		return max(2, n+n%2) // even, so that half of it is a whole count
	}
	for p := 1; ; p *= 10 {
		for _, m := range []int{1, 2, 5} {
			if m*p >= n && m*p%2 == 0 {
				return m * p
			}
		}
	}
}

// Horizontal bar charts, when the impact step reported no timeline.

type barChart struct {
	Title  string
	Width  float64
	Height float64
	Left   float64
	Bars   []bar
	More   int
}

type bar struct {
	Y, W   float64
	Name   string
	Count  int
	TextX  float64
	LabelY float64
}

const maxBars = 15

func barChartOf(title string, cs []count) barChart {
	b := barChart{Title: title, Width: chWidth, Left: 260}
	top := 1
	for _, c := range cs {
		top = max(top, c.Count)
	}
	shown := cs
	if len(shown) > maxBars {
		shown, b.More = shown[:maxBars], len(cs)-maxBars
	}
	for i, c := range shown {
		y := 8 + float64(i)*24
		w := max(float64(c.Count)/float64(top)*(chWidth-b.Left-80), 2)
		b.Bars = append(b.Bars, bar{Y: y, W: w, Name: clip(c.Name, 38), Count: c.Count, TextX: b.Left + w + 6, LabelY: y + 13})
	}
	b.Height = 16 + float64(len(shown))*24
	return b
}

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// The derived credentials: a graph from the leaked key to what it minted.

const (
	gNodeW = 250.0
	gNodeH = 46.0
	gColW  = 390.0
	gRowH  = 64.0
	gPad   = 12.0
)

type graphSVG struct {
	Width, Height float64
	Nodes         []graphNode
	Edges         []graphEdge
}

type graphNode struct {
	X, Y   float64
	ID     string
	Detail string
	Class  string
}

type graphEdge struct {
	Path           string
	LabelX, LabelY float64
	Label          string
}

func derivedGraph(root string, ds []derivedView) graphSVG {
	detail := map[string]string{root: "the leaked credential"}
	parent := map[string]string{}
	event := map[string]string{}
	order := []string{root}
	seen := map[string]bool{root: true}
	add := func(id string) {
		if !seen[id] {
			seen[id] = true
			order = append(order, id)
		}
	}
	for _, d := range ds {
		if d.AccessKeyID == "" {
			continue
		}
		by := d.CreatedByKey
		if by == "" {
			by = root
		}
		add(by)
		add(d.AccessKeyID)
		parent[d.AccessKeyID] = by
		event[d.AccessKeyID] = d.CreatedByEvent
		detail[d.AccessKeyID] = strings.TrimSpace(strings.ReplaceAll(d.Kind, "_", " ") + " · " + d.Principal)
		detail[d.AccessKeyID] = strings.TrimSuffix(detail[d.AccessKeyID], " ·")
	}
	depth := map[string]int{}
	var depthOf func(id string, hops int) int
	depthOf = func(id string, hops int) int {
		if d, ok := depth[id]; ok {
			return d
		}
		p, ok := parent[id]
		if !ok || id == root || hops > len(order) {
			return 0
		}
		return depthOf(p, hops+1) + 1
	}
	columns := map[int]int{}
	pos := map[string][2]float64{}
	g := graphSVG{}
	maxDepth, maxRows := 0, 0
	for _, id := range order {
		d := depthOf(id, 0)
		depth[id] = d
		row := columns[d]
		columns[d]++
		x, y := gPad+float64(d)*gColW, gPad+float64(row)*gRowH
		pos[id] = [2]float64{x, y}
		class := "node"
		if id == root {
			class += " root"
		}
		g.Nodes = append(g.Nodes, graphNode{X: x, Y: y, ID: id, Detail: detail[id], Class: class})
		maxDepth, maxRows = max(maxDepth, d), max(maxRows, columns[d])
	}
	for _, id := range order {
		p, ok := parent[id]
		if !ok {
			continue
		}
		from, to := pos[p], pos[id]
		x1, y1 := from[0]+gNodeW, from[1]+gNodeH/2
		x2, y2 := to[0]-4, to[1]+gNodeH/2
		mid := (x1 + x2) / 2
		g.Edges = append(g.Edges, graphEdge{Path: fmt.Sprintf("M%.1f %.1f C%.1f %.1f %.1f %.1f %.1f %.1f", x1, y1, mid, y1, mid, y2, x2, y2),
			LabelX: mid, LabelY: y2 - 6, Label: event[id]})
	}
	g.Width = 2*gPad + float64(maxDepth)*gColW + gNodeW
	g.Height = 2*gPad + float64(maxRows-1)*gRowH + gNodeH
	return g
}
