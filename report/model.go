package report

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/record"
)

// impactAction is the action whose outputs the impact section draws.
const impactAction = "aws.cloudtrail_impact"

// view is what both formats draw, worked out once from the record: times
// chosen, durations measured, impact outputs decoded, every free text
// redacted. The HTML and Markdown writers only lay it out.
type view struct {
	Run       record.RunInfo
	Owner     string
	Generated time.Time
	Link      string

	// Start is when the incident began for stanch: the alert that started
	// the run was received (or the run was created, if earlier).
	Start time.Time
	// End is the last moment anything in the record happened.
	End time.Time
	// Contained is the step that first took the credential's power away,
	// nil when none succeeded.
	Contained *stepView
	// TimeToContain is from Start to the end of Contained.
	TimeToContain time.Duration

	Alerts    []alertView
	Steps     []stepView
	Approvals []approvalView
	Calls     []callView
	Journal   []journalView
	Impact    *impactView

	FinalHash   string
	ChainOK     bool
	ChainBreaks []string
	Migrated    int
}

type alertView struct {
	Relation   string
	ReceivedAt time.Time
	Source     string
	Kind       string
	Severity   string
	Title      string
	Credential string
	Where      string
	DedupKey   string
}

type stepView struct {
	ID        string
	Seq       int
	Action    string
	Status    string
	Outcome   string
	Attempts  int
	Message   string
	Error     string
	StartedAt time.Time
	EndedAt   time.Time
	// Class is the step's CSS class word: its outcome, else its status.
	Class       string
	Containment bool
}

// Took is how long the step ran, zero when it never started or ended.
func (s stepView) Took() time.Duration {
	if s.StartedAt.IsZero() || s.EndedAt.IsZero() {
		return 0
	}
	return s.EndedAt.Sub(s.StartedAt)
}

type approvalView struct {
	StepID      string
	Approvers   []string
	Message     string
	RequestedAt time.Time
	Deadline    time.Time
	Decision    string
	// Decider is the display name (and id) of who decided; DeciderName
	// the name alone (the id when no name is known), for labels.
	Decider     string
	DeciderName string
	DecidedAt   time.Time
	Via         string
	Channel     string
	Escalated   time.Time
	Effects     []string
}

// Waited is how long the approval was waited for: until it was decided, or
// until the end of the record while it is still open.
func (a approvalView) Waited(end time.Time) time.Duration {
	if !a.DecidedAt.IsZero() {
		return a.DecidedAt.Sub(a.RequestedAt)
	}
	return end.Sub(a.RequestedAt)
}

type callView struct {
	At        time.Time
	StepID    string
	Attempt   int
	Service   string
	Operation string
	Where     string
	RequestID string
	Outcome   string
	Error     string
	Duration  string
}

type journalView struct {
	Seq      int
	At       time.Time
	StepID   string
	Attempt  int
	Event    string
	Detail   string
	Hash     string
	Migrated bool
}

// count is one name and its count, for tables and bar charts.
type count struct {
	Name  string
	Count int
}

// impactView is the outputs of the impact step, in the shapes the report
// draws.
type impactView struct {
	StepID        string
	Events        int
	FirstUsed     string
	LastUsed      string
	Denied        int
	Regions       []string
	RegionsFailed []count // Count unused; Name is "region: error"
	ByRegion      []count
	ByEvent       []count
	BySourceIP    []count
	ByUserAgent   []count
	Findings      []count
	Derived       []derivedView
	// Timeline is events per time bucket, nil when the step did not
	// report one (or reported one that does not hold together).
	Timeline *timeline
	// TimelineProblem says why a timeline that was there is not drawn.
	TimelineProblem string
}

type derivedView struct {
	AccessKeyID    string
	Kind           string
	Principal      string
	CreatedByKey   string
	CreatedByEvent string
}

// timeline is the impact step's `timeline` output: Points counts per
// series, bucket k covering Start+k*Bucket.
type timeline struct {
	Bucket   time.Duration
	Start    time.Time
	Points   int
	ByRegion []series
	ByEvent  []series
}

type series struct {
	Name   string
	Counts []int
}

