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

// Run statuses. A run moves pending → running → (waiting_approval ↔
// running)* → succeeded | failed | cancelled.
const (
	RunPending         = "pending"
	RunRunning         = "running"
	RunWaitingApproval = "waiting_approval"
	RunSucceeded       = "succeeded"
	RunFailed          = "failed"
	RunCancelled       = "cancelled"
)

// Step statuses.
const (
	StepRunning         = "running"
	StepSucceeded       = "succeeded"
	StepFailed          = "failed"
	StepSkipped         = "skipped"
	StepWaitingApproval = "waiting_approval"
	StepDenied          = "denied"
	StepDelayed         = "delayed"
)

// RunStatuses are every status a run can have, in the order of its life.
var RunStatuses = []string{RunPending, RunRunning, RunWaitingApproval, RunSucceeded, RunFailed, RunCancelled}

// Terminal reports whether a run status is final.
func Terminal(status string) bool {
	return status == RunSucceeded || status == RunFailed || status == RunCancelled
}

// stepFinished reports whether a step needs no more work on resume.
func stepFinished(status string) bool {
	return status == StepSucceeded || status == StepSkipped || status == StepFailed || status == StepDenied
}

// ErrNotFound is returned when a run or approval does not exist.
var ErrNotFound = errors.New("not found")

