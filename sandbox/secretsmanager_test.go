package sandbox

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"testing"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/stretchr/testify/require"
)

const seededSecretValue = `{"UserName":"ci-bot","AccessKeyId":"AKIAIOSFODNN7EXAMPLE","SecretAccessKey":"seededSecretHalfSeededSecretHalf00000000"}`

func secretsFixture(t *testing.T) fixture {
	t.Helper()
	seed, err := ParseSeed("seed.yaml", []byte(`
accounts:
  - id: "111122223333"
    users:
      - `+ResponderSeedUser+`
    secrets:
      - name: iam-user/ci-bot
        region: eu-west-1
        value: '`+seededSecretValue+`'
  - id: "444455556666"
    users:
      - name: other-responder
        keys: [{id: AKIAOTHERACCOUNTKEY1, secret: otherSecretOtherSecretOtherSecretOther12}]
`))
	require.NoError(t, err)
	sb, err := New(seed, Options{})
	require.NoError(t, err)
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	return fixture{sb: sb, url: srv.URL}
}

func (f fixture) secrets(id, secret, region string) *secretsmanager.Client {
	cfg := f.config(id, secret)
	cfg.Region = region
	return secretsmanager.NewFromConfig(cfg)
}

// TestSecretsBelongToAnAccountAndARegion: a seeded secret is found by
// name or ARN in its own account and region only.
func TestSecretsBelongToAnAccountAndARegion(t *testing.T) {
	t.Parallel()
	f := secretsFixture(t)
	ctx := context.Background()
	eu := f.secrets(ResponderKeyID, ResponderSecret, "eu-west-1")
	got, err := eu.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: awssdk.String("iam-user/ci-bot")})
	require.NoError(t, err)
	require.Equal(t, seededSecretValue, awssdk.ToString(got.SecretString))
	require.Equal(t, []string{"AWSCURRENT"}, got.VersionStages)
	require.Regexp(t, `^arn:aws:secretsmanager:eu-west-1:111122223333:secret:iam-user/ci-bot-[a-z0-9]{6}$`, awssdk.ToString(got.ARN))

	byARN, err := eu.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: got.ARN})
	require.NoError(t, err)
	require.Equal(t, map[string][]string{awssdk.ToString(got.VersionId): {"AWSCURRENT"}}, byARN.VersionIdsToStages)

	_, err = f.secrets(ResponderKeyID, ResponderSecret, "us-east-1").GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: awssdk.String("iam-user/ci-bot")})
	require.Equal(t, "ResourceNotFoundException", apiCode(t, err), "another region has no such secret")
	_, err = f.secrets(otherAcctKey, otherAcctSecret, "eu-west-1").GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: awssdk.String("iam-user/ci-bot")})
	require.Equal(t, "ResourceNotFoundException", apiCode(t, err), "another account has no such secret")

	value, version, ok := f.sb.SecretValue(accountID, "eu-west-1", "iam-user/ci-bot", "AWSCURRENT")
	require.True(t, ok)
	require.Equal(t, seededSecretValue, value)
	require.Equal(t, awssdk.ToString(got.VersionId), version)
	_, _, ok = f.sb.SecretValue(accountID, "eu-west-1", "iam-user/ci-bot", "AWSPENDING")
	require.False(t, ok)
}

func TestSecretVersionsAndStages(t *testing.T) {
	t.Parallel()
	f := secretsFixture(t)
	ctx := context.Background()
	c := f.secrets(ResponderKeyID, ResponderSecret, "eu-west-1")
	id := awssdk.String("iam-user/ci-bot")
	const pending = "22222222-3333-5444-8555-666666666666"
	_, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: id, ClientRequestToken: awssdk.String(pending), SecretString: awssdk.String("v2"), VersionStages: []string{"AWSPENDING"}})
	require.NoError(t, err)

	// By id and stage together: both must match.
	_, err = c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: id, VersionId: awssdk.String(pending), VersionStage: awssdk.String("AWSCURRENT")})
	require.Equal(t, "ResourceNotFoundException", apiCode(t, err))
	got, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: id, VersionId: awssdk.String(pending), VersionStage: awssdk.String("AWSPENDING")})
	require.NoError(t, err)
	require.Equal(t, "v2", awssdk.ToString(got.SecretString))
	_, err = c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: id, VersionId: awssdk.String("33333333-3333-5333-8333-333333333333")})
	require.Equal(t, "ResourceNotFoundException", apiCode(t, err))

	// Without stages, a new version becomes AWSCURRENT and the old one
	// AWSPREVIOUS; the AWSPENDING version keeps its label.
	put, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: id, SecretString: awssdk.String("v3")})
	require.NoError(t, err)
	require.Equal(t, []string{"AWSCURRENT"}, put.VersionStages)
	desc, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: id})
	require.NoError(t, err)
	require.Len(t, desc.VersionIdsToStages, 3)
	require.Equal(t, []string{"AWSPENDING"}, desc.VersionIdsToStages[pending])
	require.Equal(t, []string{"AWSCURRENT"}, desc.VersionIdsToStages[awssdk.ToString(put.VersionId)])
	prev, _, ok := f.sb.SecretValue(accountID, "eu-west-1", "iam-user/ci-bot", "AWSPREVIOUS")
	require.True(t, ok)
	require.Equal(t, seededSecretValue, prev)

	// A version that loses its last label is deprecated: listed only on request.
	_, err = c.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{SecretId: id, VersionStage: awssdk.String("AWSPENDING"), RemoveFromVersionId: awssdk.String(pending)})
	require.NoError(t, err)
	list, err := c.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: id})
	require.NoError(t, err)
	require.Len(t, list.Versions, 2)
	all, err := c.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: id, IncludeDeprecated: awssdk.Bool(true)})
	require.NoError(t, err)
	require.Len(t, all.Versions, 3)

	_, err = c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: id, SecretString: awssdk.String("x")})
	require.Equal(t, "ResourceExistsException", apiCode(t, err))
}

