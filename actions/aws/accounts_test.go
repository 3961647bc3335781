package aws

import (
	"context"
	"testing"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/internal/testkit"
	"github.com/stanchhq/stanch/sandbox"
)

const twoAccounts = `
accounts:
  - id: "111122223333"
    users:
      - ` + sandbox.ResponderSeedUser + `
  - id: "444455556666"
    users:
      - name: deploy-bot
        keys:
          - {id: AKIADEPLOYBOTKEY0001, secret: deployBotSecretDeployBotSecretDeployBot1}
          - {id: AKIADEPLOYBOTKEY0002, secret: deployBotSecretDeployBotSecretDeployBot2}
    roles:
      - name: stanch-responder
        trusted_accounts: ["111122223333"]
        external_id: ext-4f1c9d2a
`

func TestActsInOtherAccountsThroughTheResponseRole(t *testing.T) {
	t.Parallel()
	sb := testkit.Sandbox(t, testkit.Seed(t, twoAccounts))
	base := sb.AWSConfig()

	p := NewProvider(ProviderOptions{
		Config: func(context.Context, string) (awssdk.Config, error) { return base, nil },
		Roles:  &ResponseRoles{ARN: "arn:aws:iam::{account}:role/stanch-responder", ExternalID: "ext-4f1c9d2a"},
	})
	acts := map[string]actions.Action{}
	for _, a := range Actions(p) {
		acts[a.Spec().Name] = a
	}
	id, err := testkit.RunAction(t, acts["aws.identify_key"], testkit.Env("run_test"), map[string]any{"access_key_id": "AKIADEPLOYBOTKEY0001"})
	require.NoError(t, err)
	require.Equal(t, "444455556666", id.Outputs["account"])
	require.Equal(t, "deploy-bot", id.Outputs["user_name"])

	res, err := testkit.RunAction(t, acts["aws.deactivate_key"], testkit.Env("run_test"), map[string]any{"access_key_id": "AKIADEPLOYBOTKEY0001", "user_name": "deploy-bot", "account": "444455556666"})
	require.NoError(t, err)
	require.Equal(t, actions.Done, res.Outcome)
	status, _ := sb.KeyStatus("444455556666", "AKIADEPLOYBOTKEY0001")
	require.Equal(t, "Inactive", status)
	status, _ = sb.KeyStatus("444455556666", "AKIADEPLOYBOTKEY0002")
	require.Equal(t, "Active", status)

	// The role's credentials are cached: one AssumeRole for both actions.
	require.Equal(t, 1, sb.Count("AssumeRole"))
	for _, c := range sb.Calls() {
		if c.Action == "UpdateAccessKey" {
			require.Equal(t, "444455556666", c.Account, "the change is made by the role in the key's account")
		}
	}

	// A wrong external id is refused by the role's trust policy.
	bad := NewProvider(ProviderOptions{
		Config: func(context.Context, string) (awssdk.Config, error) { return base, nil },
		Roles:  &ResponseRoles{ARN: "arn:aws:iam::{account}:role/stanch-responder", ExternalID: "wrong"},
	})
	_, err = testkit.RunAction(t, Actions(bad)[0], testkit.Env("run_test"), map[string]any{"access_key_id": "AKIADEPLOYBOTKEY0002"})
	require.Error(t, err)
	require.Contains(t, err.Error(), "AccessDenied")
}

func TestResponseRolesResolve(t *testing.T) {
	t.Parallel()
	r := &ResponseRoles{ARN: "arn:aws:iam::{account}:role/stanch-responder", ExternalID: "ext", Accounts: map[string]ResponseRole{
		"999988887777": {ARN: "arn:aws:iam::999988887777:role/ir"},
	}}
	got, ok := r.roleFor("444455556666")
	require.True(t, ok)
	require.Equal(t, ResponseRole{ARN: "arn:aws:iam::444455556666:role/stanch-responder", ExternalID: "ext"}, got)
	got, ok = r.roleFor("999988887777")
	require.True(t, ok)
	require.Equal(t, ResponseRole{ARN: "arn:aws:iam::999988887777:role/ir", ExternalID: "ext"}, got)
	_, ok = (*ResponseRoles)(nil).roleFor("444455556666")
	require.False(t, ok)
}
