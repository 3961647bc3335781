package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/stanchhq/stanch/runner"
	"github.com/stanchhq/stanch/triggers"
)

// runDecider lets clicks on approval buttons decide through the runner:
// the interactions endpoint (triggers) knows the runner only as its
// Decider.
type runDecider struct{ r *runner.Runner }

var _ triggers.Decider = runDecider{}

func (d runDecider) Approvers(ctx context.Context, runID, stepID string) ([]string, error) {
	a, err := d.r.Store().Approval(ctx, runID, stepID)
	if errors.Is(err, runner.ErrNotFound) {
		return nil, fmt.Errorf("%w: %v", triggers.ErrNotWaiting, err)
	}
	return a.Approvers, err
}

func (d runDecider) Decide(ctx context.Context, runID, stepID, decision string, who triggers.Approver, groups []string) (triggers.Decided, error) {
	a, first, err := d.r.Decide(ctx, runner.Decision{RunID: runID, StepID: stepID, Decision: decision, By: who.ID, ByName: who.Name, Via: "slack", MemberOf: groups})
	switch {
	case errors.Is(err, runner.ErrNotApprover):
		return triggers.Decided{}, fmt.Errorf("%w: %v", triggers.ErrNotApprover, err)
	case errors.Is(err, runner.ErrNotWaiting):
		return triggers.Decided{}, fmt.Errorf("%w: %v", triggers.ErrNotWaiting, err)
	case err != nil:
		return triggers.Decided{}, err
	}
	return triggers.Decided{First: first, Decision: a.Decision, DecidedBy: a.DecidedBy, DecidedAt: a.DecidedAt}, nil
}
