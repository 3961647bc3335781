package aws

import (
	"context"
	"testing"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/internal/testkit"
)

// attached lists the managed policies of a user (or of role, when set).
func (b backend) attached(t *testing.T, role string) []string {
	t.Helper()
	c, ctx := iam.NewFromConfig(b.cfg), context.Background()
	var policies []iamtypes.AttachedPolicy
	if role != "" {
		out, err := c.ListAttachedRolePolicies(ctx, &iam.ListAttachedRolePoliciesInput{RoleName: awssdk.String(role)})
		require.NoError(t, err)
		policies = out.AttachedPolicies
	} else {
		out, err := c.ListAttachedUserPolicies(ctx, &iam.ListAttachedUserPoliciesInput{UserName: awssdk.String(b.user)})
		require.NoError(t, err)
		policies = out.AttachedPolicies
	}
	arns := []string{}
	for _, p := range policies {
		arns = append(arns, awssdk.ToString(p.PolicyArn))
	}
	return arns
}

// inline lists the inline policy names of a user (or of role, when set).
func (b backend) inline(t *testing.T, role string) []string {
	t.Helper()
	c, ctx := iam.NewFromConfig(b.cfg), context.Background()
	if role != "" {
		out, err := c.ListRolePolicies(ctx, &iam.ListRolePoliciesInput{RoleName: awssdk.String(role)})
		require.NoError(t, err)
		return append([]string{}, out.PolicyNames...)
	}
	out, err := c.ListUserPolicies(ctx, &iam.ListUserPoliciesInput{UserName: awssdk.String(b.user)})
	require.NoError(t, err)
	return append([]string{}, out.PolicyNames...)
}

func TestQuarantineAndRelease(t *testing.T) {
	t.Parallel()
	for name, mk := range backends(t) {
		for _, mode := range []string{"managed", "inline"} {
			for _, kind := range []string{"user", "role"} {
				t.Run(name+"/"+mode+"/"+kind, func(t *testing.T) {
					t.Parallel()
					b := mk(t)
					acts := b.actions(t)
					with := map[string]any{"user_name": b.user}
					principal, role, Kind := "user/"+b.user, "", "User"
					if kind == "role" {
						role = b.role(t)
						with = map[string]any{"role_name": role}
						principal, Kind = "role/"+role, "Role"
					}
					if mode == "inline" {
						with["mode"] = "inline"
					}
					policy := map[string]string{"managed": "arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV2", "inline": "StanchQuarantine"}[mode]

					res, err := testkit.RunAction(t, acts["aws.quarantine"], testkit.Env("run_test"), with)
					require.NoError(t, err)
					require.Equal(t, actions.Done, res.Outcome, res.Message)
					require.Equal(t, map[string]any{"principal": principal, "policy": policy, "changed": true}, res.Outputs)
					if mode == "managed" {
						require.Equal(t, []string{policy}, b.attached(t, role))
					} else {
						require.Equal(t, []string{policy}, b.inline(t, role))
						if role == "" {
							require.JSONEq(t, denyAllDocument, b.userPolicy(t, policy))
						} else {
							require.JSONEq(t, denyAllDocument, b.rolePolicy(t, role, policy))
						}
					}

					again, err := testkit.RunAction(t, acts["aws.quarantine"], testkit.Env("run_test"), with)
					require.NoError(t, err)
					require.Equal(t, actions.Already, again.Outcome)
					require.Equal(t, false, again.Outputs["changed"])

					out, err := testkit.RunAction(t, acts["aws.release_quarantine"], testkit.Env("run_test"), with)
					require.NoError(t, err)
					require.Equal(t, actions.Done, out.Outcome, out.Message)
					require.Empty(t, b.attached(t, role))
					require.Empty(t, b.inline(t, role))
					outAgain, err := testkit.RunAction(t, acts["aws.release_quarantine"], testkit.Env("run_test"), with)
					require.NoError(t, err)
					require.Equal(t, actions.Already, outAgain.Outcome)
					if b.effective != nil {
						ops := map[string][2]string{"managed": {"Attach" + Kind + "Policy", "Detach" + Kind + "Policy"}, "inline": {"Put" + Kind + "Policy", "Delete" + Kind + "Policy"}}[mode]
						require.Equal(t, 1, b.effective(ops[0]), "the second quarantine changed nothing")
						require.Equal(t, 1, b.calls(ops[0]), "and made no call that could")
						require.Equal(t, 1, b.effective(ops[1]))
						require.Equal(t, 1, b.calls(ops[1]))
					}
				})
			}
		}
	}
}

func TestQuarantineReplacesAnInlinePolicyThatDoesNotDenyEverything(t *testing.T) {
	t.Parallel()
	for name, mk := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := mk(t)
			acts := b.actions(t)
			with := map[string]any{"user_name": b.user, "mode": "inline"}
			b.putUserPolicy(t, "StanchQuarantine", `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"s3:*","Resource":"*"}]}`)
			res, err := testkit.RunAction(t, acts["aws.quarantine"], testkit.Env("run_test"), with)
			require.NoError(t, err)
			require.Equal(t, actions.Done, res.Outcome, "a narrower policy under the name is no quarantine")
			require.JSONEq(t, denyAllDocument, b.userPolicy(t, "StanchQuarantine"))

			// The IAM console's shape of a deny-all counts as one.
			b.putUserPolicy(t, "StanchQuarantine", `{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"*","Resource":"*"}}`)
			again, err := testkit.RunAction(t, acts["aws.quarantine"], testkit.Env("run_test"), with)
			require.NoError(t, err)
			require.Equal(t, actions.Already, again.Outcome)
		})
	}
}

