package testkit

import (
	"bytes"
	"context"
	"log/slog"
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

// LoggedEnv is Env(runID) with a logger writing JSON to the buffer it
// returns, for tests that check what an action logs.
func LoggedEnv(runID string) (actions.Env, *bytes.Buffer) {
	logs := &bytes.Buffer{}
	env := Env(runID)
	env.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	return env, logs
}

// SandboxEnv is a sandbox seeded with seedYAML and LoggedEnv(runID): the
// setup of the tests of an action against the sandbox.
func SandboxEnv(t testing.TB, seedYAML, runID string) (*Fixture, actions.Env, *bytes.Buffer) {
	t.Helper()
	sb := Sandbox(t, Seed(t, seedYAML))
	env, logs := LoggedEnv(runID)
	return sb, env, logs
}
