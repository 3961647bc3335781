package github

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	gh "github.com/google/go-github/v60/github"

	"github.com/stanchhq/stanch/actions"
)

// auditStateVersion is the version of github.token_impact's checkpoint; a
// state of another version is ignored and the search starts again.
const auditStateVersion = 1

// auditState is how far a token's audit-log search got: what the step's
// checkpoint saves (as JSON) and a resumed attempt starts from. It holds
// what the events said (counts, the findings that can still be listed),
// not the events, and never the token: only its hash, which the audit log
// itself shows.
type auditState struct {
	V          int    `json:"v"`
	Credential string `json:"credential"`
	Hash       string `json:"hash"`
	PerPage    int    `json:"per_page"`
	// The window, fixed by the first attempt.
	Start   time.Time      `json:"start"`
	End     time.Time      `json:"end"`
	Orgs    []*orgProgress `json:"orgs"`
	Summary *auditSummary  `json:"summary"`
}

// orgProgress is how far the search of one organisation's audit log got.
type orgProgress struct {
	Org string `json:"org"`
	// Unpadded: the padded hash found nothing, the search goes on without
	// the padding.
	Unpadded bool `json:"unpadded,omitempty"`
	// After (or Cursor) is the cursor of the next page; empty for the
	// first.
	After  string `json:"after,omitempty"`
	Cursor string `json:"cursor,omitempty"`
	Pages  int    `json:"pages,omitempty"`
	Events int    `json:"events,omitempty"`
	Done   bool   `json:"done,omitempty"`
}

func newAuditState(in *TokenImpactParams, hash string, start, end time.Time) *auditState {
	st := &auditState{V: auditStateVersion, Credential: in.Credential, Hash: hash, PerPage: in.PerPage, Start: start, End: end, Summary: newAuditSummary()}
	for _, o := range in.Org {
		st.Orgs = append(st.Orgs, &orgProgress{Org: o})
	}
	return st
}

// resumedAudit returns the state the step's last attempt saved, or nil
// when there is none or it cannot be used: the search then starts again.
func resumedAudit(env actions.Env, in *TokenImpactParams, hash string) *auditState {
	if env.Resumed == nil {
		return nil
	}
	st, err := decodeAuditState(env.Resumed, in, hash)
	if err != nil {
		env.Log().Warn("token impact: the saved checkpoint cannot be used; the search starts again", "credential", in.Credential, "error", err.Error())
		return nil
	}
	env.Log().Info("token impact: resumed from the saved checkpoint", "credential", in.Credential, "progress", st.progress())
	return st
}

// decodeAuditState reads a saved state, and refuses one that is not of
// this version or not for these parameters.
func decodeAuditState(b []byte, in *TokenImpactParams, hash string) (*auditState, error) {
	var st auditState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("not a token impact state: %w", err)
	}
	switch {
	case st.V != auditStateVersion:
		return nil, fmt.Errorf("version %d, want %d", st.V, auditStateVersion)
	case st.Credential != in.Credential || st.Hash != hash || st.PerPage != in.PerPage:
		return nil, errors.New("saved for other parameters")
	case st.End.Sub(st.Start) != time.Duration(in.Lookback):
		return nil, errors.New("saved for another lookback")
	case !slices.Equal(st.orgNames(), []string(in.Org)):
		return nil, errors.New("saved for other organisations")
	}
	for _, o := range st.Orgs {
		if o == nil {
			return nil, errors.New("inconsistent")
		}
	}
	if st.Summary == nil {
		st.Summary = newAuditSummary()
	}
	st.Summary.init()
	return &st, nil
}

func (st *auditState) orgNames() []string {
	names := make([]string, 0, len(st.Orgs))
	for _, o := range st.Orgs {
		names = append(names, o.Org)
	}
	return names
}

// encode returns the state to save, with as few findings as give the same
// output.
func (st *auditState) encode() ([]byte, error) {
	st.Summary.prune()
	return json.Marshal(st)
}

