package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"slices"
	"testing"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/stretchr/testify/require"
)

// TestAWSCLIParsesTheRestOfTheResponses covers, with botocore, every other
// sandbox response the actions rely on: key creation and deletion, role
// policies, managed policy attachments, AssumeRole, GetSessionToken and
// Secrets Manager.
func TestAWSCLIParsesTheRestOfTheResponses(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("aws"); err != nil {
		t.Skip("the AWS CLI (aws) is not on PATH; the machine image provides it")
	}
	f := setup(t)
	run := func(key, secret string, args ...string) map[string]any {
		t.Helper()
		cmd := exec.Command("aws", append(args, "--endpoint-url", f.url, "--output", "json", "--region", "us-east-1")...)
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+key, "AWS_SECRET_ACCESS_KEY="+secret,
			"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_PAGER=")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "aws %v: %s", args, out)
		if len(bytes.TrimSpace(out)) == 0 {
			return nil
		}
		var v map[string]any
		require.NoError(t, json.Unmarshal(out, &v), string(out))
		return v
	}
	aws := func(args ...string) map[string]any { return run(ResponderKeyID, ResponderSecret, args...) }

	aws("iam", "delete-access-key", "--user-name", "ci-bot", "--access-key-id", otherKey)
	created := aws("iam", "create-access-key", "--user-name", "ci-bot")["AccessKey"].(map[string]any)
	require.Equal(t, "Active", created["Status"])
	require.Len(t, created["SecretAccessKey"], 40)

	aws("iam", "put-role-policy", "--role-name", "app-server", "--policy-name", "AWSRevokeOlderSessions", "--policy-document", `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":["*"],"Resource":["*"]}]}`)
	role := aws("iam", "get-role-policy", "--role-name", "app-server", "--policy-name", "AWSRevokeOlderSessions")
	require.Equal(t, "app-server", role["RoleName"])

	aws("iam", "attach-user-policy", "--user-name", "ci-bot", "--policy-arn", "arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV2")
	attached := aws("iam", "list-attached-user-policies", "--user-name", "ci-bot")["AttachedPolicies"].([]any)
	require.Equal(t, "AWSCompromisedKeyQuarantineV2", attached[0].(map[string]any)["PolicyName"])
	aws("iam", "detach-user-policy", "--user-name", "ci-bot", "--policy-arn", "arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV2")

	assumed := aws("sts", "assume-role", "--role-arn", "arn:aws:iam::444455556666:role/stanch-responder", "--role-session-name", "stanch", "--external-id", "ext-4f1c9d2a")
	require.Regexp(t, `^ASIA`, assumed["Credentials"].(map[string]any)["AccessKeyId"])
	session := run(leakedKey, leakedSecret, "sts", "get-session-token")
	require.NotEmpty(t, session["Credentials"].(map[string]any)["SessionToken"])

	aws("secretsmanager", "create-secret", "--name", "iam-user/ci-bot", "--secret-string", `{"AccessKeyId":"old"}`)
	put := aws("secretsmanager", "put-secret-value", "--secret-id", "iam-user/ci-bot", "--client-request-token", "11111111-2222-5333-8444-555555555555",
		"--secret-string", `{"AccessKeyId":"new"}`, "--version-stages", "AWSPENDING")
	require.Equal(t, "11111111-2222-5333-8444-555555555555", put["VersionId"])
	desc := aws("secretsmanager", "describe-secret", "--secret-id", "iam-user/ci-bot")
	require.Len(t, desc["VersionIdsToStages"], 2)
	aws("secretsmanager", "update-secret-version-stage", "--secret-id", "iam-user/ci-bot", "--version-stage", "AWSCURRENT",
		"--move-to-version-id", "11111111-2222-5333-8444-555555555555", "--remove-from-version-id", currentVersion(t, desc))
	got := aws("secretsmanager", "get-secret-value", "--secret-id", "iam-user/ci-bot")
	require.Equal(t, `{"AccessKeyId":"new"}`, got["SecretString"])
	require.Contains(t, got["VersionStages"], "AWSCURRENT")
}

func currentVersion(t *testing.T, desc map[string]any) string {
	t.Helper()
	for id, stages := range desc["VersionIdsToStages"].(map[string]any) {
		for _, s := range stages.([]any) {
			if s == "AWSCURRENT" {
				return id
			}
		}
	}
	t.Fatal("no AWSCURRENT version")
	return ""
}

func TestSecretsManagerTokensAndStages(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	c := secretsmanager.NewFromConfig(f.config(ResponderKeyID, ResponderSecret))
	_, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: awssdk.String("app"), SecretString: awssdk.String("v1")})
	require.NoError(t, err)
	put := func(token, value string) error {
		_, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: awssdk.String("app"), ClientRequestToken: awssdk.String(token), SecretString: awssdk.String(value), VersionStages: []string{"AWSPENDING"}})
		return err
	}
	const token = "aaaaaaaa-bbbb-5ccc-8ddd-eeeeeeeeeeee"
	require.NoError(t, put(token, "v2"))
	require.NoError(t, put(token, "v2"), "the same token and value is a no-op")
	require.Equal(t, "ResourceExistsException", apiCode(t, put(token, "v3")))
	require.Equal(t, 1, f.sb.EffectiveCount("PutSecretValue"))

	desc, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: awssdk.String("app")})
	require.NoError(t, err)
	var current string
	for id, stages := range desc.VersionIdsToStages {
		if slices.Contains(stages, "AWSCURRENT") {
			current = id
		}
	}
	_, err = c.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{SecretId: awssdk.String("app"), VersionStage: awssdk.String("AWSCURRENT"), MoveToVersionId: awssdk.String(token)})
	require.Equal(t, "InvalidParameterException", apiCode(t, err), "moving AWSCURRENT must name the version it leaves")
	_, err = c.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{SecretId: awssdk.String("app"), VersionStage: awssdk.String("AWSCURRENT"), MoveToVersionId: awssdk.String(token), RemoveFromVersionId: awssdk.String(current)})
	require.NoError(t, err)
	value, id, ok := f.sb.SecretValue(accountID, "us-east-1", "app", "AWSCURRENT")
	require.True(t, ok)
	require.Equal(t, "v2", value)
	require.Equal(t, token, id)
	prev, _, ok := f.sb.SecretValue(accountID, "us-east-1", "app", "AWSPREVIOUS")
	require.True(t, ok)
	require.Equal(t, "v1", prev, "the old AWSCURRENT becomes AWSPREVIOUS")
	_, err = c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: awssdk.String("nope")})
	require.Equal(t, "ResourceNotFoundException", apiCode(t, err))
}