// impactOutputs is the part of aws.cloudtrail_impact's outputs
// (actions/aws.ImpactOutputs) the report reads, decoded loosely: a field of
// another shape is left out rather than failing the whole report.
type impactOutputs struct {
	Events             int               `json:"events"`
	FirstUsed          string            `json:"first_used"`
	LastUsed           string            `json:"last_used"`
	ByEvent            map[string]int    `json:"by_event"`
	ByRegion           map[string]int    `json:"by_region"`
	BySourceIP         map[string]int    `json:"by_source_ip"`
	ByUserAgent        map[string]int    `json:"by_user_agent"`
	Denied             int               `json:"denied"`
	FindingCounts      map[string]int    `json:"finding_counts"`
	DerivedCredentials []map[string]any  `json:"derived_credentials"`
	Regions            []string          `json:"regions"`
	RegionsFailed      map[string]string `json:"regions_failed"`
	Timeline           *timelineOutput   `json:"timeline"`
}

type timelineOutput struct {
	Bucket   string           `json:"bucket"`
	Start    string           `json:"start"`
	Points   int              `json:"points"`
	ByRegion map[string][]int `json:"by_region"`
	ByEvent  map[string][]int `json:"by_event"`
}

// maxTimelinePoints bounds the buckets drawn, so that an output of
// another shape cannot make the page enormous.
const maxTimelinePoints = 2000

func newView(r record.Run, o Options) view {
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	contains := o.Containment
	if contains == nil {
		contains = func(string) bool { return false }
	}
	v := view{Run: r.Run, Generated: now().UTC(), Link: red(o.Link), FinalHash: red(r.FinalHash), ChainOK: r.ChainOK}
	for _, f := range []*string{&v.Run.ID, &v.Run.Playbook, &v.Run.Status, &v.Run.DedupKey, &v.Run.Credential, &v.Run.WaitingStep,
		&v.Run.FailedStep, &v.Run.Error, &v.Run.ClosedBy, &v.Run.CloseNote} {
		*f = red(*f)
	}
	if r.Run.Owner != nil {
		v.Owner = red(r.Run.Owner.String())
	}
	v.Start = r.Run.CreatedAt
	for _, a := range r.Alerts {
		v.Alerts = append(v.Alerts, alertOf(a.Relation, a.ReceivedAt, a.Alert))
		if a.Relation == "started" && !a.ReceivedAt.IsZero() && (v.Start.IsZero() || a.ReceivedAt.Before(v.Start)) {
			v.Start = a.ReceivedAt
		}
	}
	if len(v.Alerts) == 0 {
		// A record without its alerts list still has the alert that
		// started the run.
		v.Alerts = append(v.Alerts, alertOf("started", r.Alert.ReceivedAt, r.Alert))
		if t := r.Alert.ReceivedAt; !t.IsZero() && (v.Start.IsZero() || t.Before(v.Start)) {
			v.Start = t
		}
	}
	slices.SortStableFunc(v.Alerts, func(a, b alertView) int { return a.ReceivedAt.Compare(b.ReceivedAt) })

	end := v.Start
	later := func(t time.Time) {
		if t.After(end) {
			end = t
		}
	}
	later(r.Run.FinishedAt)
	for _, s := range r.Steps {
		sv := stepView{ID: red(s.StepID), Seq: s.Seq, Action: red(s.Action), Status: red(s.Status), Outcome: red(s.Outcome), Attempts: s.Attempts,
			Message: red(s.Message), Error: red(s.Error), StartedAt: s.StartedAt, EndedAt: s.EndedAt,
			Class: classWord(cmp.Or(s.Outcome, s.Status)), Containment: contains(s.Action)}
		later(s.StartedAt)
		later(s.EndedAt)
		v.Steps = append(v.Steps, sv)
	}
	for _, a := range r.Approvals {
		later(a.RequestedAt)
		later(a.DecidedAt)
		v.Approvals = append(v.Approvals, approvalOf(a))
	}
	for _, c := range r.Calls {
		later(c.At)
		v.Calls = append(v.Calls, callOf(c))
	}
	for _, e := range r.Journal {
		later(e.At)
		v.Journal = append(v.Journal, journalView{Seq: e.Seq, At: e.At, StepID: red(e.StepID), Attempt: e.Attempt, Event: red(e.Event),
			Detail: red(e.Detail), Hash: red(e.Hash), Migrated: e.ChainedAtMigration})
		if e.ChainedAtMigration {
			v.Migrated++
		}
	}
	if len(v.Journal) > 0 && v.Start.IsZero() {
		v.Start = v.Journal[0].At
	}
	v.End = end
	for _, b := range r.ChainBreaks {
		v.ChainBreaks = append(v.ChainBreaks, red(fmt.Sprintf("entry %d: %s: %s", b.Seq, b.Problem, b.Detail)))
	}
	v.Contained = firstContainment(v.Steps)
	if v.Contained != nil {
		v.TimeToContain = v.Contained.EndedAt.Sub(v.Start)
	}
	for _, s := range r.Steps {
		if s.Action == impactAction && len(s.Outputs) > 0 {
			v.Impact = impactOf(s)
			break
		}
	}
	return v
}

