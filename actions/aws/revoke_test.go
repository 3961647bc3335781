package aws

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/internal/testkit"
)

func (b backend) userPolicy(t *testing.T, name string) string {
	t.Helper()
	out, err := iam.NewFromConfig(b.cfg).GetUserPolicy(context.Background(), &iam.GetUserPolicyInput{UserName: awssdk.String(b.user), PolicyName: awssdk.String(name)})
	require.NoError(t, err)
	doc, err := url.QueryUnescape(awssdk.ToString(out.PolicyDocument))
	require.NoError(t, err)
	return doc
}

func doAt(t *testing.T, a actions.Action, started time.Time, with map[string]any) (actions.Result, error) {
	t.Helper()
	return testkit.RunAction(t, a, actions.Env{RunID: "run_test", StepID: "revoke", Attempt: 1, StepStartedAt: started}, with)
}

// role returns a role of the backend for session revocation: the seeded
// app-server in the sandbox, a new role in moto.
func (b backend) role(t *testing.T) string {
	t.Helper()
	if b.name == "sandbox" {
		return "app-server"
	}
	name := uniqueName("app-server")
	trust := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}`
	_, err := iam.NewFromConfig(b.cfg).CreateRole(context.Background(), &iam.CreateRoleInput{RoleName: awssdk.String(name), AssumeRolePolicyDocument: awssdk.String(trust)})
	require.NoError(t, err)
	return name
}

func (b backend) rolePolicy(t *testing.T, role, name string) string {
	t.Helper()
	out, err := iam.NewFromConfig(b.cfg).GetRolePolicy(context.Background(), &iam.GetRolePolicyInput{RoleName: awssdk.String(role), PolicyName: awssdk.String(name)})
	require.NoError(t, err)
	doc, err := url.QueryUnescape(awssdk.ToString(out.PolicyDocument))
	require.NoError(t, err)
	return doc
}

func (b backend) putUserPolicy(t *testing.T, name, doc string) {
	t.Helper()
	_, err := iam.NewFromConfig(b.cfg).PutUserPolicy(context.Background(), &iam.PutUserPolicyInput{UserName: awssdk.String(b.user), PolicyName: awssdk.String(name), PolicyDocument: awssdk.String(doc)})
	require.NoError(t, err)
}

// revokeDoc is the exact document aws.revoke_sessions puts.
func revokeDoc(cutoff string) string {
	return `{"Statement":[{"Action":["*"],"Condition":{"DateLessThan":{"aws:TokenIssueTime":"` + cutoff + `"}},"Effect":"Deny","Resource":["*"]}],"Version":"2012-10-17"}`
}

func TestRevokeSessionsNeverLoosensTheCutoff(t *testing.T) {
	t.Parallel()
	for name, mk := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := mk(t)
			revoke := b.actions(t)["aws.revoke_sessions"]
			// IAM compares whole seconds: a cutoff inside a second is
			// rounded up, so sessions from that second are denied too.
			first := time.Date(2026, 11, 28, 12, 0, 0, 250_000_000, time.UTC)

			res, err := doAt(t, revoke, first, map[string]any{"user_name": b.user})
			require.NoError(t, err)
			require.Equal(t, actions.Done, res.Outcome)
			require.Equal(t, map[string]any{"cutoff": "2026-11-28T12:00:01Z", "principal": "user/" + b.user, "policy_name": "AWSRevokeOlderSessions"}, res.Outputs)
			require.JSONEq(t, revokeDoc("2026-11-28T12:00:01Z"), b.userPolicy(t, "AWSRevokeOlderSessions"))

			again, err := doAt(t, revoke, first, map[string]any{"user_name": b.user})
			require.NoError(t, err)
			require.Equal(t, actions.Already, again.Outcome, "a retry or resume writes nothing")

			earlier, err := doAt(t, revoke, first.Add(-time.Hour), map[string]any{"user_name": b.user})
			require.NoError(t, err)
			require.Equal(t, actions.Already, earlier.Outcome, "an earlier cutoff never loosens the one in force")
			require.Equal(t, "2026-11-28T12:00:01Z", earlier.Outputs["cutoff"])
			explicit, err := doAt(t, revoke, first, map[string]any{"user_name": b.user, "not_before": "2026-11-28T11:00:00Z"})
			require.NoError(t, err)
			require.Equal(t, actions.Already, explicit.Outcome, "nor does an earlier not_before")
			require.JSONEq(t, revokeDoc("2026-11-28T12:00:01Z"), b.userPolicy(t, "AWSRevokeOlderSessions"))
			if b.effective != nil {
				require.Equal(t, 1, b.effective("PutUserPolicy"))
				require.Equal(t, 1, b.calls("PutUserPolicy"), "no put when the cutoff in force is as late")
			}

			later, err := doAt(t, revoke, first, map[string]any{"user_name": b.user, "not_before": "2026-11-28T13:00:00Z"})
			require.NoError(t, err)
			require.Equal(t, actions.Done, later.Outcome, "a later cutoff tightens")
			require.Contains(t, later.Message, "the earlier cutoff was 2026-11-28T12:00:01Z")
			require.JSONEq(t, revokeDoc("2026-11-28T13:00:00Z"), b.userPolicy(t, "AWSRevokeOlderSessions"))
			if b.effective != nil {
				require.Equal(t, 2, b.effective("PutUserPolicy"))
			}
		})
	}
}

func TestRevokeSessionsKeepsALaterCutoffWrittenByOthers(t *testing.T) {
	t.Parallel()
	for name, mk := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := mk(t)
			revoke := b.actions(t)["aws.revoke_sessions"]
			// The shape the IAM console writes: one statement, not a list,
			// plain strings, and a UTC offset with a '+' that must survive
			// URL decoding.
			theirs := `{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"DateLessThan":{"aws:TokenIssueTime":"2026-11-28T15:30:00+01:00"}}}}`
			b.putUserPolicy(t, "AWSRevokeOlderSessions", theirs)
			res, err := doAt(t, revoke, time.Date(2026, 11, 28, 14, 0, 0, 0, time.UTC), map[string]any{"user_name": b.user})
			require.NoError(t, err)
			require.Equal(t, actions.Already, res.Outcome, res.Message)
			require.Equal(t, "2026-11-28T14:30:00Z", res.Outputs["cutoff"])
			require.JSONEq(t, theirs, b.userPolicy(t, "AWSRevokeOlderSessions"), "the later cutoff is left as it is")

			// A narrower deny with a later cutoff under the name: the new
			// policy denies everything, from the later of the two cutoffs.
			b.putUserPolicy(t, "Narrow", `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"s3:*","Resource":"*","Condition":{"DateLessThan":{"aws:TokenIssueTime":"2026-11-28T16:00:00Z"}}}]}`)
			narrow, err := doAt(t, revoke, time.Date(2026, 11, 28, 14, 0, 0, 0, time.UTC), map[string]any{"user_name": b.user, "policy_name": "Narrow"})
			require.NoError(t, err)
			require.Equal(t, actions.Done, narrow.Outcome)
			require.Equal(t, "2026-11-28T16:00:00Z", narrow.Outputs["cutoff"])
			require.JSONEq(t, revokeDoc("2026-11-28T16:00:00Z"), b.userPolicy(t, "Narrow"))

			if b.name != "sandbox" {
				return // moto, like IAM, refuses a date it cannot parse
			}
			// A cutoff stanch cannot read is not overwritten: it might be later.
			odd := `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"DateLessThan":{"aws:TokenIssueTime":["2026-W48-6"]}}}]}`
			b.putUserPolicy(t, "Custom", odd)
			_, err = doAt(t, revoke, time.Now(), map[string]any{"user_name": b.user, "policy_name": "Custom"})
			require.Error(t, err)
			require.Equal(t, actions.KindPermanent, actions.KindOf(err))
			require.ErrorContains(t, err, "fix or delete the policy")
			require.JSONEq(t, odd, b.userPolicy(t, "Custom"))
		})
	}
}

func TestRevokeSessionsOfARole(t *testing.T) {
	t.Parallel()
	for name, mk := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := mk(t)
			role := b.role(t)
			revoke := b.actions(t)["aws.revoke_sessions"]
			started := time.Date(2026, 11, 28, 9, 30, 0, 0, time.UTC)
			res, err := doAt(t, revoke, started, map[string]any{"role_name": role, "policy_name": "StanchRevoke"})
			require.NoError(t, err)
			require.Equal(t, actions.Done, res.Outcome)
			require.Equal(t, map[string]any{"cutoff": "2026-11-28T09:30:00Z", "principal": "role/" + role, "policy_name": "StanchRevoke"}, res.Outputs)
			require.JSONEq(t, revokeDoc("2026-11-28T09:30:00Z"), b.rolePolicy(t, role, "StanchRevoke"))
			again, err := doAt(t, revoke, started, map[string]any{"role_name": role, "policy_name": "StanchRevoke"})
			require.NoError(t, err)
			require.Equal(t, actions.Already, again.Outcome)
			if b.effective != nil {
				require.Equal(t, 1, b.effective("PutRolePolicy"))
				require.Zero(t, b.calls("PutUserPolicy"))
			}

			_, err = doAt(t, revoke, started, map[string]any{"role_name": "no-such-role"})
			require.Error(t, err)
			require.Equal(t, actions.KindPermanent, actions.KindOf(err))
			require.ErrorContains(t, err, "revoke sessions of role/no-such-role")
		})
	}
}

func TestRevokeSessionsRefusesBadParameters(t *testing.T) {
	t.Parallel()
	revoke := revokeSessions(NewProvider(ProviderOptions{}))
	for with, want := range map[string]map[string]any{
		"exactly one of user_name and role_name":  {"user_name": "a", "role_name": "b"},
		"exactly one of user_name and role_name ": {"account": "111122223333"},
		"is not an RFC 3339 time":                 {"user_name": "a", "not_before": "yesterday"},
		`unknown parameter "cutoff"`:              {"user_name": "a", "cutoff": "2026-11-28T12:00:00Z"},
	} {
		_, err := revoke.Decode(want)
		require.ErrorContains(t, err, strings.TrimSpace(with))
	}
}

func TestRevokeSessionsPlan(t *testing.T) {
	t.Parallel()
	b, sb := sandboxBackend(t)
	revoke := b.actions(t)["aws.revoke_sessions"]
	env := actions.Env{StepStartedAt: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)}
	p, err := revoke.Decode(map[string]any{"user_name": b.user})
	require.NoError(t, err)
	plan, err := revoke.Plan(context.Background(), env, p)
	require.NoError(t, err)
	require.Zero(t, sb.EffectiveCount("PutUserPolicy"), "a plan changes nothing")
	require.Equal(t, []actions.Call{
		{Service: "iam", Operation: "GetUserPolicy", Params: map[string]any{"UserName": b.user, "PolicyName": "AWSRevokeOlderSessions"}, Made: true},
		{Service: "iam", Operation: "ListUserPolicies", Params: map[string]any{"UserName": b.user, "MaxItems": 1}, Made: true},
		{Service: "iam", Operation: "PutUserPolicy", Params: map[string]any{"UserName": b.user, "PolicyName": "AWSRevokeOlderSessions", "PolicyDocument": revokeDocument(env.StepStartedAt)}, Mutates: true,
			Account: b.account, Effect: "deny every session of user/ci-bot in account " + b.account + " issued before 2026-11-28T12:00:00Z (inline policy AWSRevokeOlderSessions)"},
	}, plan.Calls)
	require.Contains(t, plan.Summary, "would deny every session of user/ci-bot issued before 2026-11-28T12:00:00Z")

	missing, err := revoke.Decode(map[string]any{"user_name": "nobody"})
	require.NoError(t, err)
	_, err = revoke.Plan(context.Background(), env, missing)
	require.Error(t, err, "the plan does not promise to revoke the sessions of a user that does not exist")
	require.Equal(t, actions.KindPermanent, actions.KindOf(err))

	_, err = revoke.Do(context.Background(), env, p)
	require.NoError(t, err)
	plan, err = revoke.Plan(context.Background(), env, p)
	require.NoError(t, err)
	require.Contains(t, plan.Summary, "already denies sessions issued before 2026-11-28T12:00:00Z")
	for _, c := range plan.Calls {
		require.False(t, c.Mutates)
	}
}

func TestCutoffOfReadsWhatIAMReturns(t *testing.T) {
	t.Parallel()
	for doc, want := range map[string]string{
		url.PathEscape(revokeDoc("2026-11-28T12:00:01Z")): "2026-11-28T12:00:01Z",
		revokeDoc("2026-11-28T12:00:01Z"):                 "2026-11-28T12:00:01Z",
		`%7B%22Statement%22%3A%7B%22Effect%22%3A%22Deny%22%2C%22Action%22%3A%22%2A%22%2C%22Resource%22%3A%22%2A%22%2C%22Condition%22%3A%7B%22DateLessThan%22%3A%7B%22aws%3ATokenIssueTime%22%3A%222026-11-28T12%3A00%3A00%2B02%3A00%22%7D%7D%7D%7D`: "2026-11-28T10:00:00Z",
		`{"Statement":[{"Effect":"Deny","Action":"s3:*","Resource":"*","Condition":{"DateLessThan":{"aws:TokenIssueTime":"2030-01-01T00:00:00Z"}}}]}`:                                                                                               "0001-01-01T00:00:00Z",
		`{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"DateLessThan":{"aws:TokenIssueTime":"2030-01-01T00:00:00Z"}}}]}`:                                                                                                 "0001-01-01T00:00:00Z",
		`{"Statement":[{"Effect":"Deny","Action":"*","Resource":["*"],"Condition":{"DateLessThan":{"aws:TokenIssueTime":"1764331200"}}}]}`:                                                                                                          "2025-11-28T12:00:00Z",
		`{"Statement":[{"Effect":"Deny","Action":"*","Resource":["*"],"Condition":{"DateLessThan":{"aws:TokenIssueTime":["2026-01-01T00:00:00Z","2026-02-01T00:00:00.000Z"]}}}]}`:                                                                   "2026-02-01T00:00:00Z",
	} {
		got, err := cutoffOf(doc)
		require.NoError(t, err, doc)
		require.Equal(t, want, got.Format(time.RFC3339), doc)
	}
}

func TestDeleteKey(t *testing.T) {
	t.Parallel()
	for name, mk := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := mk(t)
			acts := b.actions(t)
			_, err := testkit.RunAction(t, acts["aws.delete_key"], testkit.Env("run_test"), map[string]any{"access_key_id": b.leaked, "user_name": b.user})
			require.Error(t, err, "an Active key is not deleted")
			require.Equal(t, actions.KindPermanent, actions.KindOf(err))
			require.Contains(t, err.Error(), "deactivate it first")

			_, err = testkit.RunAction(t, acts["aws.deactivate_key"], testkit.Env("run_test"), map[string]any{"access_key_id": b.leaked, "user_name": b.user})
			require.NoError(t, err)
			res, err := testkit.RunAction(t, acts["aws.delete_key"], testkit.Env("run_test"), map[string]any{"access_key_id": b.leaked, "user_name": b.user})
			require.NoError(t, err)
			require.Equal(t, actions.Done, res.Outcome)
			require.Equal(t, true, res.Outputs["deleted"])
			again, err := testkit.RunAction(t, acts["aws.delete_key"], testkit.Env("run_test"), map[string]any{"access_key_id": b.leaked, "user_name": b.user})
			require.NoError(t, err)
			require.Equal(t, actions.Already, again.Outcome, "already gone is success")
			require.Equal(t, "Active", b.status(t, b.other), "only the given key is deleted")
			if b.effective != nil {
				require.Equal(t, 1, b.effective("DeleteAccessKey"))
			}
		})
	}
}
