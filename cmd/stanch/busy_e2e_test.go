package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stanchhq/stanch/record"
	"github.com/stretchr/testify/require"
)

// runStatus reads a run's status with stanch runs show, as a person would.
func (e *e2e) runStatus(t *testing.T, runID string) string {
	t.Helper()
	res := e.stanch(nil, "runs", "show", runID, "--json", "--database", e.db)
	require.Equal(t, exitOK, res.code, res.stdout+res.stderr)
	var show struct {
		Run struct {
			Status string `json:"status"`
		} `json:"run"`
	}
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &show), res.stdout)
	return show.Run.Status
}

// waitRunStatus waits until the run that serve works has the status.
func (e *e2e) waitRunStatus(t *testing.T, runID, status string, serveLog *syncBuffer) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for e.runStatus(t, runID) != status {
		require.True(t, time.Now().Before(deadline), "run %s never became %s; serve's log:\n%s", runID, status, serveLog.String())
	}
}

// TestCommandsBesideTheProcessThatHoldsTheStore: the embedded store is
// worked by one process (here stanch serve, which holds its lock). Every
// command that changes runs still works beside it, handing the work to it;
// the one that cannot (stanch run, which must work the run itself) says
// which process holds the store, never a generic error.
func TestCommandsBesideTheProcessThatHoldsTheStore(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	_, serveCmd, serveLog := e.startServeWith(t, "testdata/approve-deactivate.yaml", "eb-secret")

	ingest := e.stanch(nil, "ingest", "--playbooks", "testdata/approve-deactivate.yaml", "--database", e.db, e.example("alerts/manual-aws-key.json"))
	require.Equal(t, exitOK, ingest.code, ingest.stdout+ingest.stderr)
	holder := fmt.Sprintf("stanch process %d (it holds ", serveCmd.Process.Pid)
	require.Contains(t, ingest.stdout, "another stanch process works this store and runs them: "+holder, "ingest names who runs its alerts")
	first := runIDPattern.FindString(ingest.stdout)
	if first == "" {
		first = e.onlyRun(t)
	}
	e.waitRunStatus(t, first, "waiting_approval", serveLog)

	approve := e.stanch(nil, "approve", first, "deactivate", "--by", "alice", "--database", e.db)
	require.Equal(t, exitOK, approve.code, approve.stdout+approve.stderr)
	require.Contains(t, approve.stdout, "another stanch process works this database; it resumes the run now: "+holder)
	e.waitRunStatus(t, first, "succeeded", serveLog)
	status, _ := e.sb.KeyStatus(account, leakedKey)
	require.Equal(t, "Inactive", status)

	// A second alert, about the other key: cancelled, retried, closed.
	doc, err := json.Marshal(map[string]any{"source": "manual", "dedup_key": "manual:second", "credential": map[string]any{"id": otherKey, "account": account}})
	require.NoError(t, err)
	second := filepath.Join(e.dir, "second.json")
	require.NoError(t, os.WriteFile(second, doc, 0o600))
	ingest = e.stanch(nil, "ingest", "--playbooks", "testdata/approve-deactivate.yaml", "--database", e.db, second)
	require.Equal(t, exitOK, ingest.code, ingest.stdout+ingest.stderr)
	var runID string
	list := e.stanch(nil, "runs", "list", "--json", "--database", e.db)
	var runs []record.RunInfo
	require.NoError(t, json.Unmarshal([]byte(list.stdout), &runs))
	for _, r := range runs {
		if r.DedupKey == "manual:second" {
			runID = r.ID
		}
	}
	require.NotEmpty(t, runID, list.stdout)
	e.waitRunStatus(t, runID, "waiting_approval", serveLog)

	cancel := e.stanch(nil, "runs", "cancel", runID, "--note", "false alarm", "--by", "bob", "--database", e.db)
	require.Equal(t, exitOK, cancel.code, cancel.stdout+cancel.stderr)
	require.Contains(t, cancel.stdout, runID+" cancelled")
	retry := e.stanch(nil, "runs", "retry", runID, "--by", "bob", "--database", e.db)
	require.Equal(t, exitOK, retry.code, retry.stdout+retry.stderr)
	require.Contains(t, retry.stdout, "another stanch process works this store and takes it up now: "+holder)
	e.waitRunStatus(t, runID, "waiting_approval", serveLog)
	closed := e.stanch(nil, "runs", "close", runID, "--note", "rotated by hand", "--by", "bob", "--database", e.db)
	require.Equal(t, exitOK, closed.code, closed.stdout+closed.stderr)
	require.Contains(t, closed.stdout, "closed by bob: rotated by hand")

	// stanch run works its run itself: it names who holds the store.
	run := e.stanch(nil, "run", "--playbook", "testdata/contain.yaml", "--alert", e.example("alerts/manual-aws-key.json"), "--database", e.db)
	require.Equal(t, exitFailed, run.code, run.stdout+run.stderr)
	require.Contains(t, run.stderr, fmt.Sprintf("database in use by another stanch process (pid %d holds", serveCmd.Process.Pid))
	serve := e.stanch(nil, "serve", "--listen", "127.0.0.1:0", "--playbooks", "testdata/contain.yaml", "--database", e.db)
	require.Equal(t, exitFailed, serve.code, serve.stdout+serve.stderr)
	require.Contains(t, serve.stderr, fmt.Sprintf("(pid %d holds", serveCmd.Process.Pid))
	for _, res := range []result{ingest, approve, cancel, retry, closed, run, serve} {
		require.NotContains(t, res.stdout+res.stderr, "not started")
	}
}

// onlyRun returns the id of the store's one run.
func (e *e2e) onlyRun(t *testing.T) string {
	t.Helper()
	list := e.stanch(nil, "runs", "list", "--json", "--database", e.db)
	var runs []record.RunInfo
	require.NoError(t, json.Unmarshal([]byte(list.stdout), &runs), list.stdout)
	require.Len(t, runs, 1)
	return runs[0].ID
}