func TestQuarantineCustomerPolicyAndOtherPoliciesStay(t *testing.T) {
	t.Parallel()
	for name, mk := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := mk(t)
			acts := b.actions(t)
			readOnly := "arn:aws:iam::aws:policy/ReadOnlyAccess"
			_, err := iam.NewFromConfig(b.cfg).AttachUserPolicy(context.Background(), &iam.AttachUserPolicyInput{UserName: awssdk.String(b.user), PolicyArn: awssdk.String(readOnly)})
			require.NoError(t, err)
			with := map[string]any{"user_name": b.user, "policy_arn": "arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV3"}
			res, err := testkit.RunAction(t, acts["aws.quarantine"], testkit.Env("run_test"), with)
			require.NoError(t, err)
			require.Equal(t, actions.Done, res.Outcome)
			require.ElementsMatch(t, []string{readOnly, "arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV3"}, b.attached(t, ""))
			_, err = testkit.RunAction(t, acts["aws.release_quarantine"], testkit.Env("run_test"), with)
			require.NoError(t, err)
			require.Equal(t, []string{readOnly}, b.attached(t, ""), "release detaches only the quarantine policy")
		})
	}
}

func TestQuarantineRefusesBadInput(t *testing.T) {
	t.Parallel()
	for name, mk := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := mk(t)
			acts := b.actions(t)
			q := acts["aws.quarantine"]
			_, err := q.Decode(map[string]any{"user_name": "a", "mode": "lock"})
			require.ErrorContains(t, err, `mode "lock"`)
			_, err = q.Decode(map[string]any{"mode": "inline"})
			require.ErrorContains(t, err, "exactly one of user_name and role_name")

			_, err = testkit.RunAction(t, q, testkit.Env("run_test"), map[string]any{"user_name": b.user, "policy_arn": "arn:aws:iam::aws:policy/NoSuchPolicy"})
			require.Error(t, err)
			require.Equal(t, actions.KindPermanent, actions.KindOf(err), "%v", err)
			var nse *iamtypes.NoSuchEntityException
			require.ErrorAs(t, err, &nse)

			for _, mode := range []string{"managed", "inline"} {
				_, err = testkit.RunAction(t, q, testkit.Env("run_test"), map[string]any{"user_name": "nobody-here", "mode": mode})
				require.Error(t, err, mode)
				require.Equal(t, actions.KindPermanent, actions.KindOf(err))
				_, err = testkit.RunAction(t, acts["aws.release_quarantine"], testkit.Env("run_test"), map[string]any{"user_name": "nobody-here", "mode": mode})
				require.Error(t, err, "%s: releasing a user that does not exist is not 'already released'", mode)
				require.Equal(t, actions.KindPermanent, actions.KindOf(err))
			}
		})
	}
}

func TestQuarantinePlan(t *testing.T) {
	t.Parallel()
	b, sb := sandboxBackend(t)
	acts := b.actions(t)
	for _, tc := range []struct {
		action string
		with   map[string]any
		want   []actions.Call
	}{
		{"aws.quarantine", map[string]any{"user_name": b.user}, []actions.Call{
			{Service: "iam", Operation: "ListAttachedUserPolicies", Params: map[string]any{"UserName": b.user}, Made: true},
			{Service: "iam", Operation: "AttachUserPolicy", Params: map[string]any{"UserName": b.user, "PolicyArn": defaultQuarantinePolicy}, Mutates: true,
				Account: b.account, Effect: "quarantine user/" + b.user + " in account " + b.account + " (" + defaultQuarantinePolicy + ")"},
		}},
		{"aws.quarantine", map[string]any{"role_name": "app-server", "mode": "inline"}, []actions.Call{
			{Service: "iam", Operation: "GetRolePolicy", Params: map[string]any{"RoleName": "app-server", "PolicyName": "StanchQuarantine"}, Made: true},
			{Service: "iam", Operation: "ListRolePolicies", Params: map[string]any{"RoleName": "app-server", "MaxItems": 1}, Made: true},
			{Service: "iam", Operation: "PutRolePolicy", Params: map[string]any{"RoleName": "app-server", "PolicyName": "StanchQuarantine", "PolicyDocument": denyAllDocument}, Mutates: true,
				Account: b.account, Effect: "quarantine role/app-server in account " + b.account + " (StanchQuarantine)"},
		}},
		{"aws.release_quarantine", map[string]any{"user_name": b.user}, []actions.Call{
			{Service: "iam", Operation: "ListAttachedUserPolicies", Params: map[string]any{"UserName": b.user}, Made: true},
		}},
	} {
		a := acts[tc.action]
		p, err := a.Decode(tc.with)
		require.NoError(t, err)
		plan, err := a.Plan(context.Background(), actions.Env{}, p)
		require.NoError(t, err)
		require.Equal(t, tc.want, plan.Calls, "%s %v", tc.action, tc.with)
	}
	for _, op := range []string{"AttachUserPolicy", "PutRolePolicy", "DetachUserPolicy"} {
		require.Zero(t, sb.Count(op), "a plan changes nothing")
	}
}