// firstContainment is the containment step that succeeded first.
func firstContainment(steps []stepView) *stepView {
	var first *stepView
	for i := range steps {
		s := &steps[i]
		if !s.Containment || s.Status != "succeeded" || s.EndedAt.IsZero() {
			continue
		}
		if first == nil || s.EndedAt.Before(first.EndedAt) {
			first = s
		}
	}
	return first
}

func alertOf(relation string, received time.Time, a alert.Alert) alertView {
	cred := a.Credential.Kind + " " + a.Credential.ID
	if a.Credential.Provider != "" {
		cred = a.Credential.Provider + " " + cred
	}
	if a.Credential.Account != "" {
		cred += " in " + a.Credential.Account
	}
	var where []string
	if a.Location.Repo != "" {
		where = append(where, a.Location.Repo)
	}
	if a.Location.Path != "" {
		p := a.Location.Path
		if a.Location.Line > 0 {
			p += fmt.Sprintf(":%d", a.Location.Line)
		}
		where = append(where, p)
	}
	if a.Location.URL != "" {
		where = append(where, a.Location.URL)
	}
	if received.IsZero() {
		received = a.ReceivedAt
	}
	return alertView{Relation: red(relation), ReceivedAt: received, Source: red(a.Source), Kind: red(a.Kind), Severity: red(a.Severity),
		Title: red(a.Title), Credential: red(strings.TrimSpace(cred)), Where: red(strings.Join(where, " ")), DedupKey: red(a.DedupKey)}
}

func approvalOf(a record.Approval) approvalView {
	out := approvalView{StepID: red(a.StepID), Message: red(a.Message), RequestedAt: a.RequestedAt, Deadline: a.Deadline, Decision: red(a.Decision),
		Decider: red(decider(a)), DeciderName: red(cmp.Or(a.DecidedByName, a.DecidedBy)), DecidedAt: a.DecidedAt, Via: red(a.Via), Channel: red(a.Channel), Escalated: a.EscalatedAt}
	for _, p := range a.Approvers {
		out.Approvers = append(out.Approvers, red(p))
	}
	for _, e := range a.Effects {
		d := red(e.Description)
		if e.Irreversible {
			d += " (irreversible)"
		}
		out.Effects = append(out.Effects, d)
	}
	return out
}

// decider names who decided an approval as people know them, with the id
// that identifies them.
func decider(a record.Approval) string {
	switch {
	case a.DecidedByName != "" && a.DecidedBy != "" && a.DecidedByName != a.DecidedBy:
		return a.DecidedByName + " (" + a.DecidedBy + ")"
	case a.DecidedByName != "":
		return a.DecidedByName
	}
	return a.DecidedBy
}

func callOf(c record.Call) callView {
	where := c.Account
	if c.Region != "" {
		where = strings.TrimPrefix(where+"/"+c.Region, "/")
	}
	return callView{At: c.At, StepID: red(c.StepID), Attempt: c.Attempt, Service: red(c.Service), Operation: red(c.Operation), Where: red(where),
		RequestID: red(c.RequestID), Outcome: red(c.Outcome), Error: red(c.Error), Duration: c.Duration}
}

// classWord keeps a status or outcome usable as part of a CSS class name.
func classWord(s string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(s) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			b.WriteRune(c)
		}
	}
	if b.Len() == 0 {
		return "unknown"
	}
	return b.String()
}

// red redacts free text on its way into the report: the record was
// redacted when it was written, and what leaves is redacted again by the
// rules of this build.
func red(s string) string { return alert.RedactText(s) }

