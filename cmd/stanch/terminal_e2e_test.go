package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/runner"
)

// hostile is text a terminal would act on: clear the screen, set the
// window title, overwrite the line, reverse what follows, and a C1 CSI.
const hostile = "\x1b[2J\x1b]0;owned\x07\rforged line\u202eevil\u0085\u009b31m"

// requireInert fails when out holds anything a terminal would act on.
func requireInert(t *testing.T, what, out string) {
	t.Helper()
	for _, bad := range []string{"\x1b", "\r", "\u202e", "\u0085", "\u009b", "\x07"} {
		require.NotContains(t, out, bad, "%s printed %q raw:\n%q", what, bad, out)
	}
}

// TestCLIPrintsOutsideTextInert: values from an alert (and from alerts
// that started no run) reach stanch run's progress lines, runs list and
// show, alerts list, plan and ingest summaries, and errors, escaped.
func TestCLIPrintsOutsideTextInert(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	doc, err := json.Marshal(map[string]any{
		"source": "manual", "dedup_key": "manual:" + hostile, "title": hostile, "severity": "critical",
		"credential": map[string]any{"id": leakedKey, "account": account, "principal": hostile},
		"location":   map[string]any{"repo": "acme/x", "path": hostile + ".py", "line": 3, "commit": hostile, "url": "https://example.com/" + hostile},
	})
	require.NoError(t, err)
	alertPath := filepath.Join(e.dir, "hostile.json")
	require.NoError(t, os.WriteFile(alertPath, doc, 0o600))

	plan := e.stanch(nil, "plan", "--playbook", "testdata/contain.yaml", "--alert", alertPath)
	require.Equal(t, exitOK, plan.code, plan.stdout+plan.stderr)
	requireInert(t, "plan", plan.stdout+plan.stderr)

	run := e.stanch(nil, "run", "--playbook", "testdata/contain.yaml", "--alert", alertPath, "--database", e.db)
	require.Equal(t, exitOK, run.code, run.stdout+run.stderr)
	require.Contains(t, run.stdout, `manual:\x1b[2J\x1b]0;owned\x07\rforged line\u202eevil`, "shown, escaped")
	requireInert(t, "run", run.stdout+run.stderr)
	runID := runIDPattern.FindString(run.stdout)

	// An alert that started no run, as a worker records one.
	ctx := context.Background()
	db, err := runner.OpenDatabase(ctx, e.db)
	require.NoError(t, err)
	store := runner.NewStore(db, nil)
	require.NoError(t, store.Migrate(ctx))
	require.NoError(t, store.RecordUnacted(ctx, runner.Unacted{DedupKey: "github:acme/x#1" + hostile, Source: "github", Reference: "acme/x#1" + hostile, Reason: "GitHub said " + hostile}))
	require.NoError(t, db.Close())

	for _, args := range [][]string{
		{"runs", "list"}, {"runs", "show", runID}, {"alerts", "list"},
		{"runs", "list", "--json"}, {"runs", "show", runID, "--json"}, {"alerts", "list", "--json"},
	} {
		res := e.stanch(nil, append(args, "--database", e.db)...)
		require.Equal(t, exitOK, res.code, "%v: %s", args, res.stdout+res.stderr)
		requireInert(t, strings.Join(args, " "), res.stdout+res.stderr)
	}
	list := e.stanch(nil, "alerts", "list", "--json", "--database", e.db)
	var unacted []map[string]any
	require.NoError(t, json.Unmarshal([]byte(list.stdout), &unacted), "still JSON")
	require.Contains(t, unacted[0]["dedup_key"], hostile, "and the same values")

	ingest := e.stanch(nil, "ingest", "--playbooks", "testdata/contain.yaml", "--database", e.db, alertPath)
	require.Equal(t, exitOK, ingest.code, ingest.stdout+ingest.stderr)
	requireInert(t, "ingest", ingest.stdout+ingest.stderr)
}

// TestMalformedKeyIDIsRefusedNamingTheField: credential.id " AKIA… " is
// the key id; "key=AKIA…", two ids, a line break or an escape sequence
// around it are refused before anything is stored, naming the field and
// never printing its value.
func TestMalformedKeyIDIsRefusedNamingTheField(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	write := func(id string) string {
		doc, err := json.Marshal(map[string]any{"source": "manual", "credential": map[string]any{"id": id, "account": account}})
		require.NoError(t, err)
		path := filepath.Join(t.TempDir(), "alert.json")
		require.NoError(t, os.WriteFile(path, doc, 0o600))
		return path
	}
	for _, id := range []string{"key=" + leakedKey, leakedKey + " " + otherKey, "x\n" + leakedKey, leakedKey + "\x1b[2J"} {
		for _, args := range [][]string{
			{"run", "--playbook", "testdata/contain.yaml", "--alert", write(id), "--database", e.db},
			{"ingest", "--playbooks", "testdata/contain.yaml", "--database", e.db, write(id)},
		} {
			res := e.stanch(nil, args...)
			require.Equal(t, exitFailed, res.code, "%q %s: %s", id, args[0], res.stdout+res.stderr)
			require.Contains(t, res.stderr, "invalid alert: credential.id ")
			require.NotContains(t, res.stdout+res.stderr, id)
			requireInert(t, args[0], res.stdout+res.stderr)
		}
	}
	status, _ := e.sb.KeyStatus(account, leakedKey)
	require.Equal(t, "Active", status, "nothing ran")
	require.Zero(t, e.runCount())

	trimmed := e.stanch(nil, "run", "--playbook", "testdata/contain.yaml", "--alert", write(" "+leakedKey+"\n"), "--database", e.db)
	require.Equal(t, exitOK, trimmed.code, trimmed.stdout+trimmed.stderr)
	e.requireContained()
}
