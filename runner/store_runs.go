package runner

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/alert"
)

// Run is one execution of one playbook for one alert.
type Run struct {
	ID             string
	DedupKey       string
	Playbook       string
	PlaybookFile   string
	PlaybookSource []byte
	Alert          alert.Alert
	Status         RunStatus
	WaitingStep    string
	FailedStep     string
	Error          string
	JobID          int64
	CreatedAt      time.Time
	UpdatedAt      time.Time
	FinishedAt     time.Time
	// Owner is who the credential belongs to, once a step identified it.
	Owner actions.Owner
	// Generation counts the times people retried the run.
	Generation int
	// Takeover counts the times a replica took the run over from one that
	// died (PostgreSQL, lease.go); a job of an earlier takeover leaves the
	// run alone, and the run's writes are fenced by it.
	Takeover int
	// Handoff is set while the run is handed from one worker to the next
	// on purpose: "moved" (to the investigation queue), "delayed", or
	// "retrying" (its job sleeps until a step's next attempt is due).
	Handoff string
	// ClosedAt, ClosedBy and CloseNote are set once people closed the
	// incident.
	ClosedAt  time.Time
	ClosedBy  string
	CloseNote string
	// notify is set while a worker advances the run when its playbook has
	// something to show people (see Notifier.Wants).
	notify bool
}

// NewRun describes a run to create.
type NewRun struct {
	ID             string
	Playbook       string
	PlaybookFile   string
	PlaybookSource []byte
	// Correlate makes an open run of the same playbook for the same
	// credential take this alert instead.
	Correlate bool
}

// credentialKey identifies a credential across sources.
func credentialKey(a alert.Alert) string {
	return a.Credential.Provider + ":" + a.Credential.ID
}

// Intake is one alert and the runs it should start.
type Intake struct {
	Alert alert.Alert
	Runs  []NewRun
}

// Intaken is what became of an Intake: runs created, runs that already
// existed for the same alert (a redelivery), and open runs about the same
// credential that the alert joined.
type Intaken struct {
	Created, Existing, Joined []Run
}

