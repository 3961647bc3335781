package runner

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Stats is the store's state at one moment, for gauges (stanch serve's
// metrics): what is open and waiting, not what happened.
type Stats struct {
	// Runs counts the runs not yet finished, by status (pending, running,
	// waiting_approval; each present, 0 when none).
	Runs map[RunStatus]int
	// ApprovalsWaiting counts the approvals runs wait on, undecided;
	// OldestApproval is when the oldest of them was asked (zero when none).
	ApprovalsWaiting int
	OldestApproval   time.Time
	// Jobs counts River's jobs not yet finished, by queue and state
	// (available, scheduled, running, retryable): every queue of the
	// runner and every state is present, 0 when none.
	Jobs map[string]map[string]int
	// Unacted counts the alerts kept because they could not be acted on
	// ('stanch alerts list').
	Unacted int
}

// statsJobStates are the states of River jobs that Stats counts: those of
// jobs that are not finished. A run waiting for approval sleeps as a
// scheduled job; a job waiting to be retried is retryable.
var statsJobStates = []string{"available", "scheduled", "running", "retryable"}

// statsQueues are the runner's River queues, each in Stats.Jobs.
var statsQueues = []string{QueueContainment, QueueInvestigation, QueueNotify}

// Stats reads the store's gauges: a handful of counts over indexed
// columns (unfinished runs, undecided approvals, unfinished jobs), cheap
// enough for every scrape; no transaction, so it never takes a lock that a
// writer waits on. The caller bounds it with ctx.
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	st := Stats{Runs: map[RunStatus]int{RunPending: 0, RunRunning: 0, RunWaitingApproval: 0}, Jobs: map[string]map[string]int{}}
	for _, q := range statsQueues {
		st.Jobs[q] = map[string]int{}
		for _, state := range statsJobStates {
			st.Jobs[q][state] = 0
		}
	}
	db := s.db.SQL
	err := eachCount(ctx, db, s.db.rebind(`SELECT status, '', COUNT(*) FROM stanch_runs WHERE status IN (?, ?, ?) GROUP BY status`),
		func(status, _ string, n int) { st.Runs[RunStatus(status)] = n }, RunPending, RunRunning, RunWaitingApproval)
	if err != nil {
		return st, fmt.Errorf("count open runs: %w", err)
	}
	var oldest sql.NullInt64
	if err := db.QueryRowContext(ctx, s.db.rebind(`SELECT COUNT(*), MIN(a.requested_at) FROM stanch_runs r JOIN stanch_approvals a ON a.run_id = r.id AND a.step_id = r.waiting_step
		WHERE r.status = ? AND a.decision = ''`), RunWaitingApproval).Scan(&st.ApprovalsWaiting, &oldest); err != nil {
		return st, fmt.Errorf("count waiting approvals: %w", err)
	}
	if oldest.Valid {
		st.OldestApproval = fromMicros(oldest.Int64)
	}
	// River's own table, as its drivers write it on both stores; its index
	// on (state, queue, …) answers this.
	err = eachCount(ctx, db, `SELECT queue, CAST(state AS TEXT), COUNT(*) FROM river_job
		WHERE state IN ('available', 'scheduled', 'running', 'retryable') GROUP BY queue, state`,
		func(queue, state string, n int) {
			if st.Jobs[queue] == nil {
				st.Jobs[queue] = map[string]int{}
			}
			st.Jobs[queue][state] = n
		})
	if err != nil {
		return st, fmt.Errorf("count jobs: %w", err)
	}
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM stanch_unacted`).Scan(&st.Unacted); err != nil {
		return st, fmt.Errorf("count unacted alerts: %w", err)
	}
	return st, nil
}

// eachCount runs a query of rows (key, key, count).
func eachCount(ctx context.Context, db *sql.DB, q string, add func(a, b string, n int), args ...any) error {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var a, b string
		var n int
		if err := rows.Scan(&a, &b, &n); err != nil {
			return err
		}
		add(a, b, n)
	}
	return rows.Err()
}