// progress says, for people, how far the state got.
func (st *auditState) progress() string {
	var parts []string
	for _, o := range st.Orgs {
		s := fmt.Sprintf("%s %d page(s) %d event(s)", o.Org, o.Pages, o.Events)
		if o.Done {
			s += " (done)"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

// add counts the events of one page of o, and reports whether the page
// reached past the window's start: pages come newest first, so the next
// ones would hold older events only.
func (st *auditState) add(o *orgProgress, entries []*gh.AuditEntry) (older bool) {
	want := strings.TrimRight(st.Hash, "=")
	for _, e := range entries {
		// A search that ignored the phrase would give the whole log: only
		// events that carry the token's hash count.
		if strings.TrimRight(e.GetHashedToken(), "=") != want {
			continue
		}
		ev := readAuditEntry(e, o.Org)
		switch {
		case ev.time.Before(st.Start):
			older = true
			continue
		case ev.time.After(st.End):
			continue
		}
		st.Summary.add(ev)
		o.Events++
	}
	return older
}

// auditEvent is what the impact reads of one audit-log entry.
type auditEvent struct {
	action   string
	time     time.Time
	id       string
	org      string
	repo     string
	sourceIP string
	agent    string
	entry    *gh.AuditEntry
}

func readAuditEntry(e *gh.AuditEntry, org string) auditEvent {
	ev := auditEvent{action: e.GetAction(), id: e.GetDocumentID(), org: e.GetOrg(), entry: e}
	if ev.org == "" {
		ev.org = org
	}
	switch {
	case e.Timestamp != nil:
		ev.time = e.Timestamp.UTC()
	case e.CreatedAt != nil:
		ev.time = e.CreatedAt.UTC()
	}
	ev.repo = entryField(e, "repo")
	if ev.repo == "" {
		ev.repo = entryField(e, "repository")
	}
	ev.sourceIP = entryField(e, "actor_ip")
	ev.agent = entryField(e, "user_agent")
	return ev
}

// entryField returns a field of an entry as text: the audit log gives an
// action's own fields at the top level, go-github keeps them in
// AdditionalFields (or Data); only strings and numbers are read.
func entryField(e *gh.AuditEntry, name string) string {
	if name == "user" && e.GetUser() != "" {
		return e.GetUser()
	}
	for _, m := range []map[string]any{e.AdditionalFields, e.Data} {
		switch v := m[name].(type) {
		case string:
			return v
		case float64:
			return fmt.Sprint(v)
		case bool:
			return fmt.Sprint(v)
		}
	}
	return ""
}

// auditSummary accumulates what the events say; it is saved as it is in
// the step's checkpoint.
type auditSummary struct {
	Total        int            `json:"total"`
	First        time.Time      `json:"first"`
	Last         time.Time      `json:"last"`
	ByAction     map[string]int `json:"by_action"`
	ByRepo       map[string]int `json:"by_repo"`
	ByIP         map[string]int `json:"by_ip"`
	ByUA         map[string]int `json:"by_ua"`
	ByOrg        map[string]int `json:"by_org"`
	Cloned       map[string]int `json:"cloned"`
	Pushed       map[string]int `json:"pushed"`
	FindingCount map[string]int `json:"finding_count"`
	// Findings are kept in the output's order, at most maxAuditFindings
	// after each prune.
	Findings []auditFinding `json:"findings"`
}

// auditFinding is one classified event, as the findings output lists it.
type auditFinding struct {
	Category string `json:"category"`
	Severity string `json:"severity"`
	Event    string `json:"event"`
	What     string `json:"what"`
	Time     string `json:"time"`
	Org      string `json:"org"`
	Repo     string `json:"repo,omitempty"`
	SourceIP string `json:"source_ip,omitempty"`
	ID       string `json:"id,omitempty"`
}

const maxAuditFindings = 200

func newAuditSummary() *auditSummary {
	s := &auditSummary{}
	s.init()
	return s
}

// init makes the maps a decoded summary may lack.
func (s *auditSummary) init() {
	for _, m := range []*map[string]int{&s.ByAction, &s.ByRepo, &s.ByIP, &s.ByUA, &s.ByOrg, &s.Cloned, &s.Pushed, &s.FindingCount} {
		if *m == nil {
			*m = map[string]int{}
		}
	}
}

func (s *auditSummary) add(e auditEvent) {
	s.Total++
	if s.First.IsZero() || e.time.Before(s.First) {
		s.First = e.time
	}
	if e.time.After(s.Last) {
		s.Last = e.time
	}
	s.ByAction[e.action]++
	s.ByOrg[e.org]++
	if e.repo != "" {
		s.ByRepo[e.repo]++
	}
	if e.sourceIP != "" {
		s.ByIP[e.sourceIP]++
	}
	if e.agent != "" {
		s.ByUA[e.agent]++
	}
	c, ok := classifyAuditEvent(e)
	if !ok {
		return
	}
	if e.repo != "" {
		switch c.category {
		case catDataAccess:
			s.Cloned[e.repo]++
		case catCodeChange:
			s.Pushed[e.repo]++
		}
	}
	s.FindingCount[c.category]++
	s.Findings = append(s.Findings, auditFinding{Category: c.category, Severity: c.severity, Event: e.action, What: c.what,
		Time: e.time.UTC().Format(time.RFC3339), Org: e.org, Repo: e.repo, SourceIP: e.sourceIP, ID: e.id})
	if len(s.Findings) > 2*maxAuditFindings {
		s.prune()
	}
}

// prune sorts the findings in the output's order and keeps the first
// maxAuditFindings. The order is total (the document id breaks ties), so
// the kept ones are the same whatever order the pages were read in, and
// wherever an attempt stopped.
func (s *auditSummary) prune() {
	sev, cat := rankOf(severities), rankOf(auditCategories)
	sort.SliceStable(s.Findings, func(i, j int) bool {
		a, b := s.Findings[i], s.Findings[j]
		if x, y := sev[a.Severity], sev[b.Severity]; x != y {
			return x < y
		}
		if x, y := cat[a.Category], cat[b.Category]; x != y {
			return x < y
		}
		if a.Time != b.Time {
			return a.Time < b.Time
		}
		return a.ID < b.ID
	})
	if len(s.Findings) > maxAuditFindings {
		s.Findings = s.Findings[:maxAuditFindings:maxAuditFindings]
	}
}

func rankOf(names []string) map[string]int {
	m := make(map[string]int, len(names))
	for i, n := range names {
		m[n] = i
	}
	return m
}

// outputs returns what the events say; the caller adds what it knows of
// the token and the organisations.
func (s *auditSummary) outputs() *TokenImpactOutputs {
	s.prune()
	findings := make([]map[string]any, 0, len(s.Findings))
	for _, f := range s.Findings {
		findings = append(findings, map[string]any{"category": f.Category, "severity": f.Severity, "event": f.Event, "what": f.What,
			"time": f.Time, "org": f.Org, "repo": f.Repo, "source_ip": f.SourceIP})
	}
	out := &TokenImpactOutputs{
		Events: s.Total, ByAction: s.ByAction, ByRepository: s.ByRepo, Repositories: auditKeys(s.ByRepo),
		Cloned: auditKeys(s.Cloned), Pushed: auditKeys(s.Pushed), BySourceIP: s.ByIP, ByUserAgent: s.ByUA, ByOrg: s.ByOrg,
		FindingCounts: s.FindingCount, Findings: findings,
	}
	if s.Total > 0 {
		out.FirstUsed, out.LastUsed = s.First.UTC().Format(time.RFC3339), s.Last.UTC().Format(time.RFC3339)
	}
	return out
}

// counts lists the finding counts, most urgent category first.
func (s *auditSummary) counts() []string {
	var parts []string
	for _, c := range auditCategories {
		if n := s.FindingCount[c]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", c, n))
		}
	}
	return parts
}