// Run is one execution of one playbook for one alert.
type Run struct {
	ID             string
	DedupKey       string
	Playbook       string
	PlaybookFile   string
	PlaybookSource []byte
	Alert          alert.Alert
	Status         string
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
	// Handoff is set while the run is handed from one worker to the next
	// on purpose: "moved" (to the investigation queue) or "delayed".
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

// StepRecord is the journal's current view of one step of a run.
type StepRecord struct {
	RunID     string
	StepID    string
	Seq       int
	Action    string
	Status    string
	Outcome   string
	Message   string
	Attempts  int
	Outputs   map[string]any
	Error     string
	StartedAt time.Time
	EndedAt   time.Time
}

// Entry is one line of a run's append-only journal.
type Entry struct {
	Seq     int
	At      time.Time
	StepID  string
	Attempt int
	Event   string
	Detail  string
}

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
	DecidedAt   time.Time
	Via         string // "cli", "slack", "timeout"
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

// Store keeps alerts, runs, steps, the journal and approvals in the same
// database as River's jobs.
type Store struct {
	db  *Database
	now func() time.Time
}

// NewStore returns a store on db. now defaults to time.Now.
func NewStore(db *Database, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{db: db, now: now}
}

var schema = []string{
	`CREATE TABLE IF NOT EXISTS stanch_alerts (
		dedup_key TEXT PRIMARY KEY,
		source TEXT NOT NULL,
		alert TEXT NOT NULL,
		received_at BIGINT NOT NULL
	)`,
	`CREATE TABLE IF NOT EXISTS stanch_runs (
		id TEXT PRIMARY KEY,
		dedup_key TEXT NOT NULL,
		playbook TEXT NOT NULL,
		playbook_file TEXT NOT NULL,
		playbook_source TEXT NOT NULL,
		alert TEXT NOT NULL,
		credential TEXT NOT NULL DEFAULT '',
		status TEXT NOT NULL,
		waiting_step TEXT NOT NULL DEFAULT '',
		failed_step TEXT NOT NULL DEFAULT '',
		error TEXT NOT NULL DEFAULT '',
		job_id BIGINT NOT NULL DEFAULT 0,
		created_at BIGINT NOT NULL,
		updated_at BIGINT NOT NULL,
		finished_at BIGINT NOT NULL DEFAULT 0,
		UNIQUE (dedup_key, playbook)
	)`,
	`CREATE INDEX IF NOT EXISTS stanch_runs_status ON stanch_runs (status)`,
	// One open run per playbook and credential: an alert about a credential
	// that is already being handled joins that run (correlation).
	`CREATE UNIQUE INDEX IF NOT EXISTS stanch_runs_open_credential ON stanch_runs (playbook, credential)
		WHERE credential <> '' AND status NOT IN ('succeeded', 'failed', 'cancelled')`,
	`CREATE TABLE IF NOT EXISTS stanch_steps (
		run_id TEXT NOT NULL,
		step_id TEXT NOT NULL,
		seq INTEGER NOT NULL,
		action TEXT NOT NULL,
		status TEXT NOT NULL,
		outcome TEXT NOT NULL DEFAULT '',
		message TEXT NOT NULL DEFAULT '',
		attempts INTEGER NOT NULL DEFAULT 0,
		outputs TEXT NOT NULL DEFAULT '{}',
		error TEXT NOT NULL DEFAULT '',
		started_at BIGINT NOT NULL DEFAULT 0,
		ended_at BIGINT NOT NULL DEFAULT 0,
		not_before BIGINT NOT NULL DEFAULT 0,
		PRIMARY KEY (run_id, step_id)
	)`,
	`CREATE TABLE IF NOT EXISTS stanch_journal (
		run_id TEXT NOT NULL,
		seq INTEGER NOT NULL,
		at BIGINT NOT NULL,
		step_id TEXT NOT NULL DEFAULT '',
		attempt INTEGER NOT NULL DEFAULT 0,
		event TEXT NOT NULL,
		detail TEXT NOT NULL DEFAULT '',
		PRIMARY KEY (run_id, seq)
	)`,
	`CREATE TABLE IF NOT EXISTS stanch_approvals (
		run_id TEXT NOT NULL,
		step_id TEXT NOT NULL,
		approvers TEXT NOT NULL DEFAULT '',
		message TEXT NOT NULL DEFAULT '',
		requested_at BIGINT NOT NULL,
		deadline BIGINT NOT NULL,
		decision TEXT NOT NULL DEFAULT '',
		decided_by TEXT NOT NULL DEFAULT '',
		decided_at BIGINT NOT NULL DEFAULT 0,
		via TEXT NOT NULL DEFAULT '',
		PRIMARY KEY (run_id, step_id)
	)`,
	// Messages stanch posted about a run (Slack incident and approval
	// messages), by a key such as "notify/<step>" or "approval/<step>/0",
	// so that each is posted once and then only updated.
	`CREATE TABLE IF NOT EXISTS stanch_messages (
		run_id TEXT NOT NULL,
		key TEXT NOT NULL,
		channel TEXT NOT NULL,
		ts TEXT NOT NULL,
		digest TEXT NOT NULL DEFAULT '',
		posted_at BIGINT NOT NULL,
		PRIMARY KEY (run_id, key)
	)`,
	// Alerts that arrived but started no run, and why (see unacted.go).
	`CREATE TABLE IF NOT EXISTS stanch_unacted (
		dedup_key TEXT PRIMARY KEY,
		source TEXT NOT NULL,
		reference TEXT NOT NULL DEFAULT '',
		reason TEXT NOT NULL,
		first_at BIGINT NOT NULL,
		last_at BIGINT NOT NULL,
		occurrences INTEGER NOT NULL DEFAULT 1,
		notice_channel TEXT NOT NULL DEFAULT '',
		notice_ts TEXT NOT NULL DEFAULT '',
		notice_at BIGINT NOT NULL DEFAULT 0
	)`,
	`CREATE TABLE IF NOT EXISTS stanch_schema (
		version INTEGER NOT NULL
	)`,
	// Digests of requests already handled (Slack clicks), each until its
	// signature could no longer verify (see seen.go).
	`CREATE TABLE IF NOT EXISTS stanch_seen_requests (
		digest TEXT PRIMARY KEY,
		expires BIGINT NOT NULL
	)`,
}

// migrations change tables that existing databases already have; each runs
// once, in order, and stanch_schema remembers how many have.
var migrations = []string{
	`ALTER TABLE stanch_approvals ADD COLUMN channel TEXT NOT NULL DEFAULT ''`,
	`ALTER TABLE stanch_approvals ADD COLUMN escalate_channel TEXT NOT NULL DEFAULT ''`,
	`ALTER TABLE stanch_approvals ADD COLUMN escalate_approvers TEXT NOT NULL DEFAULT ''`,
	`ALTER TABLE stanch_approvals ADD COLUMN escalate_timeout BIGINT NOT NULL DEFAULT 0`,
	`ALTER TABLE stanch_approvals ADD COLUMN escalated_at BIGINT NOT NULL DEFAULT 0`,
	// Who owns the run's credential, once a step identified it (JSON of
	// actions.Owner): every later step acts on it.
	`ALTER TABLE stanch_runs ADD COLUMN owner TEXT NOT NULL DEFAULT ''`,
	// Runs retried by people start a new generation; jobs of an older one
	// leave the run alone.
	`ALTER TABLE stanch_runs ADD COLUMN generation INTEGER NOT NULL DEFAULT 0`,
	// Set when a worker hands the run on deliberately (to another queue,
	// or to sleep until a delayed step is due), so the next worker does
	// not take the run for one whose process died.
	`ALTER TABLE stanch_runs ADD COLUMN handoff TEXT NOT NULL DEFAULT ''`,
	`ALTER TABLE stanch_runs ADD COLUMN closed_at BIGINT NOT NULL DEFAULT 0`,
	`ALTER TABLE stanch_runs ADD COLUMN closed_by TEXT NOT NULL DEFAULT ''`,
	`ALTER TABLE stanch_runs ADD COLUMN close_note TEXT NOT NULL DEFAULT ''`,
	// What the step would change, from its plan when the approval was
	// asked (JSON of []actions.Effect), and the plan's summary or error.
	`ALTER TABLE stanch_approvals ADD COLUMN effects TEXT NOT NULL DEFAULT ''`,
	`ALTER TABLE stanch_approvals ADD COLUMN plan TEXT NOT NULL DEFAULT ''`,
	// The run's generation when the approval was asked: asked again after
	// a retry, it is a new request with messages of its own.
	`ALTER TABLE stanch_approvals ADD COLUMN generation INTEGER NOT NULL DEFAULT 0`,
}

// Migrate creates stanch's tables if they are missing and brings older
// ones up to date.
func (s *Store) Migrate(ctx context.Context) error {
	for _, q := range schema {
		if _, err := s.db.SQL.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("migrate store: %w", err)
		}
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if s.db.Dialect == Postgres {
			// Replicas starting together migrate one at a time.
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7361626368)`); err != nil {
				return fmt.Errorf("migrate store: %w", err)
			}
		}
		var done int
		err := tx.QueryRowContext(ctx, `SELECT version FROM stanch_schema`).Scan(&done)
		if errors.Is(err, sql.ErrNoRows) {
			if _, err := tx.ExecContext(ctx, `INSERT INTO stanch_schema (version) VALUES (0)`); err != nil {
				return fmt.Errorf("migrate store: %w", err)
			}
		} else if err != nil {
			return fmt.Errorf("migrate store: %w", err)
		}
		for i := done; i < len(migrations); i++ {
			if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
				return fmt.Errorf("migrate store (step %d): %w", i+1, err)
			}
		}
		if done < len(migrations) {
			if _, err := tx.ExecContext(ctx, s.db.rebind(`UPDATE stanch_schema SET version = ?`), len(migrations)); err != nil {
				return fmt.Errorf("migrate store: %w", err)
			}
		}
		return nil
	})
}

func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

func (s *Store) exec(ctx context.Context, tx *sql.Tx, q string, args ...any) (sql.Result, error) {
	return tx.ExecContext(ctx, s.db.rebind(q), args...)
}

// inTx runs fn in a transaction and commits it.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return inTx(ctx, s.db.SQL.BeginTx, fn)
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
		if err := tx.QueryRowContext(ctx, s.db.rebind(`SELECT id FROM stanch_runs WHERE playbook = ? AND credential = ? AND status NOT IN (?, ?, ?)`),
			r.Playbook, cred, RunSucceeded, RunFailed, RunCancelled).Scan(&open); err != nil {
			return got, fmt.Errorf("find the open run of credential %s: %w", cred, err)
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

const runColumns = `id, dedup_key, playbook, playbook_file, playbook_source, alert, status, waiting_step, failed_step, error, job_id, created_at, updated_at, finished_at, owner, generation, handoff, closed_at, closed_by, close_note`

func scanRun(row interface{ Scan(...any) error }) (Run, error) {
	var r Run
	var src, alertJSON, owner string
	var created, updated, finished, closed int64
	if err := row.Scan(&r.ID, &r.DedupKey, &r.Playbook, &r.PlaybookFile, &src, &alertJSON, &r.Status, &r.WaitingStep, &r.FailedStep, &r.Error, &r.JobID, &created, &updated, &finished,
		&owner, &r.Generation, &r.Handoff, &closed, &r.ClosedBy, &r.CloseNote); err != nil {
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
	Status string
	Limit  int
}

// ListRuns returns runs, newest first.
func (s *Store) ListRuns(ctx context.Context, f ListFilter) ([]Run, error) {
	q := `SELECT ` + runColumns + ` FROM stanch_runs`
	var args []any
	if f.Status != "" {
		q += ` WHERE status = ?`
		args = append(args, f.Status)
	}
	q += ` ORDER BY created_at DESC, id DESC`
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
	_, err := s.db.SQL.ExecContext(ctx, s.db.rebind(`UPDATE stanch_runs SET job_id = ? WHERE id = ?`), jobID, runID)
	if err != nil {
		return fmt.Errorf("record job of run %s: %w", runID, err)
	}
	return nil
}

// RunUpdate changes a run's status and journals why.
type RunUpdate struct {
	Status      string
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

func (s *Store) appendJournal(ctx context.Context, tx *sql.Tx, runID, stepID string, attempt int, event, detail string) error {
	var next int
	if err := tx.QueryRowContext(ctx, s.db.rebind(`SELECT COALESCE(MAX(seq), 0) + 1 FROM stanch_journal WHERE run_id = ?`), runID).Scan(&next); err != nil {
		return fmt.Errorf("journal run %s: %w", runID, err)
	}
	if _, err := s.exec(ctx, tx, `INSERT INTO stanch_journal (run_id, seq, at, step_id, attempt, event, detail) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		runID, next, micros(s.now()), stepID, attempt, event, alert.RedactText(detail)); err != nil {
		return fmt.Errorf("journal run %s: %w", runID, err)
	}
	return nil
}