// TestSecretValuesStayOutOfTheCallLogAndState: the call log and
// /_sandbox/state show which secret was called, never its values.
func TestSecretValuesStayOutOfTheCallLogAndState(t *testing.T) {
	t.Parallel()
	f := secretsFixture(t)
	ctx := context.Background()
	c := f.secrets(ResponderKeyID, ResponderSecret, "eu-west-1")
	const written = "writtenSecretWrittenSecretWrittenSecret1"
	_, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: awssdk.String("app"), SecretString: awssdk.String(written)})
	require.NoError(t, err)
	_, err = c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: awssdk.String("app"), SecretString: awssdk.String(written + "2"), VersionStages: []string{"AWSPENDING"}})
	require.NoError(t, err)
	_, err = c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: awssdk.String("iam-user/ci-bot")})
	require.NoError(t, err)

	var seen, redacted []string
	for _, call := range f.sb.Calls() {
		if call.Service != "secretsmanager" {
			continue
		}
		seen = append(seen, call.Action)
		if v, ok := call.Params["SecretString"]; ok {
			require.Equal(t, "[REDACTED]", v, call.Action)
			redacted = append(redacted, call.Action)
		}
	}
	require.Equal(t, []string{"CreateSecret", "PutSecretValue", "GetSecretValue"}, seen)
	require.Equal(t, []string{"CreateSecret", "PutSecretValue"}, redacted)
	for _, path := range []string{"/_sandbox/calls", "/_sandbox/state"} {
		res, err := http.Get(f.url + path)
		require.NoError(t, err)
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode, path)
		for _, secret := range []string{written, "seededSecretHalf"} {
			require.NotContains(t, string(body), secret, path)
		}
	}
}

// TestAWSCLIParsesSecretVersionLists covers, with botocore, the Secrets
// Manager responses that the other CLI test does not.
func TestAWSCLIParsesSecretVersionLists(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("aws"); err != nil {
		t.Skip("the AWS CLI (aws) is not on PATH; the machine image provides it")
	}
	f := secretsFixture(t)
	aws := func(args ...string) map[string]any {
		t.Helper()
		cmd := exec.Command("aws", append(args, "--endpoint-url", f.url, "--output", "json", "--region", "eu-west-1")...)
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+ResponderKeyID, "AWS_SECRET_ACCESS_KEY="+ResponderSecret,
			"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_PAGER=")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "aws %v: %s", args, out)
		var v map[string]any
		require.NoError(t, json.Unmarshal(out, &v), string(out))
		return v
	}
	got := aws("secretsmanager", "get-secret-value", "--secret-id", "iam-user/ci-bot", "--version-stage", "AWSCURRENT")
	require.Equal(t, seededSecretValue, got["SecretString"])
	require.NotEmpty(t, got["CreatedDate"])
	put := aws("secretsmanager", "put-secret-value", "--secret-id", "iam-user/ci-bot", "--client-request-token", "44444444-5555-5666-8777-888888888888", "--secret-string", "v2", "--version-stages", "AWSPENDING")
	require.Equal(t, []any{"AWSPENDING"}, put["VersionStages"])
	list := aws("secretsmanager", "list-secret-version-ids", "--secret-id", "iam-user/ci-bot")
	require.Len(t, list["Versions"], 2)
	desc := aws("secretsmanager", "describe-secret", "--secret-id", got["ARN"].(string))
	require.Equal(t, "iam-user/ci-bot", desc["Name"])
	require.Equal(t, []any{"AWSPENDING"}, desc["VersionIdsToStages"].(map[string]any)["44444444-5555-5666-8777-888888888888"])
	byID := aws("secretsmanager", "get-secret-value", "--secret-id", "iam-user/ci-bot", "--version-id", "44444444-5555-5666-8777-888888888888")
	require.Equal(t, "v2", byID["SecretString"])
}
