package aws

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// impactStateVersion is the version of the impact step's checkpoint; a
// state of another version is ignored and the query starts again. Fields
// added since (the summaries' timeline) are optional, so that a step
// interrupted before an upgrade still resumes from what it saved.
const impactStateVersion = 1

// impactState is how far an impact query got: what the step's checkpoint
// saves (as JSON) and a resumed attempt starts from. It holds what the
// events said, not the events: counts, the findings that can still be
// listed, the derived credentials. Never a secret: of an event's
// responseElements (where a minted session's token is) only the new
// credential's id and user name are kept.
//
// The query reads the keys of one BFS level in turn, each in every region
// at once. What a region says is kept apart (in Pairs) until every region
// of the key is read, then merged in region order, so that the outputs do
// not depend on which region answered first, nor on where an attempt
// stopped.
type impactState struct {
	V int `json:"v"`
	// What the state answers: a state saved for other parameters is
	// ignored.
	Key        string `json:"key"`
	Account    string `json:"account"`
	MaxDepth   int    `json:"max_depth"`
	MaxDerived int    `json:"max_derived"`
	// The query window, fixed by the first attempt.
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	Regions []string  `json:"regions"`
	// Level is the BFS level being read; its first Done keys are read and
	// merged. Next is the level after it, as far as it is known.
	Level   []pendingKey      `json:"level"`
	Done    int               `json:"done"`
	Next    []pendingKey      `json:"next"`
	Seen    []string          `json:"seen"`
	Derived []derivedCred     `json:"derived"`
	Failed  map[string]string `json:"failed"`
	Summary *impactSummary    `json:"summary"`
	// Pairs are the regions of Level[Done], in Regions' order, while it is
	// read; empty between keys.
	Pairs []*pairState `json:"pairs,omitempty"`
}

// pendingKey is a credential to look up, depth hops from the leaked key.
type pendingKey struct {
	Key   string `json:"key"`
	Depth int    `json:"depth"`
}

// pairState is how far one key's lookup in one region got.
type pairState struct {
	Region string `json:"region"`
	Done   bool   `json:"done,omitempty"`
	// Token is the NextToken of the next page to read; empty for the first.
	Token   string         `json:"token,omitempty"`
	Pages   int            `json:"pages,omitempty"`
	Summary *impactSummary `json:"summary"`
	// Candidates are the credentials the region's events minted or
	// created, first sighting of each only.
	Candidates []derivedCred `json:"candidates,omitempty"`
	// err is why the region could not be read. It is not saved: a resumed
	// attempt tries the region again from Token.
	err string
}

// derivedCred is one entry of the derived_credentials output.
type derivedCred struct {
	AccessKeyID    string `json:"access_key_id"`
	Kind           string `json:"kind"`
	UserName       string `json:"user_name"`
	CreatedByEvent string `json:"created_by_event"`
	RoleARN        string `json:"role_arn,omitempty"`
	CreatedByKey   string `json:"created_by_key,omitempty"`
	Region         string `json:"region"`
	Time           string `json:"time"`
	Depth          int    `json:"depth,omitempty"`
}

// output returns d as the derived_credentials output lists it.
func (d derivedCred) output() map[string]any {
	m := map[string]any{"access_key_id": d.AccessKeyID, "kind": d.Kind, "user_name": d.UserName, "created_by_event": d.CreatedByEvent,
		"created_by_key": d.CreatedByKey, "region": d.Region, "time": d.Time, "depth": d.Depth}
	if d.RoleARN != "" {
		m["role_arn"] = d.RoleARN
	}
	return m
}

// candidateOf returns the credential e minted or created, if any.
func candidateOf(e trailEvent) (derivedCred, bool) {
	d := derivedFrom(e)
	id, _ := d["access_key_id"].(string)
	if id == "" {
		return derivedCred{}, false
	}
	c := derivedCred{AccessKeyID: id, Region: e.AWSRegion, Time: e.EventTime.UTC().Format(time.RFC3339)}
	c.Kind, _ = d["kind"].(string)
	c.UserName, _ = d["user_name"].(string)
	c.CreatedByEvent, _ = d["created_by_event"].(string)
	c.RoleARN, _ = d["role_arn"].(string)
	return c, true
}

func newImpactState(in *ImpactParams, regions []string, start, end time.Time) *impactState {
	return &impactState{V: impactStateVersion, Key: in.AccessKeyID, Account: in.Account, MaxDepth: in.MaxDepth, MaxDerived: in.MaxDerived,
		Start: start, End: end, Regions: regions, Level: []pendingKey{{Key: in.AccessKeyID}}, Seen: []string{in.AccessKeyID},
		Failed: map[string]string{}, Summary: newImpact()}
}

