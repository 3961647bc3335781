package runner

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/internal/planted"
)

// decidedEntries returns the journal's approval_approved and
// approval_denied details of a run.
func decidedEntries(t *testing.T, s *Store, runID string) []string {
	t.Helper()
	journal, err := s.Journal(context.Background(), runID)
	require.NoError(t, err)
	var out []string
	for _, e := range journal {
		if e.Event == "approval_approved" || e.Event == "approval_denied" {
			out = append(out, e.Event+" "+e.Detail)
		}
	}
	return out
}

// Every decision keeps who made it twice over: the id the approvers list
// matched and the display name people recognise, in the approval and in
// the journal; the first decision's approver stays.
func TestDecideRecordsApproverIDAndName(t *testing.T) {
	t.Parallel()
	for name, open := range testDatabases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := newBundle(t, open)
			pb := b.playbook(t, fmt.Sprintf(approvalPlaybook, "1h", "deny"))
			run := submitOne(t, b, pb, testAlert("AKIAIOSFODNN7EXAMPLE"))
			b.waitStatus(t, run.ID, RunWaitingApproval)

			a, first, err := b.runner.Decide(ctx, Decision{RunID: run.ID, StepID: "destroy", Decision: Approved, By: "alice", ByName: "Alice Smith", Via: "slack"})
			require.NoError(t, err)
			require.True(t, first)
			require.Equal(t, "alice", a.DecidedBy)
			require.Equal(t, "Alice Smith", a.DecidedByName)
			_, first, err = b.runner.Decide(ctx, Decision{RunID: run.ID, StepID: "destroy", Decision: Denied, By: "bob", ByName: "Bob Jones", Via: "slack"})
			require.NoError(t, err)
			require.False(t, first)

			stored, err := b.runner.Store().Approval(ctx, run.ID, "destroy")
			require.NoError(t, err)
			require.Equal(t, "alice", stored.DecidedBy)
			require.Equal(t, "Alice Smith", stored.DecidedByName, "the second decision changed nothing")
			require.Equal(t, []string{"approval_approved by Alice Smith (alice) via slack"}, decidedEntries(t, b.runner.Store(), run.ID))
			require.Equal(t, RunSucceeded, b.waitStatus(t, run.ID, RunSucceeded, RunFailed).Status)
		})
	}
}

// The store writes what the runner hands it: an approver without a name
// (users.info failed) is journalled by id alone, and a display name, typed
// by whoever owns it, is redacted like any text.
func TestStoreDecideNameMissingOrSecret(t *testing.T) {
	t.Parallel()
	for name, open := range testDatabases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := newBundle(t, open)
			pb := b.playbook(t, fmt.Sprintf(approvalPlaybook, "1h", "deny"))
			nameless := submitOne(t, b, pb, testAlert("AKIAIOSFODNN7EXAMPLE"))
			secret := submitOne(t, b, pb, testAlert("AKIAI44QH8DHBEXAMPLE"))
			b.waitStatus(t, nameless.ID, RunWaitingApproval)
			b.waitStatus(t, secret.ID, RunWaitingApproval)

			a, first, err := b.runner.Store().Decide(ctx, nameless.ID, "destroy", Denied, Approver{ID: "U0BOB"}, "slack")
			require.NoError(t, err)
			require.True(t, first)
			require.Equal(t, "U0BOB", a.DecidedBy)
			require.Empty(t, a.DecidedByName)
			require.Equal(t, []string{"approval_denied by U0BOB via slack"}, decidedEntries(t, b.runner.Store(), nameless.ID))

			a, first, err = b.runner.Store().Decide(ctx, secret.ID, "destroy", Approved, Approver{ID: "U0ALICE", Name: "Alice " + planted.Random}, "slack")
			require.NoError(t, err)
			require.True(t, first)
			require.Equal(t, "U0ALICE", a.DecidedBy)
			require.Contains(t, a.DecidedByName, "Alice")
			entries := decidedEntries(t, b.runner.Store(), secret.ID)
			require.Len(t, entries, 1)
			require.Contains(t, entries[0], "(U0ALICE) via slack")
			planted.RequireNone(t, "a decided approval", a.DecidedByName, entries)
		})
	}
}
