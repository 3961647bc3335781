package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/stretchr/testify/require"
)

const (
	quarantineV2 = "arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV2"
	readOnly     = "arn:aws:iam::aws:policy/ReadOnlyAccess"
)

// managedSeedYAML seeds customer policies and attachments: ci-bot starts
// with ReadOnlyAccess, app-server with the customer policy app-data.
const managedSeedYAML = `
accounts:
  - id: "111122223333"
    customer_policies:
      - {name: app-data, document: '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}'}
      - {name: extra-1}
      - {name: extra-2}
      - {name: extra-3}
      - {name: extra-4}
      - {name: extra-5}
    users:
      - ` + ResponderSeedUser + `
      - name: ci-bot
        managed_policies: ["arn:aws:iam::aws:policy/ReadOnlyAccess"]
    roles:
      - name: app-server
        managed_policies: ["arn:aws:iam::111122223333:policy/app-data"]
  - id: "444455556666"
    customer_policies: [{name: theirs}]
    users:
      - name: other-responder
        keys: [{id: AKIAOTHERACCOUNTKEY1, secret: otherSecretOtherSecretOtherSecretOther12}]
`

func managedSetup(t *testing.T) (fixture, *iam.Client) {
	t.Helper()
	seed, err := ParseSeed("managed.yaml", []byte(managedSeedYAML))
	require.NoError(t, err)
	sb, err := New(seed, Options{})
	require.NoError(t, err)
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	f := fixture{sb: sb, url: srv.URL}
	return f, f.iam(ResponderKeyID, ResponderSecret)
}

func attachedARNs(t *testing.T, c *iam.Client, user, role string) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	if role != "" {
		res, err := c.ListAttachedRolePolicies(ctx, &iam.ListAttachedRolePoliciesInput{RoleName: aws.String(role)})
		require.NoError(t, err)
		for _, p := range res.AttachedPolicies {
			out = append(out, aws.ToString(p.PolicyArn))
		}
		return out
	}
	res, err := c.ListAttachedUserPolicies(ctx, &iam.ListAttachedUserPoliciesInput{UserName: aws.String(user)})
	require.NoError(t, err)
	for _, p := range res.AttachedPolicies {
		out = append(out, aws.ToString(p.PolicyArn))
	}
	return out
}

