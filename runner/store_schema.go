package runner

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

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
	// runs list and runs export page through runs by creation (keyset).
	`CREATE INDEX IF NOT EXISTS stanch_runs_created ON stanch_runs (created_at, id)`,
	// One open run per playbook and credential: an alert about a credential
	// that is already being handled joins that run (correlation).
	`CREATE UNIQUE INDEX IF NOT EXISTS stanch_runs_open_credential ON stanch_runs (playbook, credential)
		WHERE credential <> '' AND status NOT IN (` + sqlList(RunSucceeded, RunFailed, RunCancelled) + `)`,
	// not_before is when a step may start: the end of its delay before its
	// first attempt, the due time of its next attempt after one failed.
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
	// Every API call a step's actions made to a provider (store_calls.go):
	// n numbers an attempt's calls in the order they ended.
	`CREATE TABLE IF NOT EXISTS stanch_calls (
		run_id TEXT NOT NULL,
		step_id TEXT NOT NULL,
		attempt INTEGER NOT NULL,
		n INTEGER NOT NULL,
		service TEXT NOT NULL,
		operation TEXT NOT NULL,
		account TEXT NOT NULL,
		region TEXT NOT NULL,
		request_id TEXT NOT NULL,
		outcome TEXT NOT NULL,
		error TEXT NOT NULL,
		at BIGINT NOT NULL,
		duration BIGINT NOT NULL,
		PRIMARY KEY (run_id, step_id, attempt, n)
	)`,
	// The alerts that joined a run after the one that started it
	// (correlation), by their key in stanch_alerts.
	`CREATE TABLE IF NOT EXISTS stanch_run_alerts (
		run_id TEXT NOT NULL,
		dedup_key TEXT NOT NULL,
		joined_at BIGINT NOT NULL,
		PRIMARY KEY (run_id, dedup_key)
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
	// Counts the times a replica took the run over from one that stopped
	// renewing its lease: the fencing token of the run's writes (lease.go).
	`ALTER TABLE stanch_runs ADD COLUMN takeover INTEGER NOT NULL DEFAULT 0`,
	// How far a long step got (the action's own JSON, never a secret), so
	// that a resumed attempt goes on from there (actions.Env.Checkpoint).
	`ALTER TABLE stanch_steps ADD COLUMN checkpoint TEXT NOT NULL DEFAULT ''`,
	// Each journal entry carries the hash of the one before it (per run),
	// so that an edited, deleted, reordered or inserted entry shows
	// (store_journal_chain.go). Entries written before are chained once,
	// right after these, and marked.
	`ALTER TABLE stanch_journal ADD COLUMN prev_hash TEXT NOT NULL DEFAULT ''`,
	`ALTER TABLE stanch_journal ADD COLUMN hash TEXT NOT NULL DEFAULT ''`,
	`ALTER TABLE stanch_journal ADD COLUMN chained_at_migration INTEGER NOT NULL DEFAULT 0`,
	// The approver's display name (Slack's users.info), beside their id.
	`ALTER TABLE stanch_approvals ADD COLUMN decided_by_name TEXT NOT NULL DEFAULT ''`,
}

// chainedFrom is the number of migrations after which the journal is
// chained: a store migrated from before it has its entries chained then.
const chainedFrom = 19

// replicasTable holds the lease of each replica working a PostgreSQL store
// (lease.go), in PostgreSQL's time.
const replicasTable = `CREATE TABLE IF NOT EXISTS stanch_replicas (
	id TEXT PRIMARY KEY,
	term BIGINT NOT NULL,
	host TEXT NOT NULL,
	pid INTEGER NOT NULL,
	started_at TIMESTAMPTZ NOT NULL,
	renewed_at TIMESTAMPTZ NOT NULL,
	expires_at TIMESTAMPTZ NOT NULL
)`

// Migrate creates stanch's tables if they are missing and brings older
// ones up to date.
func (s *Store) Migrate(ctx context.Context) error {
	tables := schema
	if s.db.Dialect == Postgres {
		tables = append(tables[:len(tables):len(tables)], replicasTable)
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if s.db.Dialect == Postgres {
			// Replicas starting together migrate one at a time: two
			// concurrent CREATE TABLE IF NOT EXISTS can both try to create.
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7361626368)`); err != nil {
				return fmt.Errorf("migrate store: %w", err)
			}
		}
		for _, q := range tables {
			if _, err := tx.ExecContext(ctx, q); err != nil {
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
		if done < chainedFrom && len(migrations) >= chainedFrom {
			if err := chainJournals(ctx, tx, s.db.rebind); err != nil {
				return err
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