// Journal returns a run's journal in order.
func (s *Store) Journal(ctx context.Context, runID string) ([]Entry, error) {
	rows, err := s.db.SQL.QueryContext(ctx, s.db.rebind(`SELECT seq, at, step_id, attempt, event, detail FROM stanch_journal WHERE run_id = ? ORDER BY seq`), runID)
	if err != nil {
		return nil, fmt.Errorf("journal of run %s: %w", runID, err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		var e Entry
		var at int64
		if err := rows.Scan(&e.Seq, &at, &e.StepID, &e.Attempt, &e.Event, &e.Detail); err != nil {
			return nil, fmt.Errorf("journal of run %s: %w", runID, err)
		}
		e.At = fromMicros(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

// Steps returns a run's step records keyed by step id.
func (s *Store) Steps(ctx context.Context, runID string) (map[string]StepRecord, error) {
	rows, err := s.db.SQL.QueryContext(ctx, s.db.rebind(`SELECT step_id, seq, action, status, outcome, message, attempts, outputs, error, started_at, ended_at FROM stanch_steps WHERE run_id = ?`), runID)
	if err != nil {
		return nil, fmt.Errorf("steps of run %s: %w", runID, err)
	}
	defer rows.Close()
	out := map[string]StepRecord{}
	for rows.Next() {
		r := StepRecord{RunID: runID}
		var outputs string
		var started, ended int64
		if err := rows.Scan(&r.StepID, &r.Seq, &r.Action, &r.Status, &r.Outcome, &r.Message, &r.Attempts, &outputs, &r.Error, &started, &ended); err != nil {
			return nil, fmt.Errorf("steps of run %s: %w", runID, err)
		}
		if err := json.Unmarshal([]byte(outputs), &r.Outputs); err != nil {
			return nil, fmt.Errorf("outputs of step %s of run %s: %w", r.StepID, runID, err)
		}
		r.StartedAt, r.EndedAt = fromMicros(started), fromMicros(ended)
		out[r.StepID] = r
	}
	return out, rows.Err()
}

// BeginAttempt journals the start of the next attempt of a step and returns
// its number. Attempts count across crashes, so a step that keeps killing
// its process still runs out of attempts.
func (s *Store) BeginAttempt(ctx context.Context, runID, stepID string, seq int, action string) (attempt int, stepStarted time.Time, err error) {
	now := micros(s.now())
	var started int64
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := s.exec(ctx, tx, `INSERT INTO stanch_steps (run_id, step_id, seq, action, status, started_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, step_id) DO NOTHING`,
			runID, stepID, seq, action, StepRunning, now); err != nil {
			return fmt.Errorf("begin step %s: %w", stepID, err)
		}
		// A delayed step's row exists without a start time until now.
		if _, err := s.exec(ctx, tx, `UPDATE stanch_steps SET attempts = attempts + 1, status = ?, started_at = CASE WHEN started_at = 0 THEN ? ELSE started_at END WHERE run_id = ? AND step_id = ?`, StepRunning, now, runID, stepID); err != nil {
			return fmt.Errorf("begin step %s: %w", stepID, err)
		}
		if err := tx.QueryRowContext(ctx, s.db.rebind(`SELECT attempts, started_at FROM stanch_steps WHERE run_id = ? AND step_id = ?`), runID, stepID).Scan(&attempt, &started); err != nil {
			return fmt.Errorf("begin step %s: %w", stepID, err)
		}
		return s.appendJournal(ctx, tx, runID, stepID, attempt, "attempt_started", action)
	})
	return attempt, fromMicros(started), err
}

// AttemptFailed journals a failed attempt that will be retried.
func (s *Store) AttemptFailed(ctx context.Context, runID, stepID string, attempt int, cause error, retryIn time.Duration) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		return s.appendJournal(ctx, tx, runID, stepID, attempt, "attempt_failed", fmt.Sprintf("%v (retrying in %s)", cause, retryIn.Round(time.Millisecond)))
	})
}