func TestManagedPolicyAttachments(t *testing.T) {
	t.Parallel()
	f, c := managedSetup(t)
	ctx := context.Background()
	require.Equal(t, []string{readOnly}, attachedARNs(t, c, "ci-bot", ""), "seeded attachment")
	require.Equal(t, []string{"arn:aws:iam::111122223333:policy/app-data"}, attachedARNs(t, c, "", "app-server"))

	_, err := c.AttachUserPolicy(ctx, &iam.AttachUserPolicyInput{UserName: aws.String("ci-bot"), PolicyArn: aws.String(quarantineV2)})
	require.NoError(t, err)
	_, err = c.AttachUserPolicy(ctx, &iam.AttachUserPolicyInput{UserName: aws.String("ci-bot"), PolicyArn: aws.String(quarantineV2)})
	require.NoError(t, err, "attaching an attached policy succeeds")
	require.Equal(t, 2, f.sb.Count("AttachUserPolicy"))
	require.Equal(t, 1, f.sb.EffectiveCount("AttachUserPolicy"), "the second attach changed nothing")
	require.Equal(t, []string{readOnly, quarantineV2}, attachedARNs(t, c, "ci-bot", ""))

	got, err := c.GetPolicy(ctx, &iam.GetPolicyInput{PolicyArn: aws.String(quarantineV2)})
	require.NoError(t, err)
	require.Equal(t, "AWSCompromisedKeyQuarantineV2", aws.ToString(got.Policy.PolicyName))
	require.Equal(t, int32(1), aws.ToInt32(got.Policy.AttachmentCount))
	require.Regexp(t, `^ANPA[A-Z2-7]{17}$`, aws.ToString(got.Policy.PolicyId))
	again, err := c.GetPolicy(ctx, &iam.GetPolicyInput{PolicyArn: aws.String(quarantineV2)})
	require.NoError(t, err)
	require.Equal(t, aws.ToString(got.Policy.PolicyId), aws.ToString(again.Policy.PolicyId), "policy ids are stable")

	_, err = c.DetachUserPolicy(ctx, &iam.DetachUserPolicyInput{UserName: aws.String("ci-bot"), PolicyArn: aws.String(quarantineV2)})
	require.NoError(t, err)
	_, err = c.DetachUserPolicy(ctx, &iam.DetachUserPolicyInput{UserName: aws.String("ci-bot"), PolicyArn: aws.String(quarantineV2)})
	require.Equal(t, "NoSuchEntity", apiCode(t, err), "detaching a detached policy")
	require.Equal(t, 1, f.sb.EffectiveCount("DetachUserPolicy"))
	require.Equal(t, []string{readOnly}, attachedARNs(t, c, "ci-bot", ""))

	for _, arn := range []string{
		"arn:aws:iam::aws:policy/NoSuchPolicy",
		"arn:aws:iam::111122223333:policy/not-seeded",
		"arn:aws:iam::444455556666:policy/theirs", // another account's customer policy
	} {
		_, err = c.AttachUserPolicy(ctx, &iam.AttachUserPolicyInput{UserName: aws.String("ci-bot"), PolicyArn: aws.String(arn)})
		require.Equal(t, "NoSuchEntity", apiCode(t, err), arn)
		_, err = c.GetPolicy(ctx, &iam.GetPolicyInput{PolicyArn: aws.String(arn)})
		require.Equal(t, "NoSuchEntity", apiCode(t, err), arn)
	}
	_, err = c.AttachRolePolicy(ctx, &iam.AttachRolePolicyInput{RoleName: aws.String("no-such-role"), PolicyArn: aws.String(quarantineV2)})
	require.Equal(t, "NoSuchEntity", apiCode(t, err))
	_, err = c.ListAttachedUserPolicies(ctx, &iam.ListAttachedUserPoliciesInput{UserName: aws.String("nobody")})
	require.Equal(t, "NoSuchEntity", apiCode(t, err))
}

func TestManagedPolicyQuota(t *testing.T) {
	t.Parallel()
	f, c := managedSetup(t)
	ctx := context.Background()
	// Eleven attachable policies: six AWS managed ones and the five extras.
	arns := append([]string{}, awsManagedPolicies...)
	for i := 1; i <= 5; i++ {
		arns = append(arns, fmt.Sprintf("arn:aws:iam::111122223333:policy/extra-%d", i))
	}
	require.Len(t, arns, maxManagedPolicies+1)
	for _, kind := range []string{"user", "role"} {
		attach := func(arn string) error {
			if kind == "role" {
				_, err := c.AttachRolePolicy(ctx, &iam.AttachRolePolicyInput{RoleName: aws.String("app-server"), PolicyArn: aws.String(arn)})
				return err
			}
			_, err := c.AttachUserPolicy(ctx, &iam.AttachUserPolicyInput{UserName: aws.String("stanch-responder"), PolicyArn: aws.String(arn)})
			return err
		}
		// app-server already holds app-data, so it reaches the quota one
		// policy earlier.
		limit := maxManagedPolicies
		if kind == "role" {
			limit--
		}
		for _, arn := range arns[:limit] {
			require.NoError(t, attach(arn), "%s %s", kind, arn)
		}
		err := attach(arns[limit])
		require.Equal(t, "LimitExceeded", apiCode(t, err), kind)
		quota := map[string]string{"user": "PoliciesPerUser", "role": "PoliciesPerRole"}[kind]
		require.ErrorContains(t, err, "Cannot exceed quota for "+quota+": 10")
		require.NoError(t, attach(arns[0]), "re-attaching an attached policy at the quota is not refused")
	}
	require.Equal(t, 0, f.sb.EffectiveCount("GetPolicy"))
}

