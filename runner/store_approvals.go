package runner

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/alert"
)

// Approval is a pending or decided approval of one step.
type Approval struct {
	RunID       string
	StepID      string
	Approvers   []string
	Message     string
	RequestedAt time.Time
	Deadline    time.Time
	Decision    string // "", "approved", "denied"
	DecidedBy   string
	// DecidedByName is the approver's display name, when known (Slack's
	// users.info for a click); DecidedBy is their id.
	DecidedByName string
	DecidedAt     time.Time
	Via           string // "cli", "slack", "timeout"
	// Channel is the Slack channel where approvers are asked, if any.
	Channel string
	// Escalation is the second round the approval goes to when nobody
	// decides before Deadline; EscalatedAt is set once it has.
	Escalation  *Escalation
	EscalatedAt time.Time
	// Effects are what the step will change if approved, from its plan
	// when the approval was asked; Plan is that plan's summary (or why it
	// could not be made).
	Effects []actions.Effect
	Plan    string
	// Generation is the run's generation that asked (see Run.Generation).
	Generation int
}

// Escalation is the second round of an approval.
type Escalation struct {
	Channel   string
	Approvers []string
	Timeout   time.Duration
}

// ApprovalRequest is what RequestApproval records.
type ApprovalRequest struct {
	Approvers  []string
	Message    string
	Deadline   time.Time
	Channel    string
	Escalation *Escalation
	// Effects are what the step would change, from its plan; Plan is the
	// plan's summary, or why there is none.
	Effects []actions.Effect
	Plan    string
	// Generation is the run's generation asking.
	Generation int
}

// Decisions.
const (
	Approved = "approved"
	Denied   = "denied"
)

// RequestApproval records that a step waits for a decision, once: a second
// call returns the first request with its original deadline, so restarts do
// not extend the timeout.
func (s *Store) RequestApproval(ctx context.Context, runID, stepID string, req ApprovalRequest) (Approval, error) {
	var esc Escalation
	if req.Escalation != nil {
		esc = *req.Escalation
	}
	effects, err := json.Marshal(redactEffects(req.Effects))
	if err != nil {
		return Approval{}, fmt.Errorf("encode the effects of step %s: %w", stepID, err)
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := s.exec(ctx, tx, `INSERT INTO stanch_approvals (run_id, step_id, approvers, message, requested_at, deadline, channel, escalate_channel, escalate_approvers, escalate_timeout, effects, plan, generation)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, step_id) DO NOTHING`,
			runID, stepID, strings.Join(req.Approvers, ","), alert.RedactText(req.Message), micros(s.now()), micros(req.Deadline),
			req.Channel, esc.Channel, strings.Join(esc.Approvers, ","), int64(esc.Timeout/time.Microsecond), string(effects), alert.RedactText(req.Plan), req.Generation)
		if err != nil {
			return fmt.Errorf("request approval of %s: %w", stepID, err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			detail := fmt.Sprintf("approvers %s; times out %s", strings.Join(req.Approvers, ", "), req.Deadline.UTC().Format(time.RFC3339))
			if req.Channel != "" {
				detail += "; asked in " + req.Channel
			}
			if len(req.Effects) > 0 {
				var effects []string
				for _, e := range req.Effects {
					effects = append(effects, e.String())
				}
				detail += "; if approved: " + strings.Join(effects, "; ")
			} else if req.Plan != "" {
				detail += "; " + req.Plan
			}
			return s.appendJournal(ctx, tx, runID, stepID, 0, "approval_requested", detail)
		}
		return nil
	})
	if err != nil {
		return Approval{}, err
	}
	return s.Approval(ctx, runID, stepID)
}

const approvalColumns = `run_id, step_id, approvers, message, requested_at, deadline, decision, decided_by, decided_at, via, channel, escalate_channel, escalate_approvers, escalate_timeout, escalated_at, effects, plan, generation, decided_by_name`

func scanApproval(row interface{ Scan(...any) error }) (Approval, error) {
	var a Approval
	var approvers, escChannel, escApprovers, effects string
	var requested, deadline, decided, escTimeout, escalated int64
	if err := row.Scan(&a.RunID, &a.StepID, &approvers, &a.Message, &requested, &deadline, &a.Decision, &a.DecidedBy, &decided, &a.Via,
		&a.Channel, &escChannel, &escApprovers, &escTimeout, &escalated, &effects, &a.Plan, &a.Generation, &a.DecidedByName); err != nil {
		return Approval{}, err
	}
	if effects != "" {
		if err := json.Unmarshal([]byte(effects), &a.Effects); err != nil {
			return Approval{}, fmt.Errorf("decode the effects of step %s: %w", a.StepID, err)
		}
	}
	a.Approvers = splitList(approvers)
	a.RequestedAt, a.Deadline, a.DecidedAt, a.EscalatedAt = fromMicros(requested), fromMicros(deadline), fromMicros(decided), fromMicros(escalated)
	if escChannel != "" {
		a.Escalation = &Escalation{Channel: escChannel, Approvers: splitList(escApprovers), Timeout: time.Duration(escTimeout) * time.Microsecond}
	}
	return a, nil
}

func redactEffects(in []actions.Effect) []actions.Effect {
	out := make([]actions.Effect, len(in))
	for i, e := range in {
		out[i] = actions.Effect{Description: alert.RedactText(e.Description), Irreversible: e.Irreversible}
	}
	return out
}