func impactOf(s record.Step) *impactView {
	var out impactOutputs
	data, err := json.Marshal(s.Outputs)
	if err == nil {
		err = json.Unmarshal(data, &out)
	}
	iv := &impactView{StepID: red(s.StepID)}
	if err != nil {
		// One field of an unexpected shape: read the fields one by one.
		out = impactOutputs{}
		for k, raw := range s.Outputs {
			one, _ := json.Marshal(map[string]any{k: raw})
			_ = json.Unmarshal(one, &out)
		}
	}
	iv.Events, iv.FirstUsed, iv.LastUsed, iv.Denied = out.Events, red(out.FirstUsed), red(out.LastUsed), out.Denied
	for _, r := range out.Regions {
		iv.Regions = append(iv.Regions, red(r))
	}
	for r, e := range out.RegionsFailed {
		iv.RegionsFailed = append(iv.RegionsFailed, count{Name: red(r + ": " + e)})
	}
	slices.SortFunc(iv.RegionsFailed, func(a, b count) int { return strings.Compare(a.Name, b.Name) })
	iv.ByRegion = counts(out.ByRegion)
	iv.ByEvent = counts(out.ByEvent)
	iv.BySourceIP = counts(out.BySourceIP)
	iv.ByUserAgent = counts(out.ByUserAgent)
	iv.Findings = counts(out.FindingCounts)
	for _, d := range out.DerivedCredentials {
		iv.Derived = append(iv.Derived, derivedOf(d))
	}
	// aws.cloudtrail_impact writes a timeline of 0 points when it found
	// no events: nothing to draw, and nothing wrong.
	if out.Timeline != nil && out.Timeline.Points > 0 {
		iv.Timeline, err = timelineOf(*out.Timeline)
		if err != nil {
			iv.TimelineProblem = red(err.Error())
		}
	}
	return iv
}

// counts sorts a count map most first, then by name.
func counts(m map[string]int) []count {
	out := make([]count, 0, len(m))
	for k, n := range m {
		out = append(out, count{Name: red(k), Count: n})
	}
	slices.SortFunc(out, func(a, b count) int {
		if a.Count != b.Count {
			return b.Count - a.Count
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

func derivedOf(d map[string]any) derivedView {
	str := func(k string) string {
		s, _ := d[k].(string)
		return red(s)
	}
	principal := str("user_name")
	if principal != "" {
		principal = "user " + principal
	} else if role := cmp.Or(str("role_name"), str("role_arn")); role != "" {
		principal = "role " + role
	}
	return derivedView{AccessKeyID: str("access_key_id"), Kind: str("kind"), Principal: principal,
		CreatedByKey: str("created_by_key"), CreatedByEvent: str("created_by_event")}
}

func timelineOf(t timelineOutput) (*timeline, error) {
	bucket, err := time.ParseDuration(t.Bucket)
	if err != nil || bucket <= 0 {
		return nil, fmt.Errorf("the timeline's bucket %q is not a duration", t.Bucket)
	}
	start, err := time.Parse(time.RFC3339, t.Start)
	if err != nil {
		return nil, fmt.Errorf("the timeline's start %q is not an RFC 3339 time", t.Start)
	}
	if t.Points <= 0 || t.Points > maxTimelinePoints {
		return nil, fmt.Errorf("the timeline has %d points: want 1 to %d", t.Points, maxTimelinePoints)
	}
	out := &timeline{Bucket: bucket, Start: start.UTC(), Points: t.Points}
	for _, group := range []struct {
		in  map[string][]int
		out *[]series
	}{{t.ByRegion, &out.ByRegion}, {t.ByEvent, &out.ByEvent}} {
		for name, c := range group.in {
			if len(c) != t.Points {
				return nil, fmt.Errorf("the timeline's series %q has %d counts, not %d", name, len(c), t.Points)
			}
			*group.out = append(*group.out, series{Name: red(name), Counts: c})
		}
		sortSeries(*group.out)
	}
	return out, nil
}

// sortSeries puts the busiest series first, "other" last.
func sortSeries(s []series) {
	total := func(x series) int {
		n := 0
		for _, c := range x.Counts {
			n += c
		}
		return n
	}
	slices.SortFunc(s, func(a, b series) int {
		if (a.Name == "other") != (b.Name == "other") {
			if a.Name == "other" {
				return 1
			}
			return -1
		}
		if ta, tb := total(a), total(b); ta != tb {
			return tb - ta
		}
		return strings.Compare(a.Name, b.Name)
	})
}

// Formatting shared by both formats.

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

func fmtClock(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("15:04:05.000")
}

// fmtDur rounds a duration for people: milliseconds under a minute,
// seconds above.
func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(10 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// fmtBucket writes a bucket's length as it was given: 1h, not 1h0m0s.
func fmtBucket(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