func TestSeedRejectsUnknownManagedPolicies(t *testing.T) {
	t.Parallel()
	base := `
accounts:
  - id: "111122223333"
    customer_policies: [{name: mine}]
    users:
      - name: stanch-responder
        keys: [{id: ` + ResponderKeyID + `, secret: x}]
        managed_policies: [%s]
`
	for arn, want := range map[string]string{
		`"arn:aws:iam::aws:policy/Unknown"`:                                                  "neither an AWS managed policy",
		`"arn:aws:iam::444455556666:policy/mine"`:                                            "neither an AWS managed policy",
		`"arn:aws:iam::aws:policy/ReadOnlyAccess", "arn:aws:iam::aws:policy/ReadOnlyAccess"`: "listed twice",
	} {
		_, err := ParseSeed("bad.yaml", []byte(fmt.Sprintf(base, arn)))
		require.ErrorContains(t, err, want, arn)
	}
	_, err := ParseSeed("good.yaml", []byte(fmt.Sprintf(base, `"arn:aws:iam::111122223333:policy/mine"`)))
	require.NoError(t, err)
}

// TestAWSCLIParsesManagedPolicyResponses checks the managed-policy answers
// with botocore, an independent parser of the IAM Query protocol.
func TestAWSCLIParsesManagedPolicyResponses(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("aws"); err != nil {
		t.Skip("the AWS CLI (aws) is not on PATH; the machine image provides it")
	}
	f, _ := managedSetup(t)
	run := func(args ...string) ([]byte, error) {
		cmd := exec.Command("aws", append(args, "--endpoint-url", f.url, "--output", "json", "--region", "us-east-1")...)
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+ResponderKeyID, "AWS_SECRET_ACCESS_KEY="+ResponderSecret,
			"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_PAGER=", "AWS_MAX_ATTEMPTS=1")
		return cmd.CombinedOutput()
	}
	awsCLI := func(args ...string) map[string]any {
		t.Helper()
		out, err := run(args...)
		require.NoError(t, err, "aws %v: %s", args, out)
		if len(bytes.TrimSpace(out)) == 0 {
			return nil
		}
		var v map[string]any
		require.NoError(t, json.Unmarshal(out, &v), string(out))
		return v
	}

	awsCLI("iam", "attach-role-policy", "--role-name", "app-server", "--policy-arn", quarantineV2)
	attached := awsCLI("iam", "list-attached-role-policies", "--role-name", "app-server")["AttachedPolicies"].([]any)
	require.Len(t, attached, 2)
	require.Equal(t, map[string]any{"PolicyName": "AWSCompromisedKeyQuarantineV2", "PolicyArn": quarantineV2}, attached[1])

	policy := awsCLI("iam", "get-policy", "--policy-arn", quarantineV2)["Policy"].(map[string]any)
	require.Equal(t, "AWSCompromisedKeyQuarantineV2", policy["PolicyName"])
	require.Equal(t, quarantineV2, policy["Arn"])
	require.Equal(t, "v1", policy["DefaultVersionId"])
	require.Equal(t, true, policy["IsAttachable"])
	require.EqualValues(t, 1, policy["AttachmentCount"])
	require.Regexp(t, `^2024-01-01T00:00:00(Z|\+00:00)$`, policy["CreateDate"])

	custom := awsCLI("iam", "get-policy", "--policy-arn", "arn:aws:iam::111122223333:policy/app-data")["Policy"].(map[string]any)
	require.Equal(t, "app-data", custom["PolicyName"])

	awsCLI("iam", "detach-role-policy", "--role-name", "app-server", "--policy-arn", quarantineV2)
	users := awsCLI("iam", "list-attached-user-policies", "--user-name", "ci-bot")["AttachedPolicies"].([]any)
	require.Equal(t, "ReadOnlyAccess", users[0].(map[string]any)["PolicyName"])
	empty := awsCLI("iam", "list-attached-user-policies", "--user-name", "stanch-responder")
	require.Equal(t, []any{}, empty["AttachedPolicies"])

	out, err := run("iam", "attach-user-policy", "--user-name", "ci-bot", "--policy-arn", "arn:aws:iam::aws:policy/NoSuchPolicy")
	require.Error(t, err)
	require.Contains(t, string(out), "(NoSuchEntity) when calling the AttachUserPolicy operation: Policy arn:aws:iam::aws:policy/NoSuchPolicy does not exist or is not attachable.")
	out, err = run("iam", "detach-user-policy", "--user-name", "ci-bot", "--policy-arn", quarantineV2)
	require.Error(t, err)
	require.Contains(t, string(out), "(NoSuchEntity) when calling the DetachUserPolicy operation")
}