// Approval returns the approval request of a step.
func (s *Store) Approval(ctx context.Context, runID, stepID string) (Approval, error) {
	a, err := scanApproval(s.db.SQL.QueryRowContext(ctx, s.db.rebind(`SELECT `+approvalColumns+` FROM stanch_approvals WHERE run_id = ? AND step_id = ?`), runID, stepID))
	if errors.Is(err, sql.ErrNoRows) {
		return Approval{}, fmt.Errorf("approval of step %s of run %s: %w", stepID, runID, ErrNotFound)
	}
	if err != nil {
		return Approval{}, fmt.Errorf("approval of step %s of run %s: %w", stepID, runID, err)
	}
	return a, nil
}

// Approvals returns every approval request of a run.
func (s *Store) Approvals(ctx context.Context, runID string) (map[string]Approval, error) {
	rows, err := s.db.SQL.QueryContext(ctx, s.db.rebind(`SELECT `+approvalColumns+` FROM stanch_approvals WHERE run_id = ?`), runID)
	if err != nil {
		return nil, fmt.Errorf("approvals of run %s: %w", runID, err)
	}
	defer rows.Close()
	out := map[string]Approval{}
	for rows.Next() {
		a, err := scanApproval(rows)
		if err != nil {
			return nil, fmt.Errorf("approvals of run %s: %w", runID, err)
		}
		out[a.StepID] = a
	}
	return out, rows.Err()
}

// decidedButWaiting returns the runs that still wait on a step whose
// approval was decided before decidedBefore.
func (s *Store) decidedButWaiting(ctx context.Context, decidedBefore time.Time) ([]Run, error) {
	return s.queryRuns(ctx, `SELECT `+prefixed("r.", runColumns)+` FROM stanch_runs r JOIN stanch_approvals a ON a.run_id = r.id AND a.step_id = r.waiting_step
		WHERE r.status = ? AND a.decision <> '' AND a.decided_at < ?`, RunWaitingApproval, micros(decidedBefore))
}

// Escalate moves an undecided approval to its second round, once: the
// escalation's approvers join, the channel changes and the deadline moves
// on by the escalation's timeout. It reports whether this call did it.
func (s *Store) Escalate(ctx context.Context, runID, stepID string) (Approval, bool, error) {
	a, err := s.Approval(ctx, runID, stepID)
	if err != nil {
		return Approval{}, false, err
	}
	if a.Escalation == nil || !a.EscalatedAt.IsZero() || a.Decision != "" {
		return a, false, nil
	}
	approvers := a.Approvers
	for _, p := range a.Escalation.Approvers {
		if !slices.Contains(approvers, p) {
			approvers = append(approvers, p)
		}
	}
	now := s.now()
	deadline := now.Add(a.Escalation.Timeout)
	escalated := false
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := s.exec(ctx, tx, `UPDATE stanch_approvals SET approvers = ?, deadline = ?, escalated_at = ? WHERE run_id = ? AND step_id = ? AND escalated_at = 0 AND decision = ''`,
			strings.Join(approvers, ","), micros(deadline), micros(now), runID, stepID)
		if err != nil {
			return fmt.Errorf("escalate approval of %s: %w", stepID, err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			escalated = true
			return s.appendJournal(ctx, tx, runID, stepID, 0, "approval_escalated", fmt.Sprintf("to %s; approvers %s; times out %s", a.Escalation.Channel, strings.Join(approvers, ", "), deadline.UTC().Format(time.RFC3339)))
		}
		return nil
	})
	if err != nil {
		return Approval{}, false, err
	}
	a, err = s.Approval(ctx, runID, stepID)
	return a, escalated, err
}

// Decide records a decision on a requested approval, with the approver's
// id and display name. The first decision wins: later ones change nothing,
// and first is false.
func (s *Store) Decide(ctx context.Context, runID, stepID, decision string, by Approver, via string) (a Approval, first bool, err error) {
	if decision != Approved && decision != Denied {
		return Approval{}, false, fmt.Errorf("decision %q: want %s or %s", decision, Approved, Denied)
	}
	// A display name is whatever its owner typed into Slack: redacted like
	// every other text that reaches the store.
	by.Name = alert.RedactText(by.Name)
	err = s.db.durableTx(ctx, func(tx *sql.Tx) error {
		res, err := s.exec(ctx, tx, `UPDATE stanch_approvals SET decision = ?, decided_by = ?, decided_by_name = ?, decided_at = ?, via = ? WHERE run_id = ? AND step_id = ? AND decision = ''`,
			decision, by.ID, by.Name, micros(s.now()), via, runID, stepID)
		if err != nil {
			return fmt.Errorf("decide approval of %s: %w", stepID, err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			first = true
			return s.appendJournal(ctx, tx, runID, stepID, 0, "approval_"+decision, "by "+by.String()+" via "+via)
		}
		return nil
	})
	if err != nil {
		return Approval{}, false, err
	}
	a, err = s.Approval(ctx, runID, stepID)
	return a, first, err
}

// Refuse journals a decision attempt by someone who is not an approver.
func (s *Store) Refuse(ctx context.Context, runID, stepID, by, via string) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		return s.appendJournal(ctx, tx, runID, stepID, 0, "approval_refused", by+" is not an approver (via "+via+")")
	})
}
