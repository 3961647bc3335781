package runner

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/alert"
)

// StepRecord is the journal's current view of one step of a run.
type StepRecord struct {
	RunID     string
	StepID    string
	Seq       int
	Action    string
	Status    StepStatus
	Outcome   string
	Message   string
	Attempts  int
	Outputs   map[string]any
	Error     string
	StartedAt time.Time
	EndedAt   time.Time
	// NotBefore is when the step may start: its delay's end before its
	// first attempt, the next attempt's due time after one failed.
	NotBefore time.Time
}

// Steps returns a run's step records keyed by step id.
func (s *Store) Steps(ctx context.Context, runID string) (map[string]StepRecord, error) {
	rows, err := s.db.SQL.QueryContext(ctx, s.db.rebind(`SELECT step_id, seq, action, status, outcome, message, attempts, outputs, error, started_at, ended_at, not_before FROM stanch_steps WHERE run_id = ?`), runID)
	if err != nil {
		return nil, fmt.Errorf("steps of run %s: %w", runID, err)
	}
	defer rows.Close()
	out := map[string]StepRecord{}
	for rows.Next() {
		r := StepRecord{RunID: runID}
		var outputs string
		var started, ended, notBefore int64
		if err := rows.Scan(&r.StepID, &r.Seq, &r.Action, &r.Status, &r.Outcome, &r.Message, &r.Attempts, &outputs, &r.Error, &started, &ended, &notBefore); err != nil {
			return nil, fmt.Errorf("steps of run %s: %w", runID, err)
		}
		if err := json.Unmarshal([]byte(outputs), &r.Outputs); err != nil {
			return nil, fmt.Errorf("outputs of step %s of run %s: %w", r.StepID, runID, err)
		}
		r.StartedAt, r.EndedAt, r.NotBefore = fromMicros(started), fromMicros(ended), fromMicros(notBefore)
		out[r.StepID] = r
	}
	return out, rows.Err()
}

// Attempt is an attempt of a step that has begun.
type Attempt struct {
	// Number counts from 1, across crashes, so a step that keeps killing
	// its process still runs out of attempts.
	Number int
	// StepStarted is when the step's first attempt began.
	StepStarted time.Time
	// Checkpoint is what an earlier attempt saved of how far it got.
	Checkpoint []byte
}

// BeginAttempt journals the start of the next attempt of a step.
func (s *Store) BeginAttempt(ctx context.Context, runID, stepID string, seq int, action string) (Attempt, error) {
	now := micros(s.now())
	var started int64
	var attempt int
	var checkpoint string
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := s.exec(ctx, tx, `INSERT INTO stanch_steps (run_id, step_id, seq, action, status, started_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, step_id) DO NOTHING`,
			runID, stepID, seq, action, StepRunning, now); err != nil {
			return fmt.Errorf("begin step %s: %w", stepID, err)
		}
		// A delayed step's row exists without a start time until now.
		if _, err := s.exec(ctx, tx, `UPDATE stanch_steps SET attempts = attempts + 1, status = ?, started_at = CASE WHEN started_at = 0 THEN ? ELSE started_at END WHERE run_id = ? AND step_id = ?`, StepRunning, now, runID, stepID); err != nil {
			return fmt.Errorf("begin step %s: %w", stepID, err)
		}
		if err := tx.QueryRowContext(ctx, s.db.rebind(`SELECT attempts, started_at, checkpoint FROM stanch_steps WHERE run_id = ? AND step_id = ?`), runID, stepID).Scan(&attempt, &started, &checkpoint); err != nil {
			return fmt.Errorf("begin step %s: %w", stepID, err)
		}
		return s.appendJournal(ctx, tx, runID, stepID, attempt, "attempt_started", action)
	})
	a := Attempt{Number: attempt, StepStarted: fromMicros(started)}
	if checkpoint != "" {
		a.Checkpoint = []byte(checkpoint)
	}
	return a, err
}

// SaveCheckpoint records how far a step's attempt got; the next attempt
// reads it back (BeginAttempt). Secret-looking text in it is redacted, as
// everywhere in the store.
func (s *Store) SaveCheckpoint(ctx context.Context, runID, stepID string, state []byte) error {
	if !json.Valid(state) {
		return fmt.Errorf("checkpoint step %s of run %s: the state is not JSON", stepID, runID)
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := s.exec(ctx, tx, `UPDATE stanch_steps SET checkpoint = ? WHERE run_id = ? AND step_id = ?`, string(redactStrings(state)), runID, stepID); err != nil {
			return fmt.Errorf("checkpoint step %s of run %s: %w", stepID, runID, err)
		}
		return nil
	})
}

// AttemptFailed journals a failed attempt that will be retried, and records
// when the next one is due: a job woken sooner goes back to sleep.
func (s *Store) AttemptFailed(ctx context.Context, runID, stepID string, attempt int, cause error, retryIn time.Duration) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := s.exec(ctx, tx, `UPDATE stanch_steps SET not_before = ? WHERE run_id = ? AND step_id = ?`, micros(s.now().Add(retryIn)), runID, stepID); err != nil {
			return fmt.Errorf("schedule the next attempt of step %s: %w", stepID, err)
		}
		return s.appendJournal(ctx, tx, runID, stepID, attempt, "attempt_failed", fmt.Sprintf("%v (retrying in %s)", cause, retryIn.Round(time.Millisecond)))
	})
}

