package runner

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/riverqueue/river/rivertype"

	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/playbooks"
)

// People drive a run's lifecycle besides the runner: they retry a run that
// failed or was cancelled, cancel one that runs or waits, and close an
// incident with a note. Each change is one transaction that also journals
// who made it, and each is refused, saying why, where it makes no sense.

// ErrLifecycle is wrapped by every refusal of Retry, Cancel and Close.
var ErrLifecycle = errors.New("not possible for this run")

// Retry starts a failed or cancelled run again, in a new generation: from
// the step named by from, else from the step that failed (or was denied),
// else from where it stopped. The steps from there on are forgotten (their
// journal stays) and run again, with fresh attempts; finished steps before
// it keep their results. by is who asked.
func (r *Runner) Retry(ctx context.Context, runID, from, by string) (Run, error) {
	run, err := r.store.Run(ctx, runID)
	if err != nil {
		return Run{}, err
	}
	switch {
	case !run.ClosedAt.IsZero():
		return run, fmt.Errorf("run %s was closed by %s at %s (%q): a closed incident is not retried; start a new run for the alert if the credential needs more: %w",
			run.ID, run.ClosedBy, run.ClosedAt.Format(time.RFC3339), run.CloseNote, ErrLifecycle)
	case run.Status == RunSucceeded:
		return run, fmt.Errorf("run %s succeeded: there is nothing to retry: %w", run.ID, ErrLifecycle)
	case !Terminal(run.Status):
		return run, fmt.Errorf("run %s is %s: only a failed or cancelled run is retried; cancel it first (stanch runs cancel %s) to start it again: %w", run.ID, describeStatus(run), run.ID, ErrLifecycle)
	}
	if err := r.settledJob(ctx, run); err != nil {
		return run, err
	}
	pb, err := r.playbook(run)
	if err != nil {
		return run, fmt.Errorf("run %s: its playbook %s no longer loads in this build, so it cannot run again: %v: %w", run.ID, run.Playbook, err, ErrLifecycle)
	}
	if from == "" {
		from = run.FailedStep
	}
	seq := -1 // from where it stopped: every finished step stays
	if from != "" {
		seq = slices.IndexFunc(pb.Steps, func(s *playbooks.Step) bool { return s.ID == from })
		if seq < 0 {
			ids := make([]string, len(pb.Steps))
			for i, s := range pb.Steps {
				ids[i] = s.ID
			}
			return run, fmt.Errorf("playbook %s has no step %q; its steps are %s: %w", run.Playbook, from, strings.Join(ids, ", "), ErrLifecycle)
		}
	}
	forgetOwner := false
	if run.Owner.By != "" && seq >= 0 {
		if i := slices.IndexFunc(pb.Steps, func(s *playbooks.Step) bool { return s.ID == run.Owner.By }); i >= seq {
			forgetOwner = true // the step that identified it runs again
		}
	}
	detail := fmt.Sprintf("by %s from step %s (retry %d)", by, from, run.Generation+1)
	if from == "" {
		detail = fmt.Sprintf("by %s from where it stopped (retry %d)", by, run.Generation+1)
	}
	err = r.store.inTx(ctx, func(tx *sql.Tx) error {
		res, err := r.store.exec(ctx, tx, `UPDATE stanch_runs SET status = ?, generation = generation + 1, waiting_step = '', failed_step = '', error = '', handoff = '', finished_at = 0, updated_at = ?
			WHERE id = ? AND status IN (?, ?) AND generation = ? AND closed_at = 0`, RunPending, micros(r.store.now()), run.ID, RunFailed, RunCancelled, run.Generation)
		if err != nil {
			return fmt.Errorf("retry run %s: %w", run.ID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("run %s changed meanwhile; look at it again (stanch runs show %s): %w", run.ID, run.ID, ErrLifecycle)
		}
		// Steps from the retry on run afresh; unfinished ones (interrupted,
		// waiting) get their attempts back.
		if _, err := r.store.exec(ctx, tx, `DELETE FROM stanch_steps WHERE run_id = ? AND (seq >= ? AND ? >= 0 OR status NOT IN (?, ?, ?, ?))`,
			run.ID, seq, seq, StepSucceeded, StepSkipped, StepFailed, StepDenied); err != nil {
			return fmt.Errorf("retry run %s: %w", run.ID, err)
		}
		var later []any
		for _, st := range pb.Steps[max(seq, 0):] {
			later = append(later, st.ID)
		}
		if seq >= 0 && len(later) > 0 {
			q := `DELETE FROM stanch_approvals WHERE run_id = ? AND step_id IN (` + strings.TrimSuffix(strings.Repeat("?, ", len(later)), ", ") + `)`
			if _, err := r.store.exec(ctx, tx, q, append([]any{run.ID}, later...)...); err != nil {
				return fmt.Errorf("retry run %s: %w", run.ID, err)
			}
		} else if _, err := r.store.exec(ctx, tx, `DELETE FROM stanch_approvals WHERE run_id = ? AND decision = ''`, run.ID); err != nil {
			return fmt.Errorf("retry run %s: %w", run.ID, err)
		}
		if forgetOwner {
			if _, err := r.store.exec(ctx, tx, `UPDATE stanch_runs SET owner = '' WHERE id = ?`, run.ID); err != nil {
				return fmt.Errorf("retry run %s: %w", run.ID, err)
			}
		}
		return r.store.appendJournal(ctx, tx, run.ID, from, 0, "run_retried", detail)
	})
	if err != nil {
		return run, err
	}
	run, err = r.store.Run(ctx, run.ID)
	if err != nil {
		return run, err
	}
	r.emit(Event{Kind: EventRunRetried, RunID: run.ID, StepID: from, Message: detail})
	r.notifyAlways(ctx, run, "run/retried")
	return run, r.enqueue(ctx, run)
}

// settledJob refuses to start a run again while the job of its last
// generation is still running: a step a person cancelled finishes first, so
// two workers never run the same step at once.
func (r *Runner) settledJob(ctx context.Context, run Run) error {
	if run.JobID == 0 {
		return nil
	}
	// A run that just ended has a job that is just finishing: give it a
	// moment before saying no.
	deadline := time.Now().Add(3 * time.Second)
	for {
		job, err := r.client.JobGet(ctx, run.JobID)
		if errors.Is(err, rivertype.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("look at the job of run %s: %w", run.ID, err)
		}
		if job.State != rivertype.JobStateRunning {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("run %s is still finishing the step it was in when it ended; try again once it has (stanch runs show %s): %w", run.ID, run.ID, ErrLifecycle)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Cancel ends a run that is pending, running or waiting for approval: no
// further step starts (a step in flight finishes first, and is recorded),
// and undecided approvals can no longer be decided. by is who asked; note
// says why.
func (r *Runner) Cancel(ctx context.Context, runID, by, note string) (Run, error) {
	run, err := r.store.Run(ctx, runID)
	if err != nil {
		return Run{}, err
	}
	if Terminal(run.Status) {
		return run, fmt.Errorf("run %s already ended: it %s at %s; there is nothing to cancel: %w", run.ID, run.Status, run.FinishedAt.Format(time.RFC3339), ErrLifecycle)
	}
	err = r.store.inTx(ctx, func(tx *sql.Tx) error {
		return r.store.cancelTx(ctx, tx, run, by, note)
	})
	if err != nil {
		return run, err
	}
	return r.ended(ctx, run.ID, "run/cancelled")
}

func (s *Store) cancelTx(ctx context.Context, tx *sql.Tx, run Run, by, note string) error {
	why := "cancelled by " + by
	if note != "" {
		why += ": " + note
	}
	why = alert.RedactText(why)
	now := micros(s.now())
	res, err := s.exec(ctx, tx, `UPDATE stanch_runs SET status = ?, waiting_step = '', failed_step = ?, error = ?, handoff = '', updated_at = ?, finished_at = ? WHERE id = ? AND status NOT IN (?, ?, ?)`,
		RunCancelled, run.WaitingStep, why, now, now, run.ID, RunSucceeded, RunFailed, RunCancelled)
	if err != nil {
		return fmt.Errorf("cancel run %s: %w", run.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("run %s ended meanwhile; look at it again (stanch runs show %s): %w", run.ID, run.ID, ErrLifecycle)
	}
	return s.appendJournal(ctx, tx, run.ID, run.WaitingStep, 0, "run_cancelled", why)
}

// Close records that people consider the incident handled, with a note. A
// run still open is cancelled first, in the same transaction.
func (r *Runner) Close(ctx context.Context, runID, by, note string) (Run, error) {
	run, err := r.store.Run(ctx, runID)
	if err != nil {
		return Run{}, err
	}
	if !run.ClosedAt.IsZero() {
		return run, fmt.Errorf("run %s was already closed by %s at %s (%q): %w", run.ID, run.ClosedBy, run.ClosedAt.Format(time.RFC3339), run.CloseNote, ErrLifecycle)
	}
	by, note = alert.RedactText(by), alert.RedactText(note)
	err = r.store.inTx(ctx, func(tx *sql.Tx) error {
		if !Terminal(run.Status) {
			if err := r.store.cancelTx(ctx, tx, run, by, "closed: "+note); err != nil {
				return err
			}
		}
		res, err := r.store.exec(ctx, tx, `UPDATE stanch_runs SET closed_at = ?, closed_by = ?, close_note = ?, updated_at = ? WHERE id = ? AND closed_at = 0`,
			micros(r.store.now()), by, note, micros(r.store.now()), run.ID)
		if err != nil {
			return fmt.Errorf("close run %s: %w", run.ID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("run %s was closed meanwhile: %w", run.ID, ErrLifecycle)
		}
		return r.store.appendJournal(ctx, tx, run.ID, "", 0, "run_closed", "by "+by+": "+note)
	})
	if err != nil {
		return run, err
	}
	return r.ended(ctx, run.ID, "run/closed")
}

// ended tells whoever shows the run that people changed its course.
func (r *Runner) ended(ctx context.Context, runID, event string) (Run, error) {
	run, err := r.store.Run(ctx, runID)
	if err != nil {
		return run, err
	}
	r.emit(Event{Kind: EventRunFinished, RunID: run.ID, Status: run.Status, StepID: run.FailedStep, Error: run.Error})
	r.notifyAlways(ctx, run, event)
	if run.JobID != 0 {
		// A job asleep until an approval's deadline wakes now, sees the run
		// ended and finishes.
		if _, err := r.wakeJob(ctx, run.JobID); err != nil && !errors.Is(err, rivertype.ErrNotFound) {
			r.log.Warn("could not wake the job of an ended run", "run", run.ID, "error", err)
		}
	}
	return run, nil
}

// describeStatus says where a run is, for people.
func describeStatus(run Run) string {
	if run.Status == RunWaitingApproval {
		return "waiting for approval of step " + run.WaitingStep
	}
	return string(run.Status)
}
