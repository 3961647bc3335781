package aws

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/destinations"
	"github.com/stanchhq/stanch/internal/planted"
	"github.com/stanchhq/stanch/internal/testkit"
	"github.com/stanchhq/stanch/sandbox"
)

// vaultWriter is the token the rotation writes to Vault with: its policy
// allows the ci/ secrets only.
const vaultWriter = "hvs.CAESIRotationWriterTokenForTheSandbox0001"

const destinationsSeed = seedYAML + `
tokens:
  - {provider: vault, value: ` + vaultWriter + `, owner: rotation, scopes: [rotate]}
vault:
  kv:
    - {mount: secret, path: ci/aws, data: {AWS_ACCESS_KEY_ID: AKIAIOSFODNN7EXAMPLE, AWS_SECRET_ACCESS_KEY: old, AWS_REGION: us-east-1}}
    - {mount: secret, path: ci/deploy, data: {key: AKIAIOSFODNN7EXAMPLE, secret: old}}
    - {mount: secret, path: other/app, data: {key: AKIAIOSFODNN7EXAMPLE, secret: old}}
  policies:
    - name: rotate
      paths:
        - {path: "secret/data/ci/*", capabilities: [create, read, update, patch]}
        - {path: "secret/metadata/ci/*", capabilities: [read, update, patch, list]}
`

// destinationsBackend is the sandbox backend with Vault reachable by the
// rotation.
func destinationsBackend(t *testing.T) (backend, *testkit.Fixture, map[string]actions.Action) {
	t.Helper()
	f := testkit.Sandbox(t, testkit.Seed(t, destinationsSeed))
	b := backend{name: "sandbox", cfg: f.AWSConfig(), account: "111122223333", user: "ci-bot", leaked: "AKIAIOSFODNN7EXAMPLE", other: "AKIAI44QH8DHBEXAMPLE",
		effective: f.EffectiveCount, calls: f.Count}
	p := NewProvider(ProviderOptions{
		Config:      func(context.Context, string) (awssdk.Config, error) { return b.cfg, nil },
		VerifyDelay: 10 * time.Millisecond,
		Destinations: destinations.Deps{Vault: destinations.VaultDeps{Address: f.URL + "/vault",
			Token: func() (string, error) { return vaultWriter, nil }}},
	})
	acts := map[string]actions.Action{}
	for _, a := range Actions(p) {
		acts[a.Spec().Name] = a
	}
	return b, f, acts
}

// rotateInto rotates ci-bot's leaked key (deactivated first, deleted to
// make room) into Secrets Manager and the Vault destinations given.
func rotateInto(t *testing.T, b backend, acts map[string]actions.Action, secret string, dests []any) map[string]any {
	t.Helper()
	_, err := testkit.RunAction(t, acts["aws.deactivate_key"], testkit.Env("run_test"), map[string]any{"access_key_id": b.leaked, "user_name": b.user})
	require.NoError(t, err)
	return map[string]any{"user_name": b.user, "leaked_access_key_id": b.leaked, "secret_id": secret, "when_two_keys": "delete_leaked_if_inactive", "destinations": dests}
}

func vaultDest(path string, fields map[string]any) map[string]any {
	d := map[string]any{"mount": "secret", "path": path}
	if fields != nil {
		d["fields"] = fields
	}
	return map[string]any{"vault_kv": d}
}

// The new key goes to Secrets Manager and to each Vault secret, whose
// other keys stay; the plan lists each write; the secret half is nowhere
// but in the stores.
func TestRotateKeyIntoVaultToo(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, f, acts := destinationsBackend(t)
	secret := b.createSecret(t)
	rotate := acts["aws.rotate_key"]
	with := rotateInto(t, b, acts, secret, []any{
		vaultDest("ci/aws", map[string]any{"AWS_ACCESS_KEY_ID": "AccessKeyId", "AWS_SECRET_ACCESS_KEY": "SecretAccessKey"}),
		vaultDest("ci/deploy", map[string]any{"key": "AccessKeyId", "secret": "SecretAccessKey"}),
	})
	logs := &logBuffer{}
	env := rotateEnv("run_vault", stepStart(), logs)
	plan, err := rotate.Plan(ctx, env, testkit.Decode(t, rotate, with))
	require.NoError(t, err)
	require.Contains(t, plan.Summary, "write it to Vault KV secret/ci/aws, Vault KV secret/ci/deploy, then make it AWSCURRENT")
	var writes []string
	for _, c := range plan.Calls {
		if c.Service == "vault" && c.Mutates {
			writes = append(writes, c.Effect)
		}
	}
	require.Len(t, writes, 4, "each Vault destination: a version and its metadata")

	var effects []string
	env.Effect = func(e actions.Effect) { effects = append(effects, e.Description) }
	res, err := rotate.Do(ctx, env, testkit.Decode(t, rotate, with))
	require.NoError(t, err)
	require.Equal(t, actions.Done, res.Outcome)
	newKey := res.Outputs["new_access_key_id"].(string)
	stored, _ := b.current(t, secret)
	require.Equal(t, newKey, stored.AccessKeyID)

	latest := latestKV(t, f, "ci/aws")
	require.Equal(t, newKey, latest.Data["AWS_ACCESS_KEY_ID"])
	require.Equal(t, stored.SecretAccessKey, latest.Data["AWS_SECRET_ACCESS_KEY"])
	require.Equal(t, "us-east-1", latest.Data["AWS_REGION"], "keys the step does not name stay")
	require.Equal(t, []int{2}, f.VaultKVWrites("secret", "ci/aws"), "one version added")
	require.Equal(t, newKey, latestKV(t, f, "ci/deploy").Data["key"])
	require.Equal(t, []int{2}, f.VaultKVWrites("secret", "ci/deploy"))
	meta, _ := f.VaultKV("secret", "ci/aws")
	require.Equal(t, "run_vault", meta.CustomMetadata["stanch_run"], "the secret's custom metadata records the run")
	require.Equal(t, newKey, meta.CustomMetadata["stanch_credential"])
	require.Contains(t, strings.Join(effects, "\n"), "wrote the new key "+newKey+" to Vault KV secret/ci/aws (version 2)")

	// Again: everything holds it already; nothing is written.
	again, err := rotate.Do(ctx, env, testkit.Decode(t, rotate, with))
	require.NoError(t, err)
	require.Equal(t, actions.Already, again.Outcome)
	require.Equal(t, []int{2}, f.VaultKVWrites("secret", "ci/aws"))

	// The secret half is in the stores only.
	require.Len(t, stored.SecretAccessKey, 40)
	for _, text := range []string{logs.String(), fmt.Sprint(res), fmt.Sprint(plan), strings.Join(effects, "\n")} {
		require.NotContains(t, text, stored.SecretAccessKey)
	}
	for _, c := range f.Calls() {
		require.NotContains(t, fmt.Sprint(c.Params), stored.SecretAccessKey, "%s %s", c.Service, c.Action)
	}
	planted.RequireNone(t, "the rotation's logs", logs.String())
}

