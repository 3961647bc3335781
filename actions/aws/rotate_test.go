package aws

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/internal/testkit"
	"github.com/stanchhq/stanch/sandbox"
)

func (b backend) createSecret(t *testing.T) string {
	t.Helper()
	name := uniqueName("iam-user/" + b.user)
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

// current returns the key AWSCURRENT holds, its secret half and the version.
func (b backend) current(t *testing.T, secret string) (keySecret, string) {
	t.Helper()
	cur, err := secretsmanager.NewFromConfig(b.cfg).GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: awssdk.String(secret), VersionStage: awssdk.String("AWSCURRENT")})
	require.NoError(t, err)
	var ks keySecret
	require.NoError(t, json.Unmarshal([]byte(awssdk.ToString(cur.SecretString)), &ks))
	return ks, awssdk.ToString(cur.VersionId)
}

func (b backend) stages(t *testing.T, secret string) map[string][]string {
	t.Helper()
	desc, err := secretsmanager.NewFromConfig(b.cfg).DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: awssdk.String(secret)})
	require.NoError(t, err)
	return desc.VersionIdsToStages
}

// logBuffer is a step logger that keeps what it was told, for the
// no-secret checks.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func rotateEnv(run string, started time.Time, logs *logBuffer) actions.Env {
	env := actions.Env{RunID: run, StepID: "rotate", Attempt: 1, IdempotencyKey: run + "/rotate", StepStartedAt: started}
	if logs != nil {
		env.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return env
}

