package aws

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/internal/testkit"
)

func TestDeleteKeyFindsTheOwnerAndPlans(t *testing.T) {
	t.Parallel()
	for name, mk := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := mk(t)
			acts := b.actions(t)
			del := acts["aws.delete_key"]
			_, err := testkit.RunAction(t, acts["aws.deactivate_key"], testkit.Env("run_test"), map[string]any{"access_key_id": b.leaked, "user_name": b.user})
			require.NoError(t, err)

			p, err := del.Decode(map[string]any{"access_key_id": b.leaked})
			require.NoError(t, err)
			plan, err := del.Plan(ctx, actions.Env{}, p)
			require.NoError(t, err)
			require.Contains(t, plan.Summary, "would delete "+b.leaked+" of "+b.user+" in account "+b.account+" (now Inactive)")
			last := plan.Calls[len(plan.Calls)-1]
			require.Equal(t, actions.Call{Service: "iam", Operation: "DeleteAccessKey", Params: map[string]any{"AccessKeyId": b.leaked, "UserName": b.user}, Mutates: true,
				Account: b.account, Irreversible: true, Effect: "delete access key " + b.leaked + " of user " + b.user + " in account " + b.account}, last)
			for _, c := range plan.Calls[:len(plan.Calls)-1] {
				require.False(t, c.Mutates)
				require.True(t, c.Made)
			}
			require.Equal(t, "Inactive", b.status(t, b.leaked), "planning deletes nothing")

			res, err := del.Do(ctx, actions.Env{RunID: "run_d", StepID: "delete", Attempt: 1}, p)
			require.NoError(t, err, "the owner is found when user_name is empty")
			require.Equal(t, actions.Done, res.Outcome)
			require.Equal(t, b.user, res.Outputs["user_name"])
			require.Equal(t, map[string]string{b.other: "Active"}, b.keyIDs(t), "only the given key is deleted")

			gone, err := testkit.RunAction(t, del, testkit.Env("run_test"), map[string]any{"access_key_id": b.leaked, "user_name": b.user})
			require.NoError(t, err)
			require.Equal(t, actions.Already, gone.Outcome)
			require.Equal(t, false, gone.Outputs["deleted"])
			p, err = del.Decode(map[string]any{"access_key_id": b.leaked, "user_name": b.user})
			require.NoError(t, err)
			plan, err = del.Plan(ctx, actions.Env{}, p)
			require.NoError(t, err)
			require.Contains(t, plan.Summary, "already gone")
			for _, c := range plan.Calls {
				require.False(t, c.Mutates)
			}
			if b.effective != nil {
				require.Equal(t, 1, b.effective("DeleteAccessKey"))
			}
			b.noSecrets(t, res, gone, plan)
		})
	}
}

func TestDeleteKeyActiveOnlyWhenAllowed(t *testing.T) {
	t.Parallel()
	for name, mk := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := mk(t)
			del := b.actions(t)["aws.delete_key"]
			_, err := testkit.RunAction(t, del, testkit.Env("run_test"), map[string]any{"access_key_id": b.other, "user_name": b.user})
			require.Error(t, err)
			require.Equal(t, actions.KindPermanent, actions.KindOf(err))
			require.Contains(t, err.Error(), "still Active; deactivate it first")
			require.Equal(t, "Active", b.status(t, b.other))

			res, err := testkit.RunAction(t, del, testkit.Env("run_test"), map[string]any{"access_key_id": b.other, "user_name": b.user, "allow_active": true})
			require.NoError(t, err)
			require.Contains(t, res.Message, "(was Active)")
			require.Equal(t, map[string]string{b.leaked: "Active"}, b.keyIDs(t))

			_, err = testkit.RunAction(t, del, testkit.Env("run_test"), map[string]any{"access_key_id": b.leaked, "user_name": "nobody-" + b.user})
			require.Error(t, err, "a user that does not exist is not 'already gone'")
			require.Equal(t, actions.KindPermanent, actions.KindOf(err))
			b.noSecrets(t, err, res)
		})
	}
}
