package aws

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// impactSummary accumulates what the events say. It is saved as it is in
// the impact step's checkpoint (see impactState), so that a resumed step
// goes on counting where the last one stopped instead of keeping events.
type impactSummary struct {
	Total        int            `json:"total"`
	First        time.Time      `json:"first"`
	Last         time.Time      `json:"last"`
	ByEvent      map[string]int `json:"by_event"`
	ByService    map[string]int `json:"by_service"`
	ByRegion     map[string]int `json:"by_region"`
	ByIP         map[string]int `json:"by_ip"`
	ByUA         map[string]int `json:"by_ua"`
	Denied       int            `json:"denied"`
	FindingCount map[string]int `json:"finding_count"`
	// Findings are in the order the events were read, except that pruning
	// keeps only the first maxFindings in the output's order.
	Findings []finding `json:"findings"`
	// Timeline is the events per time bucket. A checkpoint saved before
	// timelines existed has none: the summary resumed from it starts an
	// empty one, so the timeline output then lacks the events counted
	// before (the other outputs have them).
	Timeline *impactTimeline `json:"timeline,omitempty"`
}

// finding is one classified event, as the findings output lists it.
type finding struct {
	Category    string     `json:"category"`
	Event       string     `json:"event"`
	Time        string     `json:"time"`
	Region      string     `json:"region"`
	SourceIP    string     `json:"source_ip,omitempty"`
	AccessKeyID string     `json:"access_key_id"`
	ErrorCode   string     `json:"error_code,omitempty"`
	Resources   []resource `json:"resources,omitempty"`
}

// resource is a resource a classified event touched.
type resource struct {
	Type string `json:"type"`
	Name string `json:"name"`
}

func newImpact() *impactSummary {
	s := &impactSummary{}
	s.init()
	return s
}

// init makes the maps a decoded summary may lack.
func (s *impactSummary) init() {
	for _, m := range []*map[string]int{&s.ByEvent, &s.ByService, &s.ByRegion, &s.ByIP, &s.ByUA, &s.FindingCount} {
		if *m == nil {
			*m = map[string]int{}
		}
	}
	if s.Timeline == nil {
		s.Timeline = newTimeline()
	}
	if s.Timeline.ByRegion == nil {
		s.Timeline.ByRegion = map[string][]int{}
	}
}

func (s *impactSummary) add(e trailEvent) {
	s.Total++
	if s.First.IsZero() || e.EventTime.Before(s.First) {
		s.First = e.EventTime
	}
	if e.EventTime.After(s.Last) {
		s.Last = e.EventTime
	}
	s.ByEvent[e.EventName]++
	s.ByService[strings.TrimSuffix(e.EventSource, ".amazonaws.com")]++
	s.ByRegion[e.AWSRegion]++
	// A record without a time (CloudTrail's all have one) would stretch
	// the timeline back to year 1: it is left out of it.
	if !e.EventTime.IsZero() {
		s.Timeline.add(e.EventTime, e.AWSRegion, e.EventName)
	}
	if e.SourceIPAddress != "" {
		s.ByIP[e.SourceIPAddress]++
	}
	if e.UserAgent != "" {
		s.ByUA[e.UserAgent]++
	}
	if e.ErrorCode != "" {
		s.Denied++
	}
	if cat, ok := riskyEvents[e.EventName]; ok {
		s.FindingCount[cat]++
		s.Findings = append(s.Findings, finding{Category: cat, Event: e.EventName, Time: e.EventTime.UTC().Format(time.RFC3339),
			Region: e.AWSRegion, SourceIP: e.SourceIPAddress, AccessKeyID: e.key, ErrorCode: e.ErrorCode, Resources: e.resources})
		if len(s.Findings) > 2*maxFindings {
			s.prune()
		}
	}
}

// merge adds what o counted, as if o's events had been added after s's.
func (s *impactSummary) merge(o *impactSummary) {
	if o.Total == 0 {
		return
	}
	if s.Total == 0 || o.First.Before(s.First) {
		s.First = o.First
	}
	if o.Last.After(s.Last) {
		s.Last = o.Last
	}
	s.Total += o.Total
	s.Denied += o.Denied
	for _, m := range [][2]map[string]int{{s.ByEvent, o.ByEvent}, {s.ByService, o.ByService}, {s.ByRegion, o.ByRegion}, {s.ByIP, o.ByIP}, {s.ByUA, o.ByUA}, {s.FindingCount, o.FindingCount}} {
		for k, n := range m[1] {
			m[0][k] += n
		}
	}
	s.Timeline.merge(o.Timeline)
	s.Findings = append(s.Findings, o.Findings...)
	if len(s.Findings) > 2*maxFindings {
		s.prune()
	}
}

const maxFindings = 200

// sortFindings puts the findings in the output's order: most urgent
// category first, then oldest first, then in the order they were read.
func (s *impactSummary) sortFindings() {
	rank := map[string]int{}
	for i, c := range findingCategories {
		rank[c] = i
	}
	sort.SliceStable(s.Findings, func(i, j int) bool {
		a, b := s.Findings[i], s.Findings[j]
		if ra, rb := rank[a.Category], rank[b.Category]; ra != rb {
			return ra < rb
		}
		return a.Time < b.Time
	})
}

// prune keeps the findings that can still be in the output: the first
// maxFindings in its order. Those after them stay after them whatever is
// read next, because a later finding that ties with one kept sorts after
// it; and the kept ones, sorted, are in the order they were read among
// ties, so the output is the same as without pruning.
func (s *impactSummary) prune() {
	s.sortFindings()
	if len(s.Findings) > maxFindings {
		s.Findings = s.Findings[:maxFindings:maxFindings]
	}
}

// outputs returns what the events say; the caller adds what it knows of
// regions and derived credentials.
func (s *impactSummary) outputs() *ImpactOutputs {
	s.prune()
	findings := make([]map[string]any, 0, len(s.Findings))
	for _, f := range s.Findings {
		var res []map[string]any
		for _, r := range f.Resources {
			res = append(res, map[string]any{"type": r.Type, "name": r.Name})
		}
		findings = append(findings, map[string]any{"category": f.Category, "event": f.Event, "time": f.Time,
			"region": f.Region, "source_ip": f.SourceIP, "access_key_id": f.AccessKeyID, "error_code": f.ErrorCode, "resources": res})
	}
	out := &ImpactOutputs{
		Events: s.Total, ByEvent: s.ByEvent, ByService: s.ByService, ByRegion: s.ByRegion,
		BySourceIP: s.ByIP, ByUserAgent: s.ByUA, Denied: s.Denied, FindingCounts: s.FindingCount, Findings: findings,
		Timeline: s.Timeline.output(s.First, s.Last),
	}
	if s.Total > 0 {
		out.FirstUsed, out.LastUsed = s.First.UTC().Format(time.RFC3339), s.Last.UTC().Format(time.RFC3339)
	}
	return out
}

func (s *impactSummary) counts() []string {
	var parts []string
	for _, c := range findingCategories {
		if n := s.FindingCount[c]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", c, n))
		}
	}
	return parts
}