// AttemptDeferred journals an attempt the provider sent away until a time
// it named (a spent hourly budget), and records when the next one is due.
// It does not count as an attempt: a step that must wait an hour for its
// budget waits, rather than run out of attempts.
func (s *Store) AttemptDeferred(ctx context.Context, runID, stepID string, attempt int, cause error, until time.Time) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := s.exec(ctx, tx, `UPDATE stanch_steps SET not_before = ?, attempts = attempts - 1 WHERE run_id = ? AND step_id = ?`, micros(until), runID, stepID); err != nil {
			return fmt.Errorf("schedule the next attempt of step %s: %w", stepID, err)
		}
		return s.appendJournal(ctx, tx, runID, stepID, attempt, "attempt_deferred", fmt.Sprintf("%v (waiting until %s)", cause, until.UTC().Format(time.RFC3339)))
	})
}

// StepEnd is the outcome of a step to record.
type StepEnd struct {
	Seq     int
	Action  string
	Attempt int
	Status  StepStatus
	Outcome string
	Message string
	Outputs map[string]any // never secrets: the runner strips them
	Error   string
	// Owner, when set, is who the step found owns the run's credential:
	// recorded on the run in the same transaction.
	Owner *actions.Owner
}

// FinishStep records a step's final state and journals it, atomically: once
// this commits, a resumed run skips the step, and its checkpoint is no
// longer needed.
func (s *Store) FinishStep(ctx context.Context, runID, stepID string, e StepEnd) error {
	outputs := e.Outputs
	if outputs == nil {
		outputs = map[string]any{}
	}
	data, err := json.Marshal(outputs)
	if err != nil {
		return fmt.Errorf("encode outputs of step %s: %w", stepID, err)
	}
	data = redactStrings(data)
	now := micros(s.now())
	errText := alert.RedactText(e.Error)
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := s.exec(ctx, tx, `INSERT INTO stanch_steps (run_id, step_id, seq, action, status, started_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, step_id) DO NOTHING`,
			runID, stepID, e.Seq, e.Action, e.Status, now); err != nil {
			return fmt.Errorf("finish step %s: %w", stepID, err)
		}
		if _, err := s.exec(ctx, tx, `UPDATE stanch_steps SET status = ?, outcome = ?, message = ?, outputs = ?, error = ?, ended_at = ?, checkpoint = '' WHERE run_id = ? AND step_id = ?`,
			e.Status, e.Outcome, alert.RedactText(e.Message), string(data), errText, now, runID, stepID); err != nil {
			return fmt.Errorf("finish step %s: %w", stepID, err)
		}
		detail := e.Message
		if errText != "" {
			detail = errText
		}
		if err := s.appendJournal(ctx, tx, runID, stepID, e.Attempt, "step_"+string(e.Status), detail); err != nil {
			return err
		}
		if e.Owner == nil {
			return nil
		}
		owner, err := json.Marshal(e.Owner)
		if err != nil {
			return fmt.Errorf("encode the owner found by step %s: %w", stepID, err)
		}
		if _, err := s.exec(ctx, tx, `UPDATE stanch_runs SET owner = ? WHERE id = ?`, string(owner), runID); err != nil {
			return fmt.Errorf("record the owner found by step %s: %w", stepID, err)
		}
		return s.appendJournal(ctx, tx, runID, stepID, e.Attempt, "owner_identified",
			fmt.Sprintf("%s belongs to %s: every later step acts there", e.Owner.Credential, e.Owner))
	})
}

// DelayStep records, once, that a step may not start before notBefore and
// returns the recorded time: a resumed run keeps its original schedule.
func (s *Store) DelayStep(ctx context.Context, runID, stepID string, seq int, action string, notBefore time.Time) (time.Time, error) {
	var due int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := s.exec(ctx, tx, `INSERT INTO stanch_steps (run_id, step_id, seq, action, status, not_before) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, step_id) DO NOTHING`,
			runID, stepID, seq, action, StepDelayed, micros(notBefore))
		if err != nil {
			return fmt.Errorf("delay step %s: %w", stepID, err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			if err := s.appendJournal(ctx, tx, runID, stepID, 0, "step_delayed", "until "+notBefore.UTC().Format(time.RFC3339)); err != nil {
				return err
			}
		}
		return tx.QueryRowContext(ctx, s.db.rebind(`SELECT not_before FROM stanch_steps WHERE run_id = ? AND step_id = ?`), runID, stepID).Scan(&due)
	})
	return fromMicros(due), err
}

// redactStrings redacts every string of a JSON document, and every field
// name, as free text: outputs are stanch's own, so their field names say
// nothing about secrets, but their text can quote one.
func redactStrings(doc []byte) []byte {
	var v any
	if json.Unmarshal(doc, &v) != nil {
		return doc // json.Marshal made it
	}
	var walk func(v any) any
	walk = func(v any) any {
		switch t := v.(type) {
		case string:
			return alert.RedactText(t)
		case []any:
			for i := range t {
				t[i] = walk(t[i])
			}
		case map[string]any:
			out := make(map[string]any, len(t))
			for k, c := range t {
				out[alert.RedactText(k)] = walk(c)
			}
			return out
		}
		return v
	}
	out, err := json.Marshal(walk(v))
	if err != nil {
		return doc
	}
	return out
}
