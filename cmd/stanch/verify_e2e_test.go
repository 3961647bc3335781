package main

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/runner"
)

// Rows changed behind stanch's back, straight in the SQLite file: runs
// verify names the entry and what happened to it, and fails.
func TestRunsVerifyNamesTamperedEntries(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	res := e.runContain()
	require.Equal(t, exitOK, res.code, res.stdout+res.stderr)
	runID := runIDOf(t, res.stdout)

	ok := e.stanch(nil, "runs", "verify", "--database", e.db)
	require.Equal(t, exitOK, ok.code, ok.stdout+ok.stderr)
	require.Contains(t, ok.stdout, runID+"  ok: ")

	db, err := runner.OpenDatabase(context.Background(), e.db)
	require.NoError(t, err)
	for _, q := range []string{
		`UPDATE stanch_journal SET detail = 'nothing changed' WHERE run_id = '` + runID + `' AND seq = 2`,
		`DELETE FROM stanch_journal WHERE run_id = '` + runID + `' AND seq = 4`,
	} {
		_, err := db.SQL.Exec(q)
		require.NoError(t, err)
	}
	require.NoError(t, db.Close())

	broken := e.stanch(nil, "runs", "verify", runID, "--database", e.db)
	require.Equal(t, exitFailed, broken.code, broken.stdout+broken.stderr)
	require.Contains(t, broken.stdout, runID+"  BROKEN")
	require.Contains(t, broken.stdout, "entry 2: edited: entry 2 (")
	require.Contains(t, broken.stdout, "entry 4: deleted: entry 4 missing: entry 5 follows entry 3")
	require.Contains(t, broken.stderr, "the journal of 1 run(s) does not verify")

	asJSON := e.stanch(nil, "runs", "verify", runID, "--json", "--database", e.db)
	require.Equal(t, exitFailed, asJSON.code, asJSON.stderr)
	var out []struct {
		RunID  string              `json:"run_id"`
		OK     bool                `json:"ok"`
		Breaks []runner.ChainBreak `json:"breaks"`
	}
	require.NoError(t, json.Unmarshal([]byte(asJSON.stdout), &out), asJSON.stdout)
	require.Len(t, out, 1)
	require.False(t, out[0].OK)
	require.Equal(t, []string{"edited", "deleted"}, []string{out[0].Breaks[0].Problem, out[0].Breaks[1].Problem})

	missing := e.stanch(nil, "runs", "verify", "run_nope", "--database", e.db)
	require.NotEqual(t, exitOK, missing.code)
}