// CreateRunsBatch records alerts and their runs in one transaction, so that
// alerts arriving together cost one commit: each alert once (by dedup
// key), and per playbook either a new run, the run that already exists for
// that alert, or the open run of the same credential, which the alert joins
// (recorded in that run's journal).
// When also is set it runs in the same transaction, after the runs are
// written (to insert their jobs).
func (s *Store) CreateRunsBatch(ctx context.Context, items []Intake, also func(tx *sql.Tx, got []Intaken) error) ([]Intaken, error) {
	out := make([]Intaken, len(items))
	err := s.db.durableTx(ctx, func(tx *sql.Tx) error {
		for i, it := range items {
			got, err := s.createRunsTx(ctx, tx, it.Alert, it.Runs)
			if err != nil {
				return err
			}
			out[i] = got
		}
		if also != nil {
			return also(tx, out)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Store) createRunsTx(ctx context.Context, tx *sql.Tx, a alert.Alert, runs []NewRun) (Intaken, error) {
	var got Intaken
	a.Redact() // as Submit did, for whoever calls the store directly
	alertJSON, err := json.Marshal(a)
	if err != nil {
		return got, fmt.Errorf("encode alert: %w", err)
	}
	now := micros(s.now())
	if _, err := s.exec(ctx, tx, `INSERT INTO stanch_alerts (dedup_key, source, alert, received_at) VALUES (?, ?, ?, ?) ON CONFLICT (dedup_key) DO NOTHING`,
		a.DedupKey, a.Source, string(alertJSON), micros(a.ReceivedAt)); err != nil {
		return got, fmt.Errorf("record alert: %w", err)
	}
	byID := func(id string) (Run, error) {
		return scanRun(tx.QueryRowContext(ctx, s.db.rebind(`SELECT `+runColumns+` FROM stanch_runs WHERE id = ?`), id))
	}
	for _, r := range runs {
		cred := ""
		if r.Correlate {
			cred = credentialKey(a)
		}
		// No conflict target: either uniqueness (same alert, or an open
		// run for the credential) means no new run.
		res, err := s.exec(ctx, tx, `INSERT INTO stanch_runs (id, dedup_key, playbook, playbook_file, playbook_source, alert, credential, status, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			r.ID, a.DedupKey, r.Playbook, r.PlaybookFile, string(r.PlaybookSource), string(alertJSON), cred, RunPending, now, now)
		if err != nil {
			return got, fmt.Errorf("record run: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			if err := s.appendJournal(ctx, tx, r.ID, "", 0, "run_created", "alert "+a.DedupKey+" matched playbook "+r.Playbook); err != nil {
				return got, err
			}
			// The run as inserted, without reading it back.
			got.Created = append(got.Created, Run{ID: r.ID, DedupKey: a.DedupKey, Playbook: r.Playbook, PlaybookFile: r.PlaybookFile, PlaybookSource: r.PlaybookSource,
				Alert: a, Status: RunPending, CreatedAt: fromMicros(now), UpdatedAt: fromMicros(now)})
			continue
		}
		run, err := scanRun(tx.QueryRowContext(ctx, s.db.rebind(`SELECT `+runColumns+` FROM stanch_runs WHERE dedup_key = ? AND playbook = ?`), a.DedupKey, r.Playbook))
		if err == nil {
			got.Existing = append(got.Existing, run)
			continue
		}
		if !errors.Is(err, ErrNotFound) {
			return got, fmt.Errorf("find run: %w", err)
		}
		var open string
		// Written as stanch_runs_open_credential's condition is, so that
		// the lookup uses that index instead of reading every run.
		if err := tx.QueryRowContext(ctx, s.db.rebind(`SELECT id FROM stanch_runs WHERE playbook = ? AND credential = ? AND credential <> ''
			AND status NOT IN (`+sqlList(RunSucceeded, RunFailed, RunCancelled)+`)`), r.Playbook, cred).Scan(&open); err != nil {
			return got, fmt.Errorf("find the open run of credential %s: %w", cred, err)
		}
		if _, err := s.exec(ctx, tx, `INSERT INTO stanch_run_alerts (run_id, dedup_key, joined_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, open, a.DedupKey, micros(s.now())); err != nil {
			return got, fmt.Errorf("record alert %s joining run %s: %w", a.DedupKey, open, err)
		}
		if err := s.appendJournal(ctx, tx, open, "", 0, "alert_joined", fmt.Sprintf("alert %s from %s about the same credential joined this run", a.DedupKey, a.Source)); err != nil {
			return got, err
		}
		run, err = byID(open)
		if err != nil {
			return got, fmt.Errorf("read the open run %s: %w", open, err)
		}
		got.Joined = append(got.Joined, run)
	}
	return got, nil
}

const runColumns = `id, dedup_key, playbook, playbook_file, playbook_source, alert, status, waiting_step, failed_step, error, job_id, created_at, updated_at, finished_at, owner, generation, handoff, closed_at, closed_by, close_note, takeover`

func scanRun(row interface{ Scan(...any) error }) (Run, error) {
	var r Run
	var src, alertJSON, owner string
	var created, updated, finished, closed int64
	if err := row.Scan(&r.ID, &r.DedupKey, &r.Playbook, &r.PlaybookFile, &src, &alertJSON, &r.Status, &r.WaitingStep, &r.FailedStep, &r.Error, &r.JobID, &created, &updated, &finished,
		&owner, &r.Generation, &r.Handoff, &closed, &r.ClosedBy, &r.CloseNote, &r.Takeover); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Run{}, ErrNotFound
		}
		return Run{}, err
	}
	r.PlaybookSource = []byte(src)
	if err := json.Unmarshal([]byte(alertJSON), &r.Alert); err != nil {
		return Run{}, fmt.Errorf("decode stored alert of run %s: %w", r.ID, err)
	}
	if owner != "" {
		if err := json.Unmarshal([]byte(owner), &r.Owner); err != nil {
			return Run{}, fmt.Errorf("decode the owner of run %s: %w", r.ID, err)
		}
	}
	r.CreatedAt, r.UpdatedAt, r.FinishedAt, r.ClosedAt = fromMicros(created), fromMicros(updated), fromMicros(finished), fromMicros(closed)
	return r, nil
}

// Run returns the run with id.
func (s *Store) Run(ctx context.Context, id string) (Run, error) {
	r, err := scanRun(s.db.SQL.QueryRowContext(ctx, s.db.rebind(`SELECT `+runColumns+` FROM stanch_runs WHERE id = ?`), id))
	if err != nil {
		return Run{}, fmt.Errorf("run %s: %w", id, err)
	}
	return r, nil
}

// RunByDedup returns the run of playbook for the alert with dedupKey.
func (s *Store) RunByDedup(ctx context.Context, dedupKey, playbook string) (Run, error) {
	r, err := scanRun(s.db.SQL.QueryRowContext(ctx, s.db.rebind(`SELECT `+runColumns+` FROM stanch_runs WHERE dedup_key = ? AND playbook = ?`), dedupKey, playbook))
	if err != nil {
		return Run{}, fmt.Errorf("run of %s for alert %s: %w", playbook, dedupKey, err)
	}
	return r, nil
}

// ListFilter narrows ListRuns.
type ListFilter struct {
	Status RunStatus
	Limit  int
	// Playbook keeps the runs of this playbook; Since and Until (when set)
	// the runs created at or after Since and before Until.
	Playbook     string
	Since, Until time.Time
	// Oldest lists oldest first instead of newest first.
	Oldest bool
	// After, when set, keeps the runs that come after this one in the
	// listing's order (created_at, then id): the next page of a listing
	// that ended with it.
	After *RunKey
}

// RunKey is a run's place in a listing: a page of ListRuns starts after it.
type RunKey struct {
	CreatedAt time.Time
	ID        string
}

// ListRuns returns runs, newest first (or oldest first, see ListFilter).
func (s *Store) ListRuns(ctx context.Context, f ListFilter) ([]Run, error) {
	q := `SELECT ` + runColumns + ` FROM stanch_runs WHERE 1 = 1`
	var args []any
	if f.Status != "" {
		q += ` AND status = ?`
		args = append(args, f.Status)
	}
	if f.Playbook != "" {
		q += ` AND playbook = ?`
		args = append(args, f.Playbook)
	}
	if !f.Since.IsZero() {
		q += ` AND created_at >= ?`
		args = append(args, micros(f.Since))
	}
	if !f.Until.IsZero() {
		q += ` AND created_at < ?`
		args = append(args, micros(f.Until))
	}
	order, cmp := ` ORDER BY created_at DESC, id DESC`, `<`
	if f.Oldest {
		order, cmp = ` ORDER BY created_at, id`, `>`
	}
	if f.After != nil {
		at := micros(f.After.CreatedAt)
		q += ` AND (created_at ` + cmp + ` ? OR (created_at = ? AND id ` + cmp + ` ?))`
		args = append(args, at, at, f.After.ID)
	}
	q += order
	if f.Limit > 0 {
		q += fmt.Sprintf(` LIMIT %d`, f.Limit)
	}
	return s.queryRuns(ctx, q, args...)
}

// UnfinishedRuns returns every run that is not terminal, oldest first.
func (s *Store) UnfinishedRuns(ctx context.Context) ([]Run, error) {
	return s.queryRuns(ctx, `SELECT `+runColumns+` FROM stanch_runs WHERE status NOT IN (?, ?, ?) ORDER BY created_at, id`, RunSucceeded, RunFailed, RunCancelled)
}

func (s *Store) queryRuns(ctx context.Context, q string, args ...any) ([]Run, error) {
	rows, err := s.db.SQL.QueryContext(ctx, s.db.rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	defer rows.Close()
	var out []Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, fmt.Errorf("list runs: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// SetJob records the River job that executes the run.
func (s *Store) SetJob(ctx context.Context, runID string, jobID int64) error {
	const q = `UPDATE stanch_runs SET job_id = ? WHERE id = ?`
	if s.db.Dialect == SQLite {
		// One process, no fence: one statement, the shortest hold of
		// SQLite's write lock on the path every alert takes.
		if _, err := s.db.SQL.ExecContext(ctx, q, jobID, runID); err != nil {
			return fmt.Errorf("record job of run %s: %w", runID, err)
		}
		return nil
	}
	// The first write of a pass: fenced, so a replica without a live
	// lease begins nothing.
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := s.exec(ctx, tx, q, jobID, runID); err != nil {
			return fmt.Errorf("record job of run %s: %w", runID, err)
		}
		return nil
	})
}

// RunUpdate changes a run's status and journals why.
type RunUpdate struct {
	Status      RunStatus
	WaitingStep string
	FailedStep  string
	Error       string
	// Handoff marks a run handed on to the next worker on purpose; any
	// other update clears it.
	Handoff string
	Event   string
	Detail  string
}

// ErrRunEnded is returned when a run to be changed has already ended
// (someone cancelled it meanwhile, say): the worker leaves it alone.
var ErrRunEnded = errors.New("the run has ended")

// UpdateRun sets a run's status (and the fields that go with it) and appends
// the event to its journal in the same transaction. A run that has ended is
// not changed: the error is ErrRunEnded.
func (s *Store) UpdateRun(ctx context.Context, runID string, u RunUpdate) error {
	now := s.now()
	finished := int64(0)
	if Terminal(u.Status) {
		finished = micros(now)
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := s.exec(ctx, tx, `UPDATE stanch_runs SET status = ?, waiting_step = ?, failed_step = ?, error = ?, handoff = ?, updated_at = ?, finished_at = ? WHERE id = ? AND status NOT IN (?, ?, ?)`,
			u.Status, u.WaitingStep, u.FailedStep, alert.RedactText(u.Error), u.Handoff, micros(now), finished, runID, RunSucceeded, RunFailed, RunCancelled)
		if err != nil {
			return fmt.Errorf("update run %s: %w", runID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("update run %s: %w", runID, ErrRunEnded)
		}
		if u.Event == "" {
			return nil
		}
		return s.appendJournal(ctx, tx, runID, u.WaitingStep+u.FailedStep, 0, u.Event, u.Detail)
	})
}
