package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
)

// When a replica's lease expires, the first replica to notice takes over
// the jobs River shows it was running (lease.go). A run's job is not handed
// on as it is: its run's takeover count goes up, which fences every write
// the old replica may still attempt (fence.go), the old job is cancelled
// (so the old replica's River cannot complete or reschedule it), and a new
// job for the same run starts at once, wherever a worker is free. The new
// job's pass sees the steps already recorded and resumes; a long step
// resumes from its last checkpoint. Other jobs (Slack messages, deferred
// alerts, pollers) are idempotent and are simply made available again.

// reapEvery is how often each replica looks for expired leases. Every
// replica looks, so that the loss of any one, leader included, is noticed
// within a second of its lease expiring.
const reapEvery = time.Second

func (r *Runner) reapLoop(ctx context.Context) {
	t := time.NewTicker(reapEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := r.reap(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("could not look for replicas whose lease expired", "error", err)
		}
	}
}

// reap takes over the running jobs of every replica without a live lease:
// one whose lease expired (its row is deleted here) or whose row is gone
// already (it was reaped while it still fetched a job, then died).
func (r *Runner) reap(ctx context.Context) error {
	tx, err := r.cfg.DB.Pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `DELETE FROM stanch_replicas WHERE expires_at < now()`); err != nil {
		return err
	}
	// Locked, and skipped when locked: of two replicas reaping at once,
	// the second leaves the jobs the first is taking.
	rows, err := tx.Query(ctx, `SELECT DISTINCT j.attempted_by[array_length(j.attempted_by, 1)] FROM river_job j
		WHERE j.state = 'running' AND NOT EXISTS (SELECT 1 FROM stanch_replicas r
			WHERE r.id = j.attempted_by[array_length(j.attempted_by, 1)] AND r.expires_at > now())`)
	if err != nil {
		return err
	}
	var gone []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		gone = append(gone, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if len(gone) == 0 {
		return tx.Commit(ctx)
	}
	counts := make([]int, len(gone))
	for i, id := range gone {
		if counts[i], err = r.takeOver(ctx, tx, id); err != nil {
			return err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	for i, id := range gone {
		if counts[i] > 0 {
			r.log.Warn("took over the jobs of a replica whose lease expired", "replica", id, "jobs", counts[i])
		}
	}
	return nil
}

// takeOver hands on every job River shows replica running, in tx.
func (r *Runner) takeOver(ctx context.Context, tx pgx.Tx, replica string) (int, error) {
	rows, err := tx.Query(ctx, `SELECT id, kind, args FROM river_job
		WHERE state = 'running' AND attempted_by[array_length(attempted_by, 1)] = $1 FOR UPDATE SKIP LOCKED`, replica)
	if err != nil {
		return 0, fmt.Errorf("jobs of replica %s: %w", replica, err)
	}
	type job struct {
		id   int64
		kind string
		args []byte
	}
	var jobs []job
	for rows.Next() {
		var j job
		if err := rows.Scan(&j.id, &j.kind, &j.args); err != nil {
			rows.Close()
			return 0, err
		}
		jobs = append(jobs, j)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	var fresh []river.InsertManyParams
	for _, j := range jobs {
		if j.kind != (RunArgs{}).Kind() {
			if _, err := tx.Exec(ctx, `UPDATE river_job SET state = 'available', scheduled_at = now() WHERE id = $1`, j.id); err != nil {
				return 0, fmt.Errorf("hand on job %d of replica %s: %w", j.id, replica, err)
			}
			continue
		}
		var args RunArgs
		if err := json.Unmarshal(j.args, &args); err != nil {
			return 0, fmt.Errorf("job %d of replica %s: %w", j.id, replica, err)
		}
		next, err := r.takeRun(ctx, tx, args, replica)
		if err != nil {
			return 0, err
		}
		if _, err := tx.Exec(ctx, `UPDATE river_job SET state = 'cancelled', finalized_at = now() WHERE id = $1`, j.id); err != nil {
			return 0, fmt.Errorf("cancel job %d of replica %s: %w", j.id, replica, err)
		}
		if next != nil {
			fresh = append(fresh, river.InsertManyParams{Args: *next})
		}
	}
	if len(fresh) > 0 {
		if err := r.insertPgTx(ctx, tx, fresh); err != nil {
			return 0, fmt.Errorf("resume runs of replica %s: %w", replica, err)
		}
	}
	return len(jobs), nil
}

// takeRun fences a run away from replica and returns the job that resumes
// it, or nil when the job was stale (the run ended, was retried, or was
// taken over already).
func (r *Runner) takeRun(ctx context.Context, tx pgx.Tx, args RunArgs, replica string) (*RunArgs, error) {
	var takeover int
	err := tx.QueryRow(ctx, `UPDATE stanch_runs SET takeover = takeover + 1, handoff = '', updated_at = $1
		WHERE id = $2 AND takeover = $3 AND generation = $4 AND status NOT IN ($5, $6, $7) RETURNING takeover`,
		micros(r.cfg.Now()), args.RunID, args.Takeover, args.Generation, RunSucceeded, RunFailed, RunCancelled).Scan(&takeover)
	if err == pgx.ErrNoRows {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("take run %s over: %w", args.RunID, err)
	}
	detail := fmt.Sprintf("from replica %s, whose lease expired", replica)
	at := micros(r.cfg.Now())
	err = chainedAppend(
		func() (int, string, error) {
			var seq int
			var prev string
			err := tx.QueryRow(ctx, `SELECT seq, hash FROM stanch_journal WHERE run_id = $1 ORDER BY seq DESC LIMIT 1`, args.RunID).Scan(&seq, &prev)
			if errors.Is(err, pgx.ErrNoRows) {
				return 0, "", nil
			}
			return seq, prev, err
		},
		func(seq int, prev, hash string) (bool, error) {
			tag, err := tx.Exec(ctx, `INSERT INTO stanch_journal (run_id, seq, at, step_id, attempt, event, detail, prev_hash, hash)
				VALUES ($1, $2, $3, '', 0, 'run_taken_over', $4, $5, $6) ON CONFLICT (run_id, seq) DO NOTHING`,
				args.RunID, seq, at, detail, prev, hash)
			return tag.RowsAffected() == 1, err
		},
		func(seq int, prev string) string {
			return entryHash(args.RunID, seq, at, "", 0, "run_taken_over", detail, prev)
		})
	if err != nil {
		return nil, fmt.Errorf("journal the takeover of run %s: %w", args.RunID, err)
	}
	next := args
	next.Takeover = takeover
	return &next, nil
}