// stepStart returns a time for StepStartedAt after which no key made so far
// can pass for one the step created: IAM's CreateDate is in whole seconds.
func stepStart() time.Time {
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(2 * time.Second)))
	return time.Now()
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
			_, err := rotate.Do(ctx, rotateEnv("run_a", time.Now(), nil), testkit.Decode(t, rotate, with))
			require.Error(t, err)
			require.Equal(t, actions.KindPermanent, actions.KindOf(err), "%v", err)
			require.Contains(t, err.Error(), "already has two access keys")
			require.Contains(t, err.Error(), "when_two_keys: delete_leaked_if_inactive")

			// Allowed to delete the leaked key, but it is still Active.
			with["when_two_keys"] = "delete_leaked_if_inactive"
			_, err = rotate.Do(ctx, rotateEnv("run_a", time.Now(), nil), testkit.Decode(t, rotate, with))
			require.Error(t, err)
			require.Equal(t, actions.KindPermanent, actions.KindOf(err), "%v", err)
			require.Contains(t, err.Error(), "is still Active: deactivate it first")
			require.Len(t, b.keyIDs(t), 2, "nothing was changed")

			// Deactivated, the leaked key may go to make room.
			_, err = testkit.RunAction(t, acts["aws.deactivate_key"], testkit.Env("run_test"), map[string]any{"access_key_id": b.leaked, "user_name": b.user})
			require.NoError(t, err)
			logs := &logBuffer{}
			env := rotateEnv("run_b", time.Now(), logs)
			p := testkit.Decode(t, rotate, with)
			res, err := rotate.Do(ctx, env, p)
			require.NoError(t, err)
			require.Equal(t, actions.Done, res.Outcome)
			newKey := res.Outputs["new_access_key_id"].(string)

			require.Equal(t, map[string]string{b.other: "Active", newKey: "Active"}, b.keyIDs(t))
			stored, version := b.current(t, secret)
			require.Equal(t, newKey, stored.AccessKeyID)
			require.Equal(t, b.user, stored.UserName)
			require.Len(t, stored.SecretAccessKey, 40)
			require.Equal(t, res.Outputs["version_id"], version)
			require.Equal(t, tokenFor("run_b/rotate"), version, "the version is the token derived from the run and step")
			require.Contains(t, res.Outputs["secret_arn"], ":secret:"+secret)
			require.Equal(t, []string{"AWSCURRENT"}, b.stages(t, secret)[version], "AWSPENDING is removed on promotion")
			var previous int
			for _, st := range b.stages(t, secret) {
				if slices.Contains(st, "AWSPREVIOUS") {
					previous++
				}
			}
			require.Equal(t, 1, previous, "the old AWSCURRENT is AWSPREVIOUS now")

			again, err := rotate.Do(ctx, env, p)
			require.NoError(t, err)
			require.Equal(t, actions.Already, again.Outcome)
			require.Equal(t, newKey, again.Outputs["new_access_key_id"])
			require.Len(t, b.keyIDs(t), 2, "no second new key")

			// The new secret never leaves Secrets Manager.
			b.secrets = append(b.secrets, stored.SecretAccessKey)
			b.noSecrets(t, res, again, logs.String())
			require.Contains(t, logs.String(), newKey)
			if b.effective != nil {
				require.Equal(t, 1, b.effective("CreateAccessKey"))
				require.Equal(t, 1, b.effective("PutSecretValue"))
			}
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
			_, err := testkit.RunAction(t, acts["aws.deactivate_key"], testkit.Env("run_test"), map[string]any{"access_key_id": b.leaked, "user_name": b.user})
			require.NoError(t, err)

			rotate := acts["aws.rotate_key"]
			p := testkit.Decode(t, rotate, map[string]any{"user_name": b.user, "leaked_access_key_id": b.leaked, "secret_id": secret, "when_two_keys": "delete_leaked_if_inactive"})
			// The dead attempt: it deleted the leaked key to make room,
			// created one, and died before PutSecretValue.
			env := rotateEnv("run_c", stepStart(), nil)
			_, err = testkit.RunAction(t, acts["aws.delete_key"], testkit.Env("run_test"), map[string]any{"access_key_id": b.leaked, "user_name": b.user})
			require.NoError(t, err)
			orphan, err := iam.NewFromConfig(b.cfg).CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: awssdk.String(b.user)})
			require.NoError(t, err)
			orphanID := awssdk.ToString(orphan.AccessKey.AccessKeyId)

			env.Attempt = 2
			plan, err := rotate.Plan(ctx, env, p)
			require.NoError(t, err)
			require.Contains(t, plan.Summary, "after deleting "+orphanID+", left by an interrupted attempt")

			res, err := rotate.Do(ctx, env, p)
			require.NoError(t, err)
			require.Equal(t, actions.Done, res.Outcome)
			newKey := res.Outputs["new_access_key_id"].(string)
			got := b.keyIDs(t)
			require.NotContains(t, got, orphanID, "the orphan is gone")
			require.Equal(t, map[string]string{b.other: "Active", newKey: "Active"}, got, "the user's other key is untouched")
			stored, _ := b.current(t, secret)
			require.Equal(t, newKey, stored.AccessKeyID)
			if b.effective != nil {
				require.Equal(t, 2, b.effective("CreateAccessKey"), "the orphan and the new key")
				require.Equal(t, 2, b.effective("DeleteAccessKey"), "the leaked key and the orphan")
			}
		})
	}
}

// TestRotateKeepsAKeyTheSecretHolds: a key created after the step began
// that a version of the secret holds is someone's delivered key, not an
// orphan: it is kept, and the two-key rule applies to it.
func TestRotateKeepsAKeyTheSecretHolds(t *testing.T) {
	t.Parallel()
	for name, mk := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := mk(t)
			acts := b.actions(t)
			secret := b.createSecret(t)
			_, err := testkit.RunAction(t, acts["aws.deactivate_key"], testkit.Env("run_test"), map[string]any{"access_key_id": b.leaked, "user_name": b.user})
			require.NoError(t, err)
			_, err = testkit.RunAction(t, acts["aws.delete_key"], testkit.Env("run_test"), map[string]any{"access_key_id": b.leaked, "user_name": b.user})
			require.NoError(t, err)

			env := rotateEnv("run_d", stepStart(), nil)
			env.Attempt = 2
			created, err := iam.NewFromConfig(b.cfg).CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: awssdk.String(b.user)})
			require.NoError(t, err)
			held := awssdk.ToString(created.AccessKey.AccessKeyId)
			value, err := json.Marshal(keySecret{UserName: b.user, AccessKeyID: held, SecretAccessKey: awssdk.ToString(created.AccessKey.SecretAccessKey)})
			require.NoError(t, err)
			_, err = secretsmanager.NewFromConfig(b.cfg).PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: awssdk.String(secret), SecretString: awssdk.String(string(value))})
			require.NoError(t, err)

			rotate := acts["aws.rotate_key"]
			_, err = rotate.Do(ctx, env, testkit.Decode(t, rotate, map[string]any{"user_name": b.user, "leaked_access_key_id": b.leaked, "secret_id": secret}))
			require.Error(t, err)
			require.Equal(t, actions.KindPermanent, actions.KindOf(err))
			require.Contains(t, err.Error(), "already has two access keys")
			require.Equal(t, map[string]string{b.other: "Active", held: "Active"}, b.keyIDs(t))
		})
	}
}

