package testkit

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
)

// Env is the Env of the first attempt of step "step" of run runID.
func Env(runID string) actions.Env {
	return actions.Env{RunID: runID, StepID: "step", Attempt: 1}
}

// Decode decodes a step's with: into a's parameters, failing the test if
// they are refused.
func Decode(t testing.TB, a actions.Action, with map[string]any) any {
	t.Helper()
	p, err := a.Decode(with)
	require.NoError(t, err)
	return p
}

// RunAction runs a step of a as the runner does once its with: is
// expanded: decode (which must succeed), then Do in env.
func RunAction(t testing.TB, a actions.Action, env actions.Env, with map[string]any) (actions.Result, error) {
	t.Helper()
	return a.Do(context.Background(), env, Decode(t, a, with))
}

// PlanAction is RunAction's Plan: decode, then Plan in env.
func PlanAction(t testing.TB, a actions.Action, env actions.Env, with map[string]any) (actions.Plan, error) {
	t.Helper()
	return a.Plan(context.Background(), env, Decode(t, a, with))
}
