package runner

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/riverqueue/river/rivertype"
)

// ErrNotApprover is returned when someone outside a step's approvers tries
// to decide it. The attempt is journalled.
var ErrNotApprover = errors.New("not an approver")

// ErrNotWaiting is returned when an approval names a step that is not
// waiting for one.
var ErrNotWaiting = errors.New("not waiting for approval")

// Decision is one person's decision on a step's approval.
type Decision struct {
	RunID, StepID string
	Decision      string // Approved or Denied
	// By is who decided (a Slack user id, or the name given to stanch
	// approve --by); Via is how (cli, slack, timeout).
	By, Via string
	// ByName is By's display name (from Slack's users.info for a click),
	// empty when it could not be found: the record keeps both, since an id
	// alone means little to an auditor and a name alone is not unique.
	ByName string
	// MemberOf are the groups By belongs to (Slack user group ids), as the
	// caller resolved them: a group among the approvers admits its members.
	MemberOf []string
}

// Approver is who decided an approval: ID is what approvers lists match
// (a Slack user id, a name given to stanch approve, "timeout"), Name their
// display name when known.
type Approver struct {
	ID, Name string
}

// String is how the journal names the approver: "Alice Smith (U0123ABC)",
// or the id alone when there is no other name.
func (a Approver) String() string {
	if a.Name == "" || a.Name == a.ID {
		return a.ID
	}
	return a.Name + " (" + a.ID + ")"
}

// Decide records a person's decision on a waiting step and wakes the run.
// The decider must be among the step's approvers, by name or through a
// group (d.MemberOf); a refusal is journalled. The first decision wins;
// first is false when one was already recorded.
func (r *Runner) Decide(ctx context.Context, d Decision) (Approval, bool, error) {
	run, err := r.store.Run(ctx, d.RunID)
	if err != nil {
		return Approval{}, false, err
	}
	if Terminal(run.Status) {
		a, _ := r.store.Approval(ctx, d.RunID, d.StepID)
		if a.Decision != "" {
			// Decided before the run ended: say so, as for a second click.
			return a, false, nil
		}
		return Approval{}, false, fmt.Errorf("run %s has ended (%s: %s); its approvals can no longer be decided: %w", d.RunID, run.Status, run.Error, ErrNotWaiting)
	}
	pending, err := r.store.Approval(ctx, d.RunID, d.StepID)
	if errors.Is(err, ErrNotFound) {
		if run.WaitingStep != "" {
			return Approval{}, false, fmt.Errorf("run %s is waiting for approval of step %q, not %q: %w", d.RunID, run.WaitingStep, d.StepID, ErrNotWaiting)
		}
		return Approval{}, false, fmt.Errorf("run %s (%s) has no approval request for step %q: %w", d.RunID, run.Status, d.StepID, ErrNotWaiting)
	} else if err != nil {
		return Approval{}, false, err
	}
	if d.Via != "timeout" && !MayDecide(pending, d.By, d.MemberOf) {
		if err := r.store.Refuse(ctx, d.RunID, d.StepID, d.By, d.Via); err != nil {
			return Approval{}, false, err
		}
		return Approval{}, false, fmt.Errorf("%q may not decide step %s of run %s; approvers are %s: %w", d.By, d.StepID, d.RunID, strings.Join(pending.Approvers, ", "), ErrNotApprover)
	}
	a, first, err := r.store.Decide(ctx, d.RunID, d.StepID, d.Decision, Approver{ID: d.By, Name: d.ByName}, d.Via)
	if err != nil {
		return Approval{}, false, err
	}
	if first {
		// Whoever serves the run shows the decision; this process (stanch
		// approve) may have no notifier of its own.
		r.notifyAlways(ctx, run, "approval/"+d.StepID+"/decided")
		if run.JobID != 0 {
			if err := r.wake(ctx, d.RunID, run.JobID); err != nil {
				return a, first, err
			}
		}
	}
	return a, first, nil
}

// MayDecide reports whether who, a member of groups, is among an
// approval's approvers.
func MayDecide(a Approval, who string, groups []string) bool {
	for _, p := range a.Approvers {
		if p == who || slices.Contains(groups, p) {
			return true
		}
	}
	return false
}

// wake makes a run's sleeping job available now, and a worker take it. A
// job still running (it is about to go to sleep) is left alone by River, so
// wait for it to settle and try again; the worker also re-reads the
// decision before sleeping.
func (r *Runner) wake(ctx context.Context, runID string, jobID int64) error {
	for range 200 {
		state, err := r.wakeJob(ctx, jobID)
		if err != nil {
			return fmt.Errorf("wake run %s: %w", runID, err)
		}
		if state != rivertype.JobStateRunning {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}
