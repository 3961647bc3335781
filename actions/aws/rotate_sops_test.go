package aws

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/goccy/go-yaml"
	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/destinations"
	"github.com/stanchhq/stanch/internal/planted"
	"github.com/stanchhq/stanch/internal/sopstest"
	"github.com/stanchhq/stanch/internal/testkit"
)

const sopsPlainCI = `aws:
    access_key_id: AKIAIOSFODNN7EXAMPLE
    secret_access_key: old
    region: us-east-1
npm_token: untouched
`

// sopsBackend is the sandbox backend with SOPS files decrypted by the
// shared test age identity.
func sopsBackend(t *testing.T) (backend, map[string]actions.Action) {
	t.Helper()
	f := testkit.Sandbox(t, testkit.Seed(t, seedYAML))
	b := backend{name: "sandbox", cfg: f.AWSConfig(), account: "111122223333", user: "ci-bot", leaked: "AKIAIOSFODNN7EXAMPLE", other: "AKIAI44QH8DHBEXAMPLE",
		effective: f.EffectiveCount, calls: f.Count}
	p := NewProvider(ProviderOptions{
		Config:       func(context.Context, string) (awssdk.Config, error) { return b.cfg, nil },
		VerifyDelay:  10 * time.Millisecond,
		Destinations: destinations.Deps{SOPS: destinations.SOPSDeps{AgeKeyFile: sopstest.Shared(t).File}},
	})
	acts := map[string]actions.Action{}
	for _, a := range Actions(p) {
		acts[a.Spec().Name] = a
	}
	return b, acts
}

func sopsDest(file string, keys map[string]any) map[string]any {
	return map[string]any{"sops": map[string]any{"file": file, "keys": keys}}
}

// The new key goes to Secrets Manager and into a SOPS file, which sops
// decrypts to it with every other value as it was; again: already; the
// secret half is in the stores only.
func TestRotateKeyIntoSOPSFileToo(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, acts := sopsBackend(t)
	secret := b.createSecret(t)
	key := sopstest.Shared(t)
	path := sopstest.WriteFile(t, t.TempDir(), "ci.enc.yaml", sopstest.Encrypt(t, []byte(sopsPlainCI), "yaml", sopstest.Rules{}, key.Recipient))
	rotate := acts["aws.rotate_key"]
	with := rotateInto(t, b, acts, secret, []any{sopsDest(path, map[string]any{"aws.access_key_id": "AccessKeyId", "aws.secret_access_key": "SecretAccessKey"})})
	logs := &logBuffer{}
	env := rotateEnv("run_sops", stepStart(), logs)
	plan, err := rotate.Plan(ctx, env, testkit.Decode(t, rotate, with))
	require.NoError(t, err)
	require.Contains(t, plan.Summary, "write it to SOPS file "+path+", then make it AWSCURRENT")
	var writes []string
	for _, c := range plan.Calls {
		if c.Service == "sops" && c.Mutates {
			writes = append(writes, c.Effect)
		}
	}
	require.Equal(t, []string{"replace aws.access_key_id, aws.secret_access_key in SOPS file " + path + ", re-encrypted for the file's own recipients"}, writes)

	var effects []string
	env.Effect = func(e actions.Effect) { effects = append(effects, e.Description) }
	res, err := rotate.Do(ctx, env, testkit.Decode(t, rotate, with))
	require.NoError(t, err)
	require.Equal(t, actions.Done, res.Outcome)
	newKey := res.Outputs["new_access_key_id"].(string)
	stored, _ := b.current(t, secret)
	require.Equal(t, newKey, stored.AccessKeyID)
	written, err := os.ReadFile(path)
	require.NoError(t, err)
	var got, want map[string]any
	require.NoError(t, yaml.Unmarshal(sopstest.Decrypt(t, written, "yaml"), &got))
	require.NoError(t, yaml.Unmarshal([]byte(sopsPlainCI), &want))
	want["aws"].(map[string]any)["access_key_id"] = newKey
	want["aws"].(map[string]any)["secret_access_key"] = stored.SecretAccessKey
	require.Equal(t, want, got)
	require.Contains(t, strings.Join(effects, "\n"), "wrote the new key "+newKey+" to SOPS file "+path+" (aws.access_key_id, aws.secret_access_key replaced, re-encrypted for the file's 1 recipient)")

	again, err := rotate.Do(ctx, env, testkit.Decode(t, rotate, with))
	require.NoError(t, err)
	require.Equal(t, actions.Already, again.Outcome)
	after, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, string(written), string(after), "not written again")

	require.Len(t, stored.SecretAccessKey, 40)
	for _, text := range []string{logs.String(), fmt.Sprint(res), fmt.Sprint(plan), strings.Join(effects, "\n"), string(written)} {
		require.NotContains(t, text, stored.SecretAccessKey)
	}
	planted.RequireNone(t, "the rotation's logs", logs.String())
}

// A SOPS file the configured identity cannot open stops the step naming
// it, the key in custody; pointed at a file it can, the same step goes on
// with the same key.
func TestRotateStopsAtASOPSFileItCannotOpen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, acts := sopsBackend(t)
	secret := b.createSecret(t)
	dir := t.TempDir()
	stranger := sopstest.NewKey(t, dir)
	theirs := sopstest.WriteFile(t, dir, "theirs.enc.yaml", sopstest.Encrypt(t, []byte(sopsPlainCI), "yaml", sopstest.Rules{}, stranger.Recipient))
	ours := sopstest.WriteFile(t, dir, "ours.enc.yaml", sopstest.Encrypt(t, []byte(sopsPlainCI), "yaml", sopstest.Rules{}, sopstest.Shared(t).Recipient))
	keys := map[string]any{"aws.access_key_id": "AccessKeyId", "aws.secret_access_key": "SecretAccessKey"}
	rotate := acts["aws.rotate_key"]
	with := rotateInto(t, b, acts, secret, []any{sopsDest(theirs, keys)})
	env := rotateEnv("run_sops_fail", stepStart(), nil)
	_, err := rotate.Do(ctx, env, testkit.Decode(t, rotate, with))
	require.Error(t, err)
	require.Contains(t, err.Error(), "SOPS file "+theirs+" failed")
	require.Contains(t, err.Error(), "no configured age identity is among the file's recipients")
	require.Contains(t, err.Error(), "It is in: Secrets Manager secret "+secret+" (AWSPENDING)")
	require.Equal(t, actions.KindPermanent, actions.KindOf(err))

	with["destinations"] = []any{sopsDest(ours, keys)}
	res, err := rotate.Do(ctx, env, testkit.Decode(t, rotate, with))
	require.NoError(t, err)
	require.Equal(t, actions.Done, res.Outcome)
	require.Equal(t, 1, b.effective("CreateAccessKey"), "one new key across the failure and the retry")
}
