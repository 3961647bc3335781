package aws

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/internal/testkit"
	"github.com/stanchhq/stanch/sandbox"
)

func TestContainDerived(t *testing.T) {
	t.Parallel()
	for name, mk := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := mk(t)
			role := b.role(t)
			contain := b.actions(t)["aws.contain_derived"]
			// As aws.cloudtrail_impact outputs them (after a trip through the
			// store's JSON), with a field contain_derived does not know: the
			// attacker's key (owner not recorded), a session the leaked
			// key's user minted, and a role session.
			derived := []any{
				map[string]any{"access_key_id": b.other, "kind": "access_key", "user_name": "", "created_by_event": "CreateAccessKey", "created_by_key": b.leaked, "region": "us-east-1", "time": "2026-11-28T12:00:00Z", "depth": 1.0, "event_id": "e1"},
				map[string]any{"access_key_id": "ASIAATTACKERSESSION1", "kind": "session", "user_name": b.user, "created_by_event": "GetSessionToken", "created_by_key": b.leaked, "depth": 1},
				map[string]any{"access_key_id": "ASIAATTACKERSESSION2", "kind": "session", "user_name": b.user, "created_by_event": "AssumeRole", "role_arn": "arn:aws:iam::" + b.account + ":role/" + role},
			}
			started := time.Date(2026, 11, 28, 12, 5, 0, 0, time.UTC)
			res, err := doAt(t, contain, started, map[string]any{"derived": derived})
			require.NoError(t, err)
			require.Equal(t, actions.Done, res.Outcome, res.Message)
			require.Equal(t, []map[string]any{
				{"access_key_id": b.other, "action": "deactivate", "outcome": "done"},
				{"access_key_id": "ASIAATTACKERSESSION1", "action": "revoke_sessions", "outcome": "done", "principal": "user/" + b.user},
				{"access_key_id": "ASIAATTACKERSESSION2", "action": "revoke_sessions", "outcome": "done", "principal": "role/" + role},
			}, res.Outputs["contained"])
			require.Equal(t, "Inactive", b.status(t, b.other))
			require.Equal(t, "Active", b.status(t, b.leaked), "only the derived credentials are touched")
			require.JSONEq(t, revokeDoc("2026-11-28T12:05:00Z"), b.userPolicy(t, "AWSRevokeOlderSessions"))
			require.JSONEq(t, revokeDoc("2026-11-28T12:05:00Z"), b.rolePolicy(t, role, "AWSRevokeOlderSessions"), "an AssumeRole session is revoked on its role")

			again, err := doAt(t, contain, started, map[string]any{"derived": derived})
			require.NoError(t, err)
			require.Equal(t, actions.Already, again.Outcome, again.Message)
			for _, c := range again.Outputs["contained"].([]map[string]any) {
				require.Equal(t, "already", c["outcome"], c)
			}
			if b.effective != nil {
				for _, op := range []string{"UpdateAccessKey", "PutUserPolicy", "PutRolePolicy"} {
					require.Equal(t, 1, b.effective(op), op)
					require.Equal(t, 1, b.calls(op), "%s: the second run made no change call", op)
				}
			}
			b.noSecrets(t, res, again)
		})
	}
}

func TestContainDerivedDelete(t *testing.T) {
	t.Parallel()
	for name, mk := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := mk(t)
			contain := b.actions(t)["aws.contain_derived"]
			with := map[string]any{"mode": "delete", "derived": []any{map[string]any{"access_key_id": b.other, "kind": "access_key", "user_name": b.user}}}
			res, err := testkit.RunAction(t, contain, testkit.Env("run_test"), with)
			require.NoError(t, err)
			require.Equal(t, actions.Done, res.Outcome, res.Message)
			require.Equal(t, []map[string]any{{"access_key_id": b.other, "action": "delete", "outcome": "done"}}, res.Outputs["contained"])
			require.Equal(t, "Active", b.status(t, b.leaked))

			again, err := testkit.RunAction(t, contain, testkit.Env("run_test"), with)
			require.NoError(t, err, "a resumed step finds the key gone")
			require.Equal(t, actions.Already, again.Outcome)
			if b.effective != nil {
				require.Equal(t, 1, b.effective("DeleteAccessKey"))
				require.Equal(t, 1, b.calls("DeleteAccessKey"))
			}
		})
	}
}

func TestContainDerivedFindsWhoMintedASession(t *testing.T) {
	t.Parallel()
	for name, mk := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := mk(t)
			contain := b.actions(t)["aws.contain_derived"]
			res, err := testkit.RunAction(t, contain, testkit.Env("run_test"), map[string]any{"derived": []any{
				map[string]any{"access_key_id": "ASIAATTACKERSESSION3", "kind": "session", "created_by_event": "GetFederationToken", "created_by_key": b.leaked},
			}})
			require.NoError(t, err)
			require.Equal(t, "user/"+b.user, res.Outputs["contained"].([]map[string]any)[0]["principal"], "the owner of the minting key")
			require.Contains(t, b.userPolicy(t, "AWSRevokeOlderSessions"), "aws:TokenIssueTime")
		})
	}
}

