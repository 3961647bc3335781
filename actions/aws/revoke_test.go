package aws

import (
	"context"
	"net/url"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
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
	p, err := a.Decode(with)
	require.NoError(t, err)
	return a.Do(context.Background(), actions.Env{RunID: "run_test", StepID: "revoke", Attempt: 1, StepStartedAt: started}, p)
}

func TestRevokeSessionsNeverLoosensTheCutoff(t *testing.T) {
	t.Parallel()
	for name, mk := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := mk(t)
			revoke := b.actions(t)["aws.revoke_sessions"]
			first := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

			res, err := doAt(t, revoke, first, map[string]any{"user_name": b.user})
			require.NoError(t, err)
			require.Equal(t, actions.Done, res.Outcome)
			require.Equal(t, "2026-11-28T12:00:01Z", res.Outputs["cutoff"])
			require.Contains(t, b.userPolicy(t, "AWSRevokeOlderSessions"), `"aws:TokenIssueTime":"2026-11-28T12:00:01Z"`)
			require.Contains(t, b.userPolicy(t, "AWSRevokeOlderSessions"), `"Effect":"Deny"`)

			again, err := doAt(t, revoke, first, map[string]any{"user_name": b.user})
			require.NoError(t, err)
			require.Equal(t, actions.Already, again.Outcome, "a retry or resume writes nothing")

			earlier, err := doAt(t, revoke, first.Add(-time.Hour), map[string]any{"user_name": b.user})
			require.NoError(t, err)
			require.Equal(t, actions.Already, earlier.Outcome, "an earlier cutoff never loosens the one in force")
			require.Equal(t, "2026-11-28T12:00:01Z", earlier.Outputs["cutoff"])

			later, err := doAt(t, revoke, first.Add(time.Hour), map[string]any{"user_name": b.user})
			require.NoError(t, err)
			require.Equal(t, actions.Done, later.Outcome)
			require.Contains(t, b.userPolicy(t, "AWSRevokeOlderSessions"), "2026-11-28T13:00:01Z")
			if b.effective != nil {
				require.Equal(t, 2, b.effective("PutUserPolicy"))
			}
		})
	}
}

func TestRevokeSessionsOfARole(t *testing.T) {
	t.Parallel()
	b, sb := sandboxBackend(t)
	revoke := b.actions(t)["aws.revoke_sessions"]
	res, err := doAt(t, revoke, time.Now(), map[string]any{"role_name": "app-server"})
	require.NoError(t, err)
	require.Equal(t, "role/app-server", res.Outputs["principal"])
	require.Equal(t, 1, sb.EffectiveCount("PutRolePolicy"))

	_, err = revoke.Decode(map[string]any{"user_name": "a", "role_name": "b"})
	require.ErrorContains(t, err, "exactly one of user_name and role_name")
	_, err = doAt(t, revoke, time.Now(), map[string]any{"role_name": "no-such-role"})
	require.Error(t, err)
	require.Equal(t, actions.KindPermanent, actions.KindOf(err))
}

func TestDeleteKey(t *testing.T) {
	t.Parallel()
	for name, mk := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := mk(t)
			acts := b.actions(t)
			_, err := do(t, acts["aws.delete_key"], map[string]any{"access_key_id": b.leaked, "user_name": b.user})
			require.Error(t, err, "an Active key is not deleted")
			require.Equal(t, actions.KindPermanent, actions.KindOf(err))
			require.Contains(t, err.Error(), "deactivate it first")

			_, err = do(t, acts["aws.deactivate_key"], map[string]any{"access_key_id": b.leaked, "user_name": b.user})
			require.NoError(t, err)
			res, err := do(t, acts["aws.delete_key"], map[string]any{"access_key_id": b.leaked, "user_name": b.user})
			require.NoError(t, err)
			require.Equal(t, actions.Done, res.Outcome)
			require.Equal(t, true, res.Outputs["deleted"])
			again, err := do(t, acts["aws.delete_key"], map[string]any{"access_key_id": b.leaked, "user_name": b.user})
			require.NoError(t, err)
			require.Equal(t, actions.Already, again.Outcome, "already gone is success")
			require.Equal(t, "Active", b.status(t, b.other), "only the given key is deleted")
			if b.effective != nil {
				require.Equal(t, 1, b.effective("DeleteAccessKey"))
			}
		})
	}
}