// StepEnd is the outcome of a step to record.
type StepEnd struct {
	Seq     int
	Action  string
	Attempt int
	Status  string
	Outcome string
	Message string
	Outputs map[string]any // never secrets: the runner strips them
	Error   string
	// Owner, when set, is who the step found owns the run's credential:
	// recorded on the run in the same transaction.
	Owner *actions.Owner
}

// FinishStep records a step's final state and journals it, atomically: once
// this commits, a resumed run skips the step.
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
		if _, err := s.exec(ctx, tx, `UPDATE stanch_steps SET status = ?, outcome = ?, message = ?, outputs = ?, error = ?, ended_at = ? WHERE run_id = ? AND step_id = ?`,
			e.Status, e.Outcome, alert.RedactText(e.Message), string(data), errText, now, runID, stepID); err != nil {
			return fmt.Errorf("finish step %s: %w", stepID, err)
		}
		detail := e.Message
		if errText != "" {
			detail = errText
		}
		if err := s.appendJournal(ctx, tx, runID, stepID, e.Attempt, "step_"+e.Status, detail); err != nil {
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

const approvalColumns = `run_id, step_id, approvers, message, requested_at, deadline, decision, decided_by, decided_at, via, channel, escalate_channel, escalate_approvers, escalate_timeout, escalated_at, effects, plan, generation`

func scanApproval(row interface{ Scan(...any) error }) (Approval, error) {
	var a Approval
	var approvers, escChannel, escApprovers, effects string
	var requested, deadline, decided, escTimeout, escalated int64
	if err := row.Scan(&a.RunID, &a.StepID, &approvers, &a.Message, &requested, &deadline, &a.Decision, &a.DecidedBy, &decided, &a.Via,
		&a.Channel, &escChannel, &escApprovers, &escTimeout, &escalated, &effects, &a.Plan, &a.Generation); err != nil {
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

func redactEffects(in []actions.Effect) []actions.Effect {
	out := make([]actions.Effect, len(in))
	for i, e := range in {
		out[i] = actions.Effect{Description: alert.RedactText(e.Description), Irreversible: e.Irreversible}
	}
	return out
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
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

// prefixed qualifies each column of a comma-separated list.
func prefixed(p, columns string) string {
	parts := strings.Split(columns, ", ")
	for i, c := range parts {
		parts[i] = p + c
	}
	return strings.Join(parts, ", ")
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

// Decide records a decision on a requested approval. The first decision
// wins: later ones change nothing, and first is false.
func (s *Store) Decide(ctx context.Context, runID, stepID, decision, by, via string) (a Approval, first bool, err error) {
	if decision != Approved && decision != Denied {
		return Approval{}, false, fmt.Errorf("decision %q: want %s or %s", decision, Approved, Denied)
	}
	err = s.db.durableTx(ctx, func(tx *sql.Tx) error {
		res, err := s.exec(ctx, tx, `UPDATE stanch_approvals SET decision = ?, decided_by = ?, decided_at = ?, via = ? WHERE run_id = ? AND step_id = ? AND decision = ''`,
			decision, by, micros(s.now()), via, runID, stepID)
		if err != nil {
			return fmt.Errorf("decide approval of %s: %w", stepID, err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			first = true
			return s.appendJournal(ctx, tx, runID, stepID, 0, "approval_"+decision, "by "+by+" via "+via)
		}
		return nil
	})
	if err != nil {
		return Approval{}, false, err
	}
	a, err = s.Approval(ctx, runID, stepID)
	return a, first, err
}

// Message is a message stanch posts about a run. A message with an empty
// TS is one stanch was about to post when it last looked: it may or may not
// have reached the channel.
type Message struct {
	Key     string
	Channel string
	TS      string
	// Digest identifies the content last sent, so unchanged messages are
	// not updated again.
	Digest   string
	PostedAt time.Time
}

// Message returns the message recorded under key, or ErrNotFound.
func (s *Store) Message(ctx context.Context, runID, key string) (Message, error) {
	m := Message{Key: key}
	var posted int64
	err := s.db.SQL.QueryRowContext(ctx, s.db.rebind(`SELECT channel, ts, digest, posted_at FROM stanch_messages WHERE run_id = ? AND key = ?`), runID, key).Scan(&m.Channel, &m.TS, &m.Digest, &posted)
	if errors.Is(err, sql.ErrNoRows) {
		return Message{}, fmt.Errorf("message %s of run %s: %w", key, runID, ErrNotFound)
	}
	if err != nil {
		return Message{}, fmt.Errorf("message %s of run %s: %w", key, runID, err)
	}
	m.PostedAt = fromMicros(posted)
	return m, nil
}

// SaveMessage records a message (or the intent to post it, with an empty
// TS), replacing what was recorded under its key.
func (s *Store) SaveMessage(ctx context.Context, runID string, m Message) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := s.exec(ctx, tx, `INSERT INTO stanch_messages (run_id, key, channel, ts, digest, posted_at) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (run_id, key) DO UPDATE SET channel = excluded.channel, ts = excluded.ts, digest = excluded.digest`,
			runID, m.Key, m.Channel, m.TS, m.Digest, micros(s.now()))
		if err != nil {
			return fmt.Errorf("record message %s of run %s: %w", m.Key, runID, err)
		}
		return nil
	})
}

// Refuse journals a decision attempt by someone who is not an approver.
func (s *Store) Refuse(ctx context.Context, runID, stepID, by, via string) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		return s.appendJournal(ctx, tx, runID, stepID, 0, "approval_refused", by+" is not an approver (via "+via+")")
	})
}