// TestRotateResumesFromTheStoredVersion: an attempt that stored the key
// as AWSPENDING and died is finished with that key, not a new one; one that
// died between moving AWSCURRENT and removing AWSPENDING is tidied up.
func TestRotateResumesFromTheStoredVersion(t *testing.T) {
	t.Parallel()
	for name, mk := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := mk(t)
			acts := b.actions(t)
			secret := b.createSecret(t)
			sm := secretsmanager.NewFromConfig(b.cfg)
			_, err := testkit.RunAction(t, acts["aws.deactivate_key"], testkit.Env("run_test"), map[string]any{"access_key_id": b.leaked, "user_name": b.user})
			require.NoError(t, err)
			_, err = testkit.RunAction(t, acts["aws.delete_key"], testkit.Env("run_test"), map[string]any{"access_key_id": b.leaked, "user_name": b.user})
			require.NoError(t, err)

			env := rotateEnv("run_e", stepStart(), nil)
			env.Attempt = 2
			created, err := iam.NewFromConfig(b.cfg).CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: awssdk.String(b.user)})
			require.NoError(t, err)
			id := awssdk.ToString(created.AccessKey.AccessKeyId)
			value, err := json.Marshal(keySecret{UserName: b.user, AccessKeyID: id, SecretAccessKey: awssdk.ToString(created.AccessKey.SecretAccessKey)})
			require.NoError(t, err)
			token := tokenFor(env.IdempotencyKey)
			_, err = sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: awssdk.String(secret), ClientRequestToken: awssdk.String(token), SecretString: awssdk.String(string(value)), VersionStages: []string{"AWSPENDING"}})
			require.NoError(t, err)

			rotate := acts["aws.rotate_key"]
			p := testkit.Decode(t, rotate, map[string]any{"user_name": b.user, "leaked_access_key_id": b.leaked, "secret_id": secret})
			plan, err := rotate.Plan(ctx, env, p)
			require.NoError(t, err)
			require.Contains(t, plan.Summary, "would test key "+id)
			require.Equal(t, id, plan.Outputs["new_access_key_id"])

			res, err := rotate.Do(ctx, env, p)
			require.NoError(t, err)
			require.Equal(t, actions.Done, res.Outcome)
			require.Equal(t, id, res.Outputs["new_access_key_id"], "the stored key is promoted, no other is made")
			require.Equal(t, map[string]string{b.other: "Active", id: "Active"}, b.keyIDs(t))
			stored, version := b.current(t, secret)
			require.Equal(t, id, stored.AccessKeyID)
			require.Equal(t, token, version)

			// Died between the two halves of the promotion.
			_, err = sm.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{SecretId: awssdk.String(secret), VersionStage: awssdk.String("AWSPENDING"), MoveToVersionId: awssdk.String(token)})
			require.NoError(t, err)
			again, err := rotate.Do(ctx, env, p)
			require.NoError(t, err)
			require.Equal(t, actions.Already, again.Outcome)
			require.Equal(t, []string{"AWSCURRENT"}, b.stages(t, secret)[token])

			// Replaced since by a later rotation: never rolled back.
			// (Put as AWSPENDING then moved, as a rotation does: moto leaves
			// AWSCURRENT on the old version when PutSecretValue asks for it.)
			const laterToken = "0f0f0f0f-1111-5222-8333-444444444444"
			_, err = sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: awssdk.String(secret), ClientRequestToken: awssdk.String(laterToken), SecretString: awssdk.String(`{"AccessKeyId":"later"}`), VersionStages: []string{"AWSPENDING"}})
			require.NoError(t, err)
			_, err = sm.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{SecretId: awssdk.String(secret), VersionStage: awssdk.String("AWSCURRENT"), MoveToVersionId: awssdk.String(laterToken), RemoveFromVersionId: awssdk.String(token)})
			require.NoError(t, err)
			later, err := rotate.Do(ctx, env, p)
			require.NoError(t, err)
			require.Equal(t, actions.Already, later.Outcome)
			require.Contains(t, later.Message, "has since been replaced")
			_, version = b.current(t, secret)
			require.Equal(t, laterToken, version, "the later version stays AWSCURRENT")
			if b.effective != nil {
				require.Equal(t, 1, b.effective("CreateAccessKey"))
			}
		})
	}
}

