package aws

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
)

func (b backend) createSecret(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("iam-user/%s-%d", b.user, time.Now().UnixNano())
	_, err := secretsmanager.NewFromConfig(b.cfg).CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{
		Name: awssdk.String(name), SecretString: awssdk.String(`{"UserName":"` + b.user + `","AccessKeyId":"` + b.leaked + `","SecretAccessKey":"old"}`)})
	require.NoError(t, err)
	return name
}

func (b backend) keyIDs(t *testing.T) map[string]string {
	t.Helper()
	out, err := iam.NewFromConfig(b.cfg).ListAccessKeys(context.Background(), &iam.ListAccessKeysInput{UserName: awssdk.String(b.user)})
	require.NoError(t, err)
	ids := map[string]string{}
	for _, k := range out.AccessKeyMetadata {
		ids[awssdk.ToString(k.AccessKeyId)] = string(k.Status)
	}
	return ids
}

func rotateEnv(run string, started time.Time) actions.Env {
	return actions.Env{RunID: run, StepID: "rotate", Attempt: 1, IdempotencyKey: run + "/rotate", StepStartedAt: started}
}

func TestRotateKeyIntoSecretsManager(t *testing.T) {
	t.Parallel()
	for name, mk := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := mk(t)
			acts := b.actions(t)
			secret := b.createSecret(t)
			rotate := acts["aws.rotate_key"]
			with := map[string]any{"user_name": b.user, "leaked_access_key_id": b.leaked, "secret_id": secret}

			// Two keys already: stop, saying what to do.
			p, err := rotate.Decode(with)
			require.NoError(t, err)
			_, err = rotate.Do(ctx, rotateEnv("run_a", time.Now()), p)
			require.Error(t, err)
			require.Equal(t, actions.KindPermanent, actions.KindOf(err), "%v", err)
			require.Contains(t, err.Error(), "already has two access keys")

			// Deactivated, the leaked key may go to make room.
			_, err = do(t, acts["aws.deactivate_key"], map[string]any{"access_key_id": b.leaked, "user_name": b.user})
			require.NoError(t, err)
			with["when_two_keys"] = "delete_leaked_if_inactive"
			p, err = rotate.Decode(with)
			require.NoError(t, err)
			env := rotateEnv("run_b", time.Now())
			res, err := rotate.Do(ctx, env, p)
			require.NoError(t, err)
			require.Equal(t, actions.Done, res.Outcome)
			newKey := res.Outputs["new_access_key_id"].(string)

			keys := b.keyIDs(t)
			require.Equal(t, map[string]string{b.other: "Active", newKey: "Active"}, keys)
			cur, err := secretsmanager.NewFromConfig(b.cfg).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: awssdk.String(secret), VersionStage: awssdk.String("AWSCURRENT")})
			require.NoError(t, err)
			var stored keySecret
			require.NoError(t, json.Unmarshal([]byte(awssdk.ToString(cur.SecretString)), &stored))
			require.Equal(t, newKey, stored.AccessKeyID)
			require.Len(t, stored.SecretAccessKey, 40)
			require.Equal(t, res.Outputs["version_id"], awssdk.ToString(cur.VersionId))

			// The new secret never leaves Secrets Manager.
			for _, v := range res.Outputs {
				require.NotContains(t, fmt.Sprint(v), stored.SecretAccessKey)
			}
			require.NotContains(t, res.Message, stored.SecretAccessKey)

			again, err := rotate.Do(ctx, env, p)
			require.NoError(t, err)
			require.Equal(t, actions.Already, again.Outcome)
			require.Equal(t, newKey, again.Outputs["new_access_key_id"])
			require.Len(t, b.keyIDs(t), 2, "no second new key")
		})
	}
}

// TestRotateReplacesTheKeyOfAnInterruptedAttempt: an attempt that created
// a key and died before storing it left a key whose secret is lost; the
// next attempt deletes it and finishes with exactly one new key, and never
// touches a key the user had before the rotation began.
func TestRotateReplacesTheKeyOfAnInterruptedAttempt(t *testing.T) {
	t.Parallel()
	for name, mk := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := mk(t)
			acts := b.actions(t)
			secret := b.createSecret(t)
			_, err := do(t, acts["aws.deactivate_key"], map[string]any{"access_key_id": b.leaked, "user_name": b.user})
			require.NoError(t, err)
			_, err = do(t, acts["aws.delete_key"], map[string]any{"access_key_id": b.leaked, "user_name": b.user})
			require.NoError(t, err)

			rotate := acts["aws.rotate_key"]
			p, err := rotate.Decode(map[string]any{"user_name": b.user, "leaked_access_key_id": b.leaked, "secret_id": secret})
			require.NoError(t, err)
			env := rotateEnv("run_c", time.Now())
			r, err := b.provider(t).rotation(ctx, env, p.(*RotateKeyParams))
			require.NoError(t, err)
			// The dead attempt: it recorded the keys, created one, died.
			keys, err := r.keys(ctx)
			require.NoError(t, err)
			_, err = r.keysBefore(ctx, keys)
			require.NoError(t, err)
			orphan, err := iam.NewFromConfig(b.cfg).CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: awssdk.String(b.user)})
			require.NoError(t, err)

			res, err := rotate.Do(ctx, env, p)
			require.NoError(t, err)
			newKey := res.Outputs["new_access_key_id"].(string)
			got := b.keyIDs(t)
			require.NotContains(t, got, awssdk.ToString(orphan.AccessKey.AccessKeyId), "the orphan is gone")
			require.Equal(t, map[string]string{b.other: "Active", newKey: "Active"}, got, "the user's other key is untouched")
			cur, err := secretsmanager.NewFromConfig(b.cfg).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: awssdk.String(secret), VersionStage: awssdk.String("AWSCURRENT")})
			require.NoError(t, err)
			require.True(t, strings.Contains(awssdk.ToString(cur.SecretString), newKey))
		})
	}
}
