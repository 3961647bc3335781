package aws

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
)

func TestContainDerived(t *testing.T) {
	t.Parallel()
	for name, mk := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := mk(t)
			contain := b.actions(t)["aws.contain_derived"]
			// As aws.cloudtrail_impact outputs them (after a trip through the
			// store's JSON): the attacker's key, and a session minted by the
			// leaked key's user.
			derived := []any{
				map[string]any{"access_key_id": b.other, "kind": "access_key", "user_name": "", "created_by_event": "CreateAccessKey", "created_by_key": b.leaked, "region": "us-east-1", "time": "2026-11-28T12:00:00Z", "depth": 1},
				map[string]any{"access_key_id": "ASIAATTACKERSESSION1", "kind": "session", "user_name": b.user, "created_by_event": "GetSessionToken", "created_by_key": b.leaked, "region": "us-east-1", "time": "2026-11-28T12:01:00Z", "depth": 1},
			}
			res, err := doAt(t, contain, time.Now(), map[string]any{"derived": derived})
			require.NoError(t, err)
			require.Equal(t, actions.Done, res.Outcome, res.Message)
			require.Equal(t, "Inactive", b.status(t, b.other))
			require.Equal(t, "Active", b.status(t, b.leaked), "only the derived credentials are touched")
			require.Contains(t, b.userPolicy(t, "AWSRevokeOlderSessions"), "aws:TokenIssueTime")
			contained := res.Outputs["contained"].([]map[string]any)
			require.Len(t, contained, 2)
			require.True(t, strings.HasPrefix(contained[1]["action"].(string), "revoke_sessions"))

			again, err := doAt(t, contain, time.Now().Add(-time.Hour), map[string]any{"derived": derived})
			require.NoError(t, err)
			require.Equal(t, actions.Already, again.Outcome)
		})
	}
}

func TestContainDerivedTriesEveryCredential(t *testing.T) {
	t.Parallel()
	b, _ := sandboxBackend(t)
	contain := b.actions(t)["aws.contain_derived"]
	_, err := doAt(t, contain, time.Now(), map[string]any{"derived": []any{
		map[string]any{"access_key_id": "AKIANOSUCHKEY0000001", "kind": "access_key", "user_name": "nobody"},
		map[string]any{"access_key_id": b.other, "kind": "access_key", "user_name": b.user},
	}})
	require.Error(t, err)
	require.Equal(t, actions.KindPermanent, actions.KindOf(err))
	require.Equal(t, "Inactive", b.status(t, b.other), "the second credential is contained although the first failed")
	require.Contains(t, err.Error(), "AKIANOSUCHKEY0000001 deactivate: failed")
}