func TestContainDerivedTriesEveryCredential(t *testing.T) {
	t.Parallel()
	b, sb := sandboxBackend(t)
	contain := b.actions(t)["aws.contain_derived"]
	_, err := doAt(t, contain, time.Now(), map[string]any{"derived": []any{
		map[string]any{"access_key_id": "AKIANOSUCHKEY0000001", "kind": "access_key", "user_name": "nobody"},
		map[string]any{"access_key_id": "ASIAATTACKERSESSION4", "kind": "session", "user_name": b.user, "created_by_event": "AssumeRole"},
		map[string]any{"access_key_id": "AKIAWHATEVER00000001", "kind": "password"},
		map[string]any{"access_key_id": b.other, "kind": "access_key", "user_name": b.user},
	}})
	require.Error(t, err)
	require.Equal(t, actions.KindPermanent, actions.KindOf(err))
	require.Equal(t, "Inactive", b.status(t, b.other), "the last credential is contained although the others failed")
	for _, want := range []string{
		"AKIANOSUCHKEY0000001 deactivate: failed",
		"ASIAATTACKERSESSION4 revoke_sessions: failed",
		"AKIAWHATEVER00000001 none: failed",
		b.other + " deactivate: done",
		"minted by AssumeRole, and the item does not name the role",
		`kind "password" is not access_key or session`,
	} {
		require.ErrorContains(t, err, want)
	}
	require.Zero(t, sb.Count("PutUserPolicy"), "an AssumeRole session is not 'revoked' on the user that assumed the role")
}

func TestContainDerivedIsRetryableWhenIAMThrottles(t *testing.T) {
	t.Parallel()
	b, sb := sandboxBackend(t)
	b.cfg.RetryMaxAttempts = 1
	contain := b.actions(t)["aws.contain_derived"]
	sb.SetFault("iam", sandbox.Fault{ThrottleRate: 1})
	with := map[string]any{"derived": []any{
		map[string]any{"access_key_id": b.other, "kind": "access_key", "user_name": b.user},
		map[string]any{"access_key_id": "ASIAATTACKERSESSION1", "kind": "session", "user_name": b.user},
	}}
	_, err := testkit.RunAction(t, contain, testkit.Env("run_test"), with)
	require.Error(t, err)
	require.Equal(t, actions.KindRetryable, actions.KindOf(err), "%v", err)
	require.ErrorContains(t, err, b.other+" deactivate: failed; ASIAATTACKERSESSION1 revoke_sessions: failed")

	sb.SetFault("iam", sandbox.Fault{})
	res, err := testkit.RunAction(t, contain, testkit.Env("run_test"), with)
	require.NoError(t, err, "the retry contains both")
	require.Equal(t, actions.Done, res.Outcome)
}

func TestContainDerivedPlan(t *testing.T) {
	t.Parallel()
	b, sb := sandboxBackend(t)
	contain := b.actions(t)["aws.contain_derived"]
	env := actions.Env{StepStartedAt: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)}
	p, err := contain.Decode(map[string]any{"derived": []any{
		map[string]any{"access_key_id": b.other, "kind": "access_key"},
		map[string]any{"access_key_id": "ASIAATTACKERSESSION1", "kind": "session", "role_name": "app-server"},
	}})
	require.NoError(t, err)
	plan, err := contain.Plan(context.Background(), env, p)
	require.NoError(t, err)
	var mutating []actions.Call
	for _, c := range plan.Calls {
		if c.Mutates {
			mutating = append(mutating, c)
		}
	}
	require.Equal(t, []actions.Call{
		{Service: "iam", Operation: "UpdateAccessKey", Params: map[string]any{"AccessKeyId": b.other, "Status": "Inactive", "UserName": b.user}, Mutates: true,
			Account: b.account, Effect: "deactivate the derived access key " + b.other + " of user ci-bot in account " + b.account},
		{Service: "iam", Operation: "PutRolePolicy", Params: map[string]any{"RoleName": "app-server", "PolicyName": "AWSRevokeOlderSessions", "PolicyDocument": revokeDocument(env.StepStartedAt)}, Mutates: true,
			Account: b.account, Effect: "deny every session of role/app-server in account " + b.account + " issued before 2026-11-28T12:00:00Z (inline policy AWSRevokeOlderSessions)"},
	}, mutating)
	require.Equal(t, "GetAccessKeyInfo", plan.Calls[0].Operation, "the key's account is checked, read-only")
	require.Equal(t, "GetAccessKeyLastUsed", plan.Calls[1].Operation, "the owner is looked up, read-only")
	require.Contains(t, plan.Summary, b.other+": would deactivate it (user ci-bot)")
	require.Zero(t, sb.EffectiveCount("UpdateAccessKey")+sb.EffectiveCount("PutRolePolicy"), "a plan changes nothing")
	require.Equal(t, "Active", b.status(t, b.other))

	none, err := contain.Decode(map[string]any{"derived": []any{}})
	require.NoError(t, err)
	res, err := contain.Do(context.Background(), env, none)
	require.NoError(t, err)
	require.Equal(t, actions.NoOp, res.Outcome)
	require.Equal(t, []map[string]any{}, res.Outputs["contained"])

	_, err = contain.Decode(map[string]any{"derived": []any{}, "mode": "destroy"})
	require.ErrorContains(t, err, `mode "destroy"`)
}
