package aws

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/examples"
	"github.com/stanchhq/stanch/internal/planted"
	"github.com/stanchhq/stanch/internal/testkit"
)

// The AWS actions read secrets (a key's secret half is in the Secrets
// Manager secret that rotation replaces; the attacker's keys have theirs)
// and hand back what they found: with planted secrets as those secrets, no
// plan, result, error, log line or call that reached AWS holds one, from
// identification to rotation.
func TestPlantedSecretsReachNoResultOrCall(t *testing.T) {
	t.Parallel()
	data, err := examples.FS.ReadFile("sandbox/seed.yaml")
	require.NoError(t, err)
	seedYAML := strings.NewReplacer(
		"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", planted.Random, // the leaked key's, in IAM and in Secrets Manager
		"backdoorSecretBackdoorSecretBackdoorSec1", planted.NoDigit, // the attacker's key's
	).Replace(string(data))
	require.Contains(t, seedYAML, planted.Random)
	require.Contains(t, seedYAML, planted.NoDigit)
	sb := testkit.Sandbox(t, testkit.Seed(t, seedYAML))
	cfg := sb.AWSConfig()
	p := NewProvider(ProviderOptions{Config: func(context.Context, string) (awssdk.Config, error) { return cfg, nil }, VerifyDelay: 10 * time.Millisecond})
	acts := map[string]actions.Action{}
	for _, a := range Actions(p) {
		acts[a.Spec().Name] = a
	}

	const leaked = "AKIAIOSFODNN7EXAMPLE"
	var logs bytes.Buffer
	outputs := map[string]map[string]any{}
	step := func(id, name string, with map[string]any) {
		t.Helper()
		a := acts[name]
		env := actions.Env{RunID: "run_planted", StepID: id, Attempt: 1, IdempotencyKey: "run_planted/" + id, StepStartedAt: time.Now(),
			Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
		plan, err := testkit.PlanAction(t, a, env, with)
		require.NoError(t, err, id)
		res, err := testkit.RunAction(t, a, env, with)
		require.NoError(t, err, id)
		planted.RequireNone(t, "the plan of "+id, plan)
		planted.RequireNone(t, "the result of "+id, res)
		outputs[id] = res.Outputs
	}
	step("identify", "aws.identify_key", map[string]any{"access_key_id": leaked})
	step("impact", "aws.cloudtrail_impact", map[string]any{"access_key_id": leaked})
	derived := outputs["impact"]["derived_credentials"].([]map[string]any)
	require.NotEmpty(t, derived, "the seed's attacker made a key")
	items := make([]any, len(derived))
	for i, d := range derived {
		items[i] = d
	}
	step("contain_derived", "aws.contain_derived", map[string]any{"derived": items})
	step("deactivate", "aws.deactivate_key", map[string]any{"access_key_id": leaked})
	step("revoke", "aws.revoke_sessions", map[string]any{"user_name": "ci-bot"})
	step("quarantine", "aws.quarantine", map[string]any{"user_name": "ci-bot"})
	step("rotate", "aws.rotate_key", map[string]any{"user_name": "ci-bot", "leaked_access_key_id": leaked, "secret_id": "iam-user/ci-bot", "when_two_keys": "delete_leaked_if_inactive"})
	step("delete", "aws.delete_key", map[string]any{"access_key_id": leaked, "user_name": "ci-bot"})

	// A refusal quotes what it was given, never what it read.
	_, err = testkit.RunAction(t, acts["aws.rotate_key"], testkit.Env("run_planted"), map[string]any{"user_name": "ci-bot", "leaked_access_key_id": leaked, "secret_id": "no-such-secret", "when_no_secret": "fail"})
	require.Error(t, err)
	planted.RequireNone(t, "a refusal", err)

	planted.RequireNone(t, "the actions' logs", logs.String())
	calls, err := json.Marshal(sb.Calls())
	require.NoError(t, err)
	require.Contains(t, string(calls), "PutSecretValue", "the rotation reached Secrets Manager")
	planted.RequireNone(t, "the calls AWS received", calls)
	value, _, ok := sb.SecretValue("111122223333", "us-east-1", "iam-user/ci-bot", "AWSCURRENT")
	require.True(t, ok)
	planted.RequireNone(t, "the rotated secret", value)
}