// Three destinations, the second refusing (its policy does not cover the
// path): the step stops naming what holds the key and what does not; once
// the refusal is fixed (here: the step points at a path it may write), a
// retry of the same step completes the rest with the same key.
func TestRotateStopsAtAFailedDestinationAndARetryCompletes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, f, acts := destinationsBackend(t)
	secret := b.createSecret(t)
	rotate := acts["aws.rotate_key"]
	with := rotateInto(t, b, acts, secret, []any{
		vaultDest("ci/aws", map[string]any{"AWS_ACCESS_KEY_ID": "AccessKeyId", "AWS_SECRET_ACCESS_KEY": "SecretAccessKey"}),
		vaultDest("other/app", map[string]any{"key": "AccessKeyId", "secret": "SecretAccessKey"}),
		vaultDest("ci/deploy", map[string]any{"key": "AccessKeyId", "secret": "SecretAccessKey"}),
	})
	env := rotateEnv("run_three", stepStart(), nil)
	_, err := rotate.Do(ctx, env, testkit.Decode(t, rotate, with))
	require.Error(t, err)
	msg := err.Error()
	require.Contains(t, msg, "Vault KV secret/other/app failed")
	require.Contains(t, msg, "It is in: Secrets Manager secret "+secret+" (AWSPENDING), Vault KV secret/ci/aws")
	require.Contains(t, msg, "not written yet: Vault KV secret/ci/deploy")
	require.Equal(t, actions.KindPermanent, actions.KindOf(err), "a refused write needs people: %v", err)
	require.Equal(t, []int{2}, f.VaultKVWrites("secret", "ci/aws"))
	require.Empty(t, f.VaultKVWrites("secret", "ci/deploy"))
	_, _, pending := f.SecretValue(b.account, "us-east-1", secret, "AWSPENDING")
	require.True(t, pending, "the key waits in custody")

	// Fixed: the step now names a path it may write; the same step goes on.
	with["destinations"] = []any{
		vaultDest("ci/aws", map[string]any{"AWS_ACCESS_KEY_ID": "AccessKeyId", "AWS_SECRET_ACCESS_KEY": "SecretAccessKey"}),
		vaultDest("ci/deploy", map[string]any{"key": "AccessKeyId", "secret": "SecretAccessKey"}),
	}
	res, err := rotate.Do(ctx, env, testkit.Decode(t, rotate, with))
	require.NoError(t, err)
	require.Equal(t, actions.Done, res.Outcome)
	newKey := res.Outputs["new_access_key_id"].(string)
	require.Equal(t, 1, f.EffectiveCount("CreateAccessKey"), "one new key across the failure and the retry")
	require.Equal(t, []int{2}, f.VaultKVWrites("secret", "ci/aws"), "the destination that held it was not written again")
	require.Equal(t, []int{2}, f.VaultKVWrites("secret", "ci/deploy"))
	require.Equal(t, newKey, latestKV(t, f, "ci/deploy").Data["key"])
	cur, err := secretsmanager.NewFromConfig(b.cfg).DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: awssdk.String(secret)})
	require.NoError(t, err)
	require.Contains(t, cur.VersionIdsToStages[tokenFor("run_three/rotate")], "AWSCURRENT")
}

// A destination that does not say which kind it is, or names a path that
// is not one, is refused before anything runs.
func TestRotateRefusesABadDestination(t *testing.T) {
	t.Parallel()
	_, _, acts := destinationsBackend(t)
	rotate := acts["aws.rotate_key"]
	base := map[string]any{"user_name": "ci-bot", "leaked_access_key_id": "AKIAIOSFODNN7EXAMPLE", "secret_id": "s"}
	for _, bad := range []any{
		map[string]any{},
		map[string]any{"vault_kv": map[string]any{"mount": "secret"}},
		map[string]any{"vault_kv": map[string]any{"path": "secret/data/ci/aws"}},
		map[string]any{"github_actions": map[string]any{"repository": "acme/app"}},
	} {
		with := map[string]any{}
		for k, v := range base {
			with[k] = v
		}
		with["destinations"] = []any{bad}
		_, err := rotate.Decode(with)
		require.Error(t, err, "%v", bad)
	}
}

func latestKV(t *testing.T, f *testkit.Fixture, path string) sandbox.VaultKVVersion {
	t.Helper()
	s, ok := f.VaultKV("secret", path)
	require.True(t, ok, path)
	return s.Versions[len(s.Versions)-1]
}