// decodeImpactState reads a saved state, and refuses one that is not of
// this version, not for these parameters, or not consistent.
func decodeImpactState(b []byte, in *ImpactParams) (*impactState, error) {
	var st impactState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("not an impact state: %w", err)
	}
	switch {
	case st.V != impactStateVersion:
		return nil, fmt.Errorf("version %d, want %d", st.V, impactStateVersion)
	case st.Key != in.AccessKeyID || st.Account != in.Account || st.MaxDepth != in.MaxDepth || st.MaxDerived != in.MaxDerived:
		return nil, errors.New("saved for other parameters")
	case st.End.Sub(st.Start) != time.Duration(in.Lookback):
		return nil, errors.New("saved for another lookback")
	case !(len(in.Regions) == 1 && in.Regions[0] == "all") && !slices.Equal(st.Regions, in.Regions):
		return nil, errors.New("saved for other regions")
	case len(st.Regions) == 0 || st.Done < 0 || st.Done > len(st.Level) || !slices.Contains(st.Seen, st.Key):
		return nil, errors.New("inconsistent")
	case len(st.Pairs) > 0 && (st.Done == len(st.Level) || len(st.Pairs) != len(st.Regions)):
		return nil, errors.New("inconsistent regions")
	}
	for i, pr := range st.Pairs {
		if pr == nil || pr.Region != st.Regions[i] {
			return nil, errors.New("inconsistent regions")
		}
		if pr.Summary == nil {
			pr.Summary = newImpact()
		}
		pr.Summary.init()
		if err := pr.Summary.Timeline.check(); err != nil {
			return nil, fmt.Errorf("region %s: %w", pr.Region, err)
		}
	}
	if st.Summary == nil {
		st.Summary = newImpact()
	}
	st.Summary.init()
	if err := st.Summary.Timeline.check(); err != nil {
		return nil, err
	}
	if st.Failed == nil {
		st.Failed = map[string]string{}
	}
	return &st, nil
}

// key returns the key being read, and false when the query is over.
func (st *impactState) key() (pendingKey, bool) {
	if st.Done == len(st.Level) && len(st.Next) > 0 {
		st.Level, st.Next, st.Done = st.Next, nil, 0
	}
	if st.Done == len(st.Level) {
		return pendingKey{}, false
	}
	if len(st.Pairs) == 0 {
		for _, r := range st.Regions {
			st.Pairs = append(st.Pairs, &pairState{Region: r, Summary: newImpact()})
		}
	}
	return st.Level[st.Done], true
}

// add counts the events of one page of a region of the key being read.
func (st *impactState) add(pr *pairState, events []trailEvent) {
	for _, e := range events {
		pr.Summary.add(e)
		c, ok := candidateOf(e)
		// Only a credential's first sighting can be followed; and past
		// MaxDerived+2 distinct ones, a region has none that can be: the
		// derived list (at most MaxDerived) would be full before, since at
		// most MaxDerived+1 of them can have been seen (the derived ones
		// and the leaked key).
		if !ok || len(pr.Candidates) >= st.MaxDerived+2 || slices.ContainsFunc(pr.Candidates, func(o derivedCred) bool { return o.AccessKeyID == c.AccessKeyID }) {
			continue
		}
		pr.Candidates = append(pr.Candidates, c)
	}
}

// merge folds the regions of the key just read into the whole, in region
// order, and moves on to the next key.
func (st *impactState) merge(q pendingKey) {
	seen := map[string]bool{}
	for _, k := range st.Seen {
		seen[k] = true
	}
	for _, pr := range st.Pairs {
		if pr.err != "" {
			st.Failed[pr.Region] = pr.err
			continue
		}
		st.Summary.merge(pr.Summary)
		for _, c := range pr.Candidates {
			if seen[c.AccessKeyID] || len(st.Derived) >= st.MaxDerived {
				continue
			}
			seen[c.AccessKeyID] = true
			st.Seen = append(st.Seen, c.AccessKeyID)
			c.CreatedByKey, c.Depth = q.Key, q.Depth+1
			st.Derived = append(st.Derived, c)
			if q.Depth+1 <= st.MaxDepth {
				st.Next = append(st.Next, pendingKey{Key: c.AccessKeyID, Depth: q.Depth + 1})
			}
		}
	}
	st.Pairs = nil
	st.Done++
}

// encode returns the state to save, with as few findings as give the same
// output.
func (st *impactState) encode() ([]byte, error) {
	st.Summary.prune()
	for _, pr := range st.Pairs {
		pr.Summary.prune()
	}
	return json.Marshal(st)
}

// derivedOutput returns the derived_credentials output.
func (st *impactState) derivedOutput() []map[string]any {
	out := make([]map[string]any, 0, len(st.Derived))
	for _, d := range st.Derived {
		out = append(out, d.output())
	}
	return out
}

// progress says, for people, how far the state got.
func (st *impactState) progress() string {
	pages := 0
	for _, pr := range st.Pairs {
		pages += pr.Pages
	}
	return fmt.Sprintf("%d event(s) counted, %d of %d key(s) of this level read, %d page(s) of the next, %d derived credential(s), %d region(s) failed",
		st.Summary.Total, st.Done, len(st.Level), pages, len(st.Derived), len(st.Failed))
}