func TestRotatePlanChangesNothing(t *testing.T) {
	t.Parallel()
	b, sb := sandboxBackend(t)
	ctx := context.Background()
	secret := b.createSecret(t)
	rotate := b.actions(t)["aws.rotate_key"]
	env := rotateEnv("run_f", time.Now(), nil)

	_, err := rotate.Plan(ctx, env, testkit.Decode(t, rotate, map[string]any{"user_name": b.user, "leaked_access_key_id": b.leaked, "secret_id": secret}))
	require.Error(t, err, "two keys and when_two_keys: stop fails the plan as it would fail the run")
	require.Contains(t, err.Error(), "already has two access keys")

	plan, err := rotate.Plan(ctx, env, testkit.Decode(t, rotate, map[string]any{"user_name": b.user, "leaked_access_key_id": b.leaked, "secret_id": secret, "when_two_keys": "delete_leaked_if_inactive"}))
	require.NoError(t, err, "the leaked key is still Active while planning: an earlier step deactivates it")
	var ops []string
	for _, c := range plan.Calls {
		ops = append(ops, c.Service+":"+c.Operation)
		require.False(t, c.Mutates && c.Made, "%s was made while planning", c.Operation)
	}
	require.Equal(t, []string{
		"secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue", "iam:ListAccessKeys",
		"iam:DeleteAccessKey", "iam:CreateAccessKey", "secretsmanager:PutSecretValue", "sts:GetCallerIdentity",
		"secretsmanager:UpdateSecretVersionStage", "secretsmanager:UpdateSecretVersionStage", "secretsmanager:DescribeSecret",
	}, ops)
	require.Equal(t, tokenFor("run_f/rotate"), plan.Calls[5].Params["ClientRequestToken"])
	require.Contains(t, plan.Summary, "would create a new key for user ci-bot in account "+b.account)
	var effects []string
	for _, e := range plan.Effects() {
		effects = append(effects, e.String())
	}
	require.Equal(t, []string{
		"delete the leaked access key " + b.leaked + " of user ci-bot in account " + b.account + " to make room for the new one (IAM allows two keys; when_two_keys: delete_leaked_if_inactive) (irreversible)",
		"create a new access key for user ci-bot in account " + b.account,
		"store the new key in secret " + secret + " of account " + b.account + " as AWSPENDING",
		"make the new key AWSCURRENT in secret " + secret + " of account " + b.account + " (what its consumers read)",
		"clear AWSPENDING from the new version of secret " + secret,
	}, effects, "approvers are told every change, the irreversible one marked")
	require.Contains(t, plan.Outputs["secret_arn"], ":secret:"+secret)
	for _, op := range []string{"DeleteAccessKey", "CreateAccessKey", "PutSecretValue", "UpdateSecretVersionStage"} {
		require.Zero(t, sb.Count(op), op)
	}
}

