package deploy

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/stretchr/testify/require"
)

// deployed is a stack moto created: its outputs and its resources'
// physical ids by logical id.
type deployed struct {
	name      string
	outputs   map[string]string
	resources map[string]string
}

// startStack asks CloudFormation to create a stack from a template file
// with parameters.
func startStack(ctx context.Context, t *testing.T, cfg aws.Config, name, template string, params map[string]string) error {
	t.Helper()
	body, err := os.ReadFile(template)
	require.NoError(t, err)
	var ps []cftypes.Parameter
	for k, v := range params {
		ps = append(ps, cftypes.Parameter{ParameterKey: aws.String(k), ParameterValue: aws.String(v)})
	}
	_, err = cloudformation.NewFromConfig(cfg).CreateStack(ctx, &cloudformation.CreateStackInput{
		StackName:    aws.String(name),
		TemplateBody: aws.String(string(body)),
		Parameters:   ps,
		Capabilities: []cftypes.Capability{cftypes.CapabilityCapabilityIam, cftypes.CapabilityCapabilityNamedIam},
	})
	return err
}

// createStack creates a stack, waits for it to be created and reads back
// its outputs and resources.
func createStack(ctx context.Context, t *testing.T, cfg aws.Config, name, template string, params map[string]string) deployed {
	t.Helper()
	require.NoError(t, startStack(ctx, t, cfg, name, template, params), "create stack %s", name)
	return deployedStack(ctx, t, cfg, name)
}

// deployedStack waits for a stack to be created and reads it back.
func deployedStack(ctx context.Context, t *testing.T, cfg aws.Config, name string) deployed {
	t.Helper()
	cf := cloudformation.NewFromConfig(cfg)
	st := waitForStack(ctx, t, cf, name)
	require.Equal(t, cftypes.StackStatusCreateComplete, st.StackStatus, aws.ToString(st.StackStatusReason))
	d := deployed{name: name, outputs: map[string]string{}, resources: map[string]string{}}
	for _, o := range st.Outputs {
		d.outputs[aws.ToString(o.OutputKey)] = aws.ToString(o.OutputValue)
	}
	res, err := cf.DescribeStackResources(ctx, &cloudformation.DescribeStackResourcesInput{StackName: aws.String(name)})
	require.NoError(t, err)
	for _, r := range res.StackResources {
		// moto lists the resources it skipped without a logical id.
		if r.LogicalResourceId != nil {
			d.resources[aws.ToString(r.LogicalResourceId)] = aws.ToString(r.PhysicalResourceId)
		}
	}
	return d
}

// waitForStack polls until the stack is no longer in progress (moto
// creates stacks before it answers; AWS does not), boundedly.
func waitForStack(ctx context.Context, t *testing.T, cf *cloudformation.Client, name string) cftypes.Stack {
	t.Helper()
	for range 120 {
		out, err := cf.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(name)})
		require.NoError(t, err)
		require.Len(t, out.Stacks, 1)
		if st := out.Stacks[0]; !slices.Contains([]cftypes.StackStatus{cftypes.StackStatusCreateInProgress, cftypes.StackStatusUpdateInProgress}, st.StackStatus) {
			return st
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("stack %s is still in progress after a minute", name)
	return cftypes.Stack{}
}

// roleDocuments reads back a role: its ARN, trust policy and inline
// policies by name, as JSON values.
func roleDocuments(ctx context.Context, t *testing.T, c *iam.Client, name string) (arn string, trust any, inline map[string]any) {
	t.Helper()
	role, err := c.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(name)})
	require.NoError(t, err)
	inline = map[string]any{}
	names, err := c.ListRolePolicies(ctx, &iam.ListRolePoliciesInput{RoleName: aws.String(name)})
	require.NoError(t, err)
	for _, p := range names.PolicyNames {
		doc, err := c.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String(name), PolicyName: aws.String(p)})
		require.NoError(t, err)
		inline[p] = policyJSON(t, aws.ToString(doc.PolicyDocument))
	}
	return aws.ToString(role.Role.Arn), policyJSON(t, aws.ToString(role.Role.AssumeRolePolicyDocument)), inline
}
