package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/internal/planted"
)

// exported is the part of a run of stanch runs export that the test reads.
type exported struct {
	Schema string `json:"schema"`
	Run    struct {
		ID        string    `json:"id"`
		Playbook  string    `json:"playbook"`
		Status    string    `json:"status"`
		CreatedAt time.Time `json:"created_at"`
	} `json:"run"`
	Alert struct {
		DedupKey   string `json:"dedup_key"`
		Title      string `json:"title"`
		Credential struct {
			ID string `json:"id"`
		} `json:"credential"`
	} `json:"alert"`
	Steps []struct {
		StepID string `json:"step_id"`
		Status string `json:"status"`
	} `json:"steps"`
	Approvals []json.RawMessage `json:"approvals"`
	Journal   []struct {
		Seq      int    `json:"seq"`
		Event    string `json:"event"`
		PrevHash string `json:"prev_hash"`
		Hash     string `json:"hash"`
	} `json:"journal"`
	FinalHash   string            `json:"final_hash"`
	ChainOK     bool              `json:"chain_ok"`
	ChainBreaks []json.RawMessage `json:"chain_breaks"`
}

// Two runs, one with secrets planted in its alert: runs export writes both
// in either format, with the schema's version, the redacted alert, steps,
// the chained journal and the final hash runs verify reports; its filters
// keep the runs they name; no planted secret leaves.
func TestRunsExport(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	res := e.runContain()
	require.Equal(t, exitOK, res.code, res.stdout+res.stderr)
	contained := runIDOf(t, res.stdout)

	other := filepath.Join(e.dir, "other.json")
	doc, err := json.Marshal(map[string]any{
		"source": "manual", "kind": "credential_exposed", "dedup_key": "manual:export:AKIAEXPORTEXAMPLE001",
		"title":      "Key and secret " + planted.Random + " pasted in chat",
		"credential": map[string]any{"provider": "aws", "kind": "access_key", "id": "AKIAEXPORTEXAMPLE001"},
		"raw":        map[string]any{"note": "the secret was " + planted.InTitle},
	})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(other, doc, 0o600))
	res = e.stanch(nil, "run", "--playbook", "testdata/contain.yaml", "--alert", other, "--database", e.db)
	otherID := runIDOf(t, res.stdout+res.stderr)

	export := func(args ...string) string {
		t.Helper()
		r := e.stanch(nil, append([]string{"runs", "export", "--database", e.db}, args...)...)
		require.Equal(t, exitOK, r.code, r.stdout+r.stderr)
		planted.RequireNone(t, "runs export "+strings.Join(args, " "), r.stdout)
		return r.stdout
	}
	ndjson := func(out string) []exported {
		t.Helper()
		var runs []exported
		sc := bufio.NewScanner(strings.NewReader(out))
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			var r exported
			require.NoError(t, json.Unmarshal(sc.Bytes(), &r), sc.Text())
			runs = append(runs, r)
		}
		require.NoError(t, sc.Err())
		return runs
	}

	lines := ndjson(export("--format", "ndjson"))
	require.Len(t, lines, 2)
	var array []exported
	require.NoError(t, json.Unmarshal([]byte(export("--format", "json")), &array))
	require.Equal(t, lines, array, "both formats hold the same runs")
	require.Equal(t, contained, lines[0].Run.ID, "oldest first")
	require.Equal(t, otherID, lines[1].Run.ID)

	verify := e.stanch(nil, "runs", "verify", "--json", "--database", e.db)
	require.Equal(t, exitOK, verify.code, verify.stdout+verify.stderr)
	var checks []struct {
		RunID     string `json:"run_id"`
		FinalHash string `json:"final_hash"`
	}
	require.NoError(t, json.Unmarshal([]byte(verify.stdout), &checks))
	finals := map[string]string{}
	for _, c := range checks {
		finals[c.RunID] = c.FinalHash
	}
	for _, r := range lines {
		require.Equal(t, "stanch.export/v1", r.Schema)
		require.Equal(t, "contain", r.Run.Playbook)
		require.NotEmpty(t, r.Alert.DedupKey)
		require.NotEmpty(t, r.Steps)
		require.NotNil(t, r.Approvals)
		require.True(t, r.ChainOK)
		require.Empty(t, r.ChainBreaks)
		require.NotEmpty(t, r.Journal)
		require.Equal(t, "run_created", r.Journal[0].Event)
		prev := ""
		for _, j := range r.Journal {
			require.Equal(t, prev, j.PrevHash, "entry %d chains to the one before", j.Seq)
			require.Len(t, j.Hash, 64)
			prev = j.Hash
		}
		require.Equal(t, prev, r.FinalHash, "the final hash is the last entry's")
		require.Equal(t, finals[r.Run.ID], r.FinalHash, "runs verify reports the same final hash")
	}
	require.Equal(t, "AKIAIOSFODNN7EXAMPLE", lines[0].Alert.Credential.ID)
	require.Equal(t, "identify", lines[0].Steps[0].StepID)
	require.NotContains(t, lines[1].Alert.Title, planted.Random, "the alert is redacted")

	// The filters.
	byCred := ndjson(export("--credential", "AKIAEXPORTEXAMPLE001"))
	require.Len(t, byCred, 1)
	require.Equal(t, otherID, byCred[0].Run.ID)
	byStatus := ndjson(export("--status", lines[0].Run.Status))
	require.NotEmpty(t, byStatus)
	for _, r := range byStatus {
		require.Equal(t, lines[0].Run.Status, r.Run.Status)
	}
	require.Len(t, ndjson(export("--playbook", "contain")), 2)
	require.Empty(t, ndjson(export("--playbook", "nope")))
	require.Equal(t, "[]\n", export("--playbook", "nope", "--format", "json"))
	since := lines[1].Run.CreatedAt.Format(time.RFC3339Nano)
	later := ndjson(export("--since", since))
	require.Len(t, later, 1)
	require.Equal(t, otherID, later[0].Run.ID)
	earlier := ndjson(export("--until", since))
	require.Len(t, earlier, 1)
	require.Equal(t, contained, earlier[0].Run.ID)
	require.Empty(t, ndjson(export("--since", "2999-01-01")))

	bad := e.stanch(nil, "runs", "export", "--format", "csv", "--database", e.db)
	require.NotEqual(t, exitOK, bad.code)
	require.Contains(t, bad.stderr, "want ndjson or json")
}
