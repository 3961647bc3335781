package runner

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/apicall"
)

// Call is one provider API call a step made (apicall.Call), as stored.
type Call struct {
	StepID  string
	Attempt int
	N       int // its place among its attempt's calls
	apicall.Call
}

// AddCalls stores calls a step's attempt made, after those it already
// has, with a journal entry that anchors them in the run's chain. They are
// facts about what happened, so they are written even by a pass that lost
// its run to another replica.
func (s *Store) AddCalls(ctx context.Context, runID, stepID string, attempt int, calls []apicall.Call) error {
	if len(calls) == 0 {
		return nil
	}
	err := inTx(ctx, s.db.SQL.BeginTx, func(tx *sql.Tx) error {
		return s.addCalls(ctx, tx, runID, stepID, attempt, calls)
	})
	if err != nil {
		return fmt.Errorf("record the API calls of step %s of run %s: %w", stepID, runID, err)
	}
	return nil
}

// addCalls writes calls in tx, numbered after the attempt's earlier ones
// (an attempt sent away, AttemptDeferred, runs again under its number),
// and journals a calls_recorded entry that names them and carries their
// digest: the journal's chain then shows a call edited, deleted or added.
func (s *Store) addCalls(ctx context.Context, tx *sql.Tx, runID, stepID string, attempt int, calls []apicall.Call) error {
	if len(calls) == 0 {
		return nil
	}
	var first int
	if err := tx.QueryRowContext(ctx, s.db.rebind(`SELECT COALESCE(MAX(n) + 1, 0) FROM stanch_calls WHERE run_id = ? AND step_id = ? AND attempt = ?`),
		runID, stepID, attempt).Scan(&first); err != nil {
		return err
	}
	stored := make([]Call, len(calls))
	for i, c := range calls {
		// The request id too: it comes from outside, and nothing but its
		// shape tells it from a token. AWS's, GitHub's, Slack's, GitLab's
		// and Azure's are kept; moto's (52 random letters) are not.
		c.Operation, c.RequestID, c.Error = alert.RedactText(c.Operation), alert.RedactText(c.RequestID), alert.RedactText(c.Error)
		// As the store keeps them: microseconds.
		c.At, c.Duration = fromMicros(micros(c.At)), c.Duration.Truncate(time.Microsecond)
		stored[i] = Call{StepID: stepID, Attempt: attempt, N: first + i, Call: c}
		if _, err := s.exec(ctx, tx, `INSERT INTO stanch_calls (run_id, step_id, attempt, n, service, operation, account, region, request_id, outcome, error, at, duration)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			runID, stepID, attempt, first+i, c.Service, c.Operation, c.Account, c.Region, c.RequestID, c.Outcome, c.Error, micros(c.At), c.Duration.Microseconds()); err != nil {
			return err
		}
	}
	return s.appendJournal(ctx, tx, runID, stepID, attempt, callsEvent, callsDetail(stored))
}

// callsEvent is the journal entry that anchors calls.
const callsEvent = "calls_recorded"

// callsDetail is a calls_recorded entry's detail: what the calls were for
// people, then their numbers and digest for VerifyJournal, in the form
// callsAnchor reads.
func callsDetail(calls []Call) string {
	type group struct {
		name string
		n    int
	}
	var groups []*group
	byName := map[string]*group{}
	for _, c := range calls {
		name := c.Service + ":" + c.Operation + " " + c.Outcome
		if c.Error != "" {
			name += " (" + c.Error + ")"
		}
		g, ok := byName[name]
		if !ok {
			g = &group{name: name}
			byName[name] = g
			groups = append(groups, g)
		}
		g.n++
	}
	var sb strings.Builder
	for i, g := range groups {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(g.name)
		if g.n > 1 {
			fmt.Fprintf(&sb, " ×%d", g.n)
		}
	}
	fmt.Fprintf(&sb, "; calls %d-%d, sha256 %s", calls[0].N, calls[len(calls)-1].N, callsDigest(calls))
	return sb.String()
}

var callsAnchor = regexp.MustCompile(`; calls (\d+)-(\d+), sha256 ([0-9a-f]{64})$`)

// callsDigest is hex SHA-256 over every field of each call as stored,
// length-prefixed.
func callsDigest(calls []Call) string {
	h := sha256.New()
	writeField(h, "stanch-calls-v1")
	for _, c := range calls {
		for _, f := range [...]string{c.StepID, strconv.Itoa(c.Attempt), strconv.Itoa(c.N), c.Service, c.Operation, c.Account, c.Region, c.RequestID, c.Outcome, c.Error,
			strconv.FormatInt(micros(c.At), 10), strconv.FormatInt(c.Duration.Microseconds(), 10)} {
			writeField(h, f)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// verifyCalls names the calls_recorded entries whose calls changed (one
// edited or deleted, or one added within their numbers) and the calls no
// entry anchors (added after).
func verifyCalls(entries []chainedEntry, calls []Call) []ChainBreak {
	type key struct {
		step    string
		attempt int
	}
	byAttempt := map[key][]Call{}
	for _, c := range calls {
		k := key{c.StepID, c.Attempt}
		byAttempt[k] = append(byAttempt[k], c)
	}
	covered := map[key]map[int]bool{}
	var out []ChainBreak
	for _, e := range entries {
		if e.Event != callsEvent {
			continue
		}
		m := callsAnchor.FindStringSubmatch(e.Detail)
		if m == nil {
			continue // an edited detail breaks the entry's own hash
		}
		from, _ := strconv.Atoi(m[1])
		to, _ := strconv.Atoi(m[2])
		k := key{e.StepID, e.Attempt}
		var anchored []Call
		for _, c := range byAttempt[k] {
			if c.N >= from && c.N <= to {
				anchored = append(anchored, c)
			}
		}
		// In the order they were numbered, as digested: calls are listed
		// by time, and a batch's request can be recorded after calls made
		// later.
		slices.SortFunc(anchored, func(a, b Call) int { return a.N - b.N })
		if covered[k] == nil {
			covered[k] = map[int]bool{}
		}
		for n := from; n <= to; n++ {
			covered[k][n] = true
		}
		if len(anchored) != to-from+1 || callsDigest(anchored) != m[3] {
			out = append(out, ChainBreak{Seq: e.Seq, Problem: "edited", Detail: fmt.Sprintf("the calls entry %d anchors (step %s, attempt %d, calls %d-%d) were edited, deleted or added to: %d of them are left", e.Seq, e.StepID, e.Attempt, from, to, len(anchored))})
		}
	}
	for _, c := range calls {
		if !covered[key{c.StepID, c.Attempt}][c.N] {
			out = append(out, ChainBreak{Seq: 0, Problem: "inserted", Detail: fmt.Sprintf("call %d of step %s, attempt %d (%s %s) is in no calls_recorded entry: stanch did not record it", c.N, c.StepID, c.Attempt, c.Service, c.Operation)})
		}
	}
	return out
}

// Calls returns the API calls a run's steps made, in the order they were
// made.
func (s *Store) Calls(ctx context.Context, runID string) ([]Call, error) {
	rows, err := s.db.SQL.QueryContext(ctx, s.db.rebind(`SELECT step_id, attempt, n, service, operation, account, region, request_id, outcome, error, at, duration
		FROM stanch_calls WHERE run_id = ? ORDER BY at, step_id, attempt, n`), runID)
	if err != nil {
		return nil, fmt.Errorf("API calls of run %s: %w", runID, err)
	}
	defer rows.Close()
	var out []Call
	for rows.Next() {
		var c Call
		var at, took int64
		if err := rows.Scan(&c.StepID, &c.Attempt, &c.N, &c.Service, &c.Operation, &c.Account, &c.Region, &c.RequestID, &c.Outcome, &c.Error, &at, &took); err != nil {
			return nil, fmt.Errorf("API calls of run %s: %w", runID, err)
		}
		c.At, c.Duration = fromMicros(at), time.Duration(took)*time.Microsecond
		out = append(out, c)
	}
	return out, rows.Err()
}

// RunAlert is an alert that started or joined a run.
type RunAlert struct {
	Relation   string // "started" or "joined"
	ReceivedAt time.Time
	Alert      alert.Alert
}

// RunAlerts returns the alert that started a run and every alert that
// joined it after, in the order they came.
func (s *Store) RunAlerts(ctx context.Context, runID string) ([]RunAlert, error) {
	run, err := s.Run(ctx, runID)
	if err != nil {
		return nil, err
	}
	out := []RunAlert{{Relation: "started", ReceivedAt: run.CreatedAt, Alert: run.Alert}}
	var received int64
	err = s.db.SQL.QueryRowContext(ctx, s.db.rebind(`SELECT received_at FROM stanch_alerts WHERE dedup_key = ?`), run.DedupKey).Scan(&received)
	if err == nil {
		out[0].ReceivedAt = fromMicros(received)
	} else if err != sql.ErrNoRows {
		return nil, fmt.Errorf("alerts of run %s: %w", runID, err)
	}
	rows, err := s.db.SQL.QueryContext(ctx, s.db.rebind(`SELECT a.alert, a.received_at FROM stanch_run_alerts j JOIN stanch_alerts a ON a.dedup_key = j.dedup_key
		WHERE j.run_id = ? ORDER BY j.joined_at, j.dedup_key`), runID)
	if err != nil {
		return nil, fmt.Errorf("alerts of run %s: %w", runID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var doc string
		var at int64
		if err := rows.Scan(&doc, &at); err != nil {
			return nil, fmt.Errorf("alerts of run %s: %w", runID, err)
		}
		ra := RunAlert{Relation: "joined", ReceivedAt: fromMicros(at)}
		if err := json.Unmarshal([]byte(doc), &ra.Alert); err != nil {
			return nil, fmt.Errorf("decode an alert that joined run %s: %w", runID, err)
		}
		out = append(out, ra)
	}
	return out, rows.Err()
}