// TestRotateKeepsAUsedKey: a key created after the step began that has
// been used cannot be one an interrupted attempt lost (nobody had its
// secret), so it is never deleted as an orphan.
func TestRotateKeepsAUsedKey(t *testing.T) {
	t.Parallel()
	sb := testkit.Sandbox(t, testkit.Seed(t, `
accounts:
  - id: "111122223333"
    users:
      - `+sandbox.ResponderSeedUser+`
      - name: ci-bot
        keys:
          - {id: AKIAIOSFODNN7EXAMPLE, secret: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY, status: Inactive}
          - {id: AKIAI44QH8DHBEXAMPLE, secret: je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY, created: 2099-01-01T00:00:00Z, last_used: {date: 2099-01-02T00:00:00Z, service: s3, region: us-east-1}}
    secrets:
      - {name: iam-user/ci-bot, value: '{"UserName":"ci-bot","AccessKeyId":"AKIAIOSFODNN7EXAMPLE","SecretAccessKey":"old"}'}
`))
	b := backend{cfg: sb.AWSConfig(), user: "ci-bot", leaked: "AKIAIOSFODNN7EXAMPLE", other: "AKIAI44QH8DHBEXAMPLE"}
	rotate := b.actions(t)["aws.rotate_key"]
	logs := &logBuffer{}
	env := rotateEnv("run_g", time.Now(), logs)
	env.Attempt = 2
	res, err := rotate.Do(context.Background(), env,
		testkit.Decode(t, rotate, map[string]any{"user_name": b.user, "leaked_access_key_id": b.leaked, "secret_id": "iam-user/ci-bot", "when_two_keys": "delete_leaked_if_inactive"}))
	require.NoError(t, err)
	newKey := res.Outputs["new_access_key_id"].(string)
	require.Equal(t, map[string]string{b.other: "Active", newKey: "Active"}, b.keyIDs(t), "the used key stays; the inactive leaked key made room")
	require.Contains(t, logs.String(), "has been used")
	require.Equal(t, 1, sb.EffectiveCount("DeleteAccessKey"))
	for _, c := range sb.Calls() {
		for k, v := range c.Params {
			require.False(t, strings.Contains(v, `"SecretAccessKey":"`) && !strings.Contains(v, "old"), "%s %s: %s", c.Action, k, v)
		}
	}
}

func TestRotateRefusesABadSecretAndParameters(t *testing.T) {
	t.Parallel()
	b, sb := sandboxBackend(t)
	rotate := b.actions(t)["aws.rotate_key"]
	_, err := rotate.Decode(map[string]any{"user_name": b.user, "leaked_access_key_id": b.leaked, "secret_id": "x", "when_two_keys": "delete_any"})
	require.ErrorContains(t, err, "when_two_keys")
	_, err = rotate.Decode(map[string]any{"user_name": b.user, "leaked_access_key_id": "ASIAIOSFODNN7SESSION", "secret_id": "x"})
	require.ErrorContains(t, err, "temporary")

	_, err = rotate.Do(context.Background(), rotateEnv("run_h", time.Now(), nil),
		testkit.Decode(t, rotate, map[string]any{"user_name": b.user, "leaked_access_key_id": b.leaked, "secret_id": "no-such-secret", "when_two_keys": "delete_leaked_if_inactive", "when_no_secret": "fail"}))
	require.Error(t, err)
	require.Equal(t, actions.KindPermanent, actions.KindOf(err), "%v", err)
	require.Contains(t, err.Error(), "there is no secret no-such-secret in account 111122223333")
	require.Contains(t, err.Error(), "nothing was changed")
	require.Zero(t, sb.Count("CreateAccessKey"), "no key is made for a secret that does not exist")
	_, err = rotate.Decode(map[string]any{"user_name": b.user, "leaked_access_key_id": b.leaked, "secret_id": "x", "when_no_secret": "ignore"})
	require.ErrorContains(t, err, "when_no_secret")
}
