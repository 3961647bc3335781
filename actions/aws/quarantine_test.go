package aws

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
)

func TestQuarantineAndRelease(t *testing.T) {
	t.Parallel()
	for name, mk := range backends(t) {
		for _, mode := range []string{"managed", "inline"} {
			t.Run(name+"/"+mode, func(t *testing.T) {
				t.Parallel()
				b := mk(t)
				acts := b.actions(t)
				with := map[string]any{"user_name": b.user, "mode": mode}

				res, err := do(t, acts["aws.quarantine"], with)
				require.NoError(t, err)
				require.Equal(t, actions.Done, res.Outcome, res.Message)
				again, err := do(t, acts["aws.quarantine"], with)
				require.NoError(t, err)
				require.Equal(t, actions.Already, again.Outcome)

				out, err := do(t, acts["aws.release_quarantine"], with)
				require.NoError(t, err)
				require.Equal(t, actions.Done, out.Outcome, out.Message)
				outAgain, err := do(t, acts["aws.release_quarantine"], with)
				require.NoError(t, err)
				require.Equal(t, actions.Already, outAgain.Outcome)
				if b.effective != nil {
					op := map[string]string{"managed": "AttachUserPolicy", "inline": "PutUserPolicy"}[mode]
					require.Equal(t, 1, b.effective(op))
				}
			})
		}
	}
}

func TestQuarantineRefusesBadInput(t *testing.T) {
	t.Parallel()
	b, _ := sandboxBackend(t)
	q := b.actions(t)["aws.quarantine"]
	_, err := q.Decode(map[string]any{"user_name": "a", "mode": "lock"})
	require.ErrorContains(t, err, `mode "lock"`)
	_, err = do(t, q, map[string]any{"user_name": b.user, "policy_arn": "arn:aws:iam::aws:policy/NoSuchPolicy"})
	require.Error(t, err)
	require.Equal(t, actions.KindPermanent, actions.KindOf(err))
}
