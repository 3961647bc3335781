package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/record"
	"github.com/stanchhq/stanch/sandbox"
)

// exportOne is the export of the one run in e's store.
func (e *e2e) exportOne(t *testing.T) record.Run {
	t.Helper()
	res := e.stanch(nil, "runs", "export", "--database", e.db)
	require.Equal(t, exitOK, res.code, res.stdout+res.stderr)
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	require.Len(t, lines, 1, res.stdout)
	var rec record.Run
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &rec))
	return rec
}

// awsCallsSeen are the calls the sandbox answered for stanch's responder
// key (the AWS calls of the run's steps), as service:operation.
func awsCallsSeen(sb *sandbox.Sandbox) []string {
	var out []string
	for _, c := range sb.Calls() {
		if c.CallerKey == sandbox.ResponderKeyID {
			out = append(out, c.Service+":"+c.Action)
		}
	}
	return out
}

// TestExportHasEveryAPICall: every call the run's steps made to AWS is in
// the run's record, in order, with the account, the region and the
// request id the sandbox answered with, and attributed to its step; none
// carries a parameter.
func TestExportHasEveryAPICall(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	res := e.runContain()
	require.Equal(t, exitOK, res.code, res.stdout+res.stderr)
	rec := e.exportOne(t)

	var got []string
	steps := map[string]int{}
	for _, c := range rec.Calls {
		got = append(got, c.Service+":"+c.Operation)
		steps[c.StepID]++
		require.Equal(t, "ok", c.Outcome, "%+v", c)
		require.Regexp(t, `^[0-9a-f-]{36}$`, c.RequestID, "%+v", c)
		require.Equal(t, "us-east-1", c.Region, "%+v", c)
		require.False(t, c.At.IsZero())
		require.NotContains(t, c.Operation, "ci-bot", "no parameter")
	}
	require.Equal(t, awsCallsSeen(e.sb), got, "the record has exactly the calls the sandbox answered, in order")
	require.Contains(t, got, "iam:UpdateAccessKey")
	require.Positive(t, steps["identify"])
	require.Positive(t, steps["deactivate"])
	for _, c := range rec.Calls {
		if c.Operation == "UpdateAccessKey" {
			require.Equal(t, "deactivate", c.StepID)
			require.Equal(t, account, c.Account, "acted in the key's account")
		}
	}
}

// TestCallsOfAnAttemptThatDiedAreKept: stanch is killed after the key was
// deactivated and before the journal knew; the resumed run's record has
// the UpdateAccessKey of the attempt that died, and the read that found
// the key already inactive, once each.
func TestCallsOfAnAttemptThatDiedAreKept(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	crashed := e.runContain("STANCH_CRASHPOINT=done:deactivate")
	require.True(t, crashed.killed, crashed.stdout+crashed.stderr)
	resumed := e.runContain()
	require.Equal(t, exitOK, resumed.code, resumed.stdout+resumed.stderr)
	e.requireContained()

	rec := e.exportOne(t)
	var updates, attempts []int
	for _, c := range rec.Calls {
		if c.StepID != "deactivate" {
			continue
		}
		attempts = append(attempts, c.Attempt)
		if c.Operation == "UpdateAccessKey" {
			updates = append(updates, c.Attempt)
		}
	}
	require.Equal(t, []int{1}, updates, "the one UpdateAccessKey, by the attempt that died")
	require.Contains(t, attempts, 2, "the resumed attempt's reads are recorded too")
	seen := awsCallsSeen(e.sb)
	require.Len(t, rec.Calls, len(seen), "every call the sandbox answered, none twice")
}
