package deploy

import (
	"fmt"
	"os"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/stretchr/testify/require"
)

const (
	stanchAccount   = "111122223333"
	stanchPrincipal = "arn:aws:iam::111122223333:role/stanch"
	externalID      = "5d2c4f7e-9b1a-4c3d-8e2f-stanch-test"
)

// trustPolicy is the trust policy the role must have: principal may
// assume it, presenting the external id.
func trustPolicy(principal string) string {
	return fmt.Sprintf(`{"Version": "2012-10-17", "Statement": [{"Sid": "Stanch", "Effect": "Allow",
		"Principal": {"AWS": %q}, "Action": "sts:AssumeRole",
		"Condition": {"StringEquals": {"sts:ExternalId": %q}}}]}`, principal, externalID)
}

func TestResponseRoleStack(t *testing.T) {
	t.Parallel()
	cfg := awsConfig(t, "eu-central-1")
	ctx := testContext(t)
	c := iam.NewFromConfig(cfg)
	policy := mustJSON(t, stanchPermissions(t))

	// Trusting stanch's role, with a name and session length of its own.
	stk := createStack(ctx, t, cfg, "stanch-role-principal", roleTemplate, map[string]string{
		"StanchAccountId": stanchAccount, "StanchPrincipalArn": stanchPrincipal, "ExternalId": externalID,
		"RoleName": "stanch-responder-principal", "MaxSessionDuration": "7200",
	})
	arn, trust, inline := roleDocuments(ctx, t, c, "stanch-responder-principal")
	require.Equal(t, "arn:aws:iam::"+motoAccount+":role/stanch-responder-principal", arn)
	require.Equal(t, arn, stk.outputs["RoleArn"])
	require.JSONEq(t, trustPolicy(stanchPrincipal), mustJSON(t, trust))
	require.Len(t, inline, 1)
	require.JSONEq(t, policy, mustJSON(t, inline["stanch-responder"]), "the inline policy is stanch permissions' output")
	role, err := c.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String("stanch-responder-principal")})
	require.NoError(t, err)
	require.Equal(t, int32(7200), aws.ToInt32(role.Role.MaxSessionDuration))

	// Trusting stanch's account as a whole, when no principal is given.
	createStack(ctx, t, cfg, "stanch-role-account", roleTemplate, map[string]string{
		"StanchAccountId": stanchAccount, "ExternalId": externalID, "RoleName": "stanch-responder-account",
	})
	_, trust, inline = roleDocuments(ctx, t, c, "stanch-responder-account")
	require.JSONEq(t, trustPolicy("arn:aws:iam::"+stanchAccount+":root"), mustJSON(t, trust))
	require.JSONEq(t, policy, mustJSON(t, inline["stanch-responder"]))
}

// TestResponseRoleStackSet deploys the role the way docs/deploy.md does:
// a service-managed StackSet, with the same parameters for every account,
// into an organisational unit of two member accounts. Then, like stanch,
// it assumes the role in each account with the external id and reads it
// back there. (moto records the trust policy but does not enforce it, nor
// the external id: what is checked is what each account holds.)
func TestResponseRoleStackSet(t *testing.T) {
	t.Parallel()
	cfg := awsConfig(t, "us-east-1")
	ctx := testContext(t)
	org := organizations.NewFromConfig(cfg)
	_, err := org.CreateOrganization(ctx, &organizations.CreateOrganizationInput{})
	require.NoError(t, err)
	roots, err := org.ListRoots(ctx, &organizations.ListRootsInput{})
	require.NoError(t, err)
	root := aws.ToString(roots.Roots[0].Id)
	ou, err := org.CreateOrganizationalUnit(ctx, &organizations.CreateOrganizationalUnitInput{ParentId: aws.String(root), Name: aws.String("workloads")})
	require.NoError(t, err)
	var members []string
	for _, name := range []string{"payments", "analytics"} {
		acct, err := org.CreateAccount(ctx, &organizations.CreateAccountInput{AccountName: aws.String(name), Email: aws.String(name + "@example.com")})
		require.NoError(t, err)
		id := aws.ToString(acct.CreateAccountStatus.AccountId)
		require.NotEmpty(t, id, "moto creates accounts at once")
		_, err = org.MoveAccount(ctx, &organizations.MoveAccountInput{AccountId: aws.String(id), SourceParentId: aws.String(root), DestinationParentId: ou.OrganizationalUnit.Id})
		require.NoError(t, err)
		members = append(members, id)
	}

	body, err := os.ReadFile(roleTemplate)
	require.NoError(t, err)
	cf := cloudformation.NewFromConfig(cfg)
	_, err = cf.CreateStackSet(ctx, &cloudformation.CreateStackSetInput{
		StackSetName: aws.String("stanch-response-role"),
		TemplateBody: aws.String(string(body)),
		Parameters: []cftypes.Parameter{
			{ParameterKey: aws.String("StanchAccountId"), ParameterValue: aws.String(stanchAccount)},
			{ParameterKey: aws.String("StanchPrincipalArn"), ParameterValue: aws.String(stanchPrincipal)},
			{ParameterKey: aws.String("ExternalId"), ParameterValue: aws.String(externalID)},
		},
		Capabilities:    []cftypes.Capability{cftypes.CapabilityCapabilityNamedIam},
		PermissionModel: cftypes.PermissionModelsServiceManaged,
		AutoDeployment:  &cftypes.AutoDeployment{Enabled: aws.Bool(true), RetainStacksOnAccountRemoval: aws.Bool(false)},
	})
	require.NoError(t, err)
	_, err = cf.CreateStackInstances(ctx, &cloudformation.CreateStackInstancesInput{
		StackSetName:      aws.String("stanch-response-role"),
		DeploymentTargets: &cftypes.DeploymentTargets{OrganizationalUnitIds: []string{aws.ToString(ou.OrganizationalUnit.Id)}},
		Regions:           []string{"us-east-1"},
	})
	require.NoError(t, err)
	instances, err := cf.ListStackInstances(ctx, &cloudformation.ListStackInstancesInput{StackSetName: aws.String("stanch-response-role")})
	require.NoError(t, err)
	var accounts []string
	for _, in := range instances.Summaries {
		accounts = append(accounts, aws.ToString(in.Account))
	}
	slices.Sort(accounts)
	slices.Sort(members)
	require.Equal(t, members, accounts, "one instance per member account, in one region (IAM is global)")

	policy := mustJSON(t, stanchPermissions(t))
	for _, account := range members {
		// As stanch reaches a member account: AssumeRole with the external id.
		roleARN := "arn:aws:iam::" + account + ":role/stanch-responder"
		creds, err := sts.NewFromConfig(cfg).AssumeRole(ctx, &sts.AssumeRoleInput{
			RoleArn: aws.String(roleARN), RoleSessionName: aws.String("stanch"), ExternalId: aws.String(externalID),
		})
		require.NoError(t, err)
		member := cfg.Copy()
		member.Credentials = credentials.NewStaticCredentialsProvider(aws.ToString(creds.Credentials.AccessKeyId), aws.ToString(creds.Credentials.SecretAccessKey), aws.ToString(creds.Credentials.SessionToken))
		who, err := sts.NewFromConfig(member).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		require.NoError(t, err)
		require.Equal(t, account, aws.ToString(who.Account))

		arn, trust, inline := roleDocuments(ctx, t, iam.NewFromConfig(member), "stanch-responder")
		require.Equal(t, roleARN, arn)
		require.JSONEq(t, trustPolicy(stanchPrincipal), mustJSON(t, trust))
		require.JSONEq(t, policy, mustJSON(t, inline["stanch-responder"]), "account %s", account)
	}
}
