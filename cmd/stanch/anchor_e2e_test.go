package main

import (
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// docHash is a journal entry's hash as docs/runs.md defines it, written
// from the documentation alone: hex SHA-256 over "stanch-journal-v1", the
// run id, seq, time (microseconds), step, attempt, event, detail and the
// previous hash, each prefixed with its length as a uvarint.
func docHash(run string, seq int, at int64, step string, attempt int, event, detail, prev string) string {
	h := sha256.New()
	for _, f := range []string{"stanch-journal-v1", run, strconv.Itoa(seq), strconv.FormatInt(at, 10), step, strconv.Itoa(attempt), event, detail, prev} {
		var n [binary.MaxVarintLen64]byte
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(f)))])
		h.Write([]byte(f))
	}
	return hex.EncodeToString(h.Sum(nil))
}

var slackAnchor = regexp.MustCompile("Journal to entry (\\d+): sha256 `([0-9a-f]{64})`")

// Someone with the store rewrites a finished run's journal and recomputes
// every hash, as the documentation lets anyone do: the chain alone then
// verifies, but the anchor the Slack incident message kept when the run
// ended does not.
func TestSlackAnchorShowsARewrittenJournal(t *testing.T) {
	t.Parallel()
	e := newE2EWithSeed(t, slackSeed(t))
	playbook := filepath.Join(e.dir, "tell.yaml")
	require.NoError(t, os.WriteFile(playbook, []byte(tellPlaybook), 0o600))
	res := e.stanch(e.slackEnv(), "run", "--playbook", playbook, "--alert", e.example("alerts/manual-aws-key.json"), "--database", e.db)
	require.Equal(t, exitOK, res.code, res.stdout+res.stderr)
	runID := runIDOf(t, res.stdout)

	var anchor []string
	for _, m := range e.sb.SlackMessages(slackChannel) {
		if m.Metadata != nil && m.Metadata.EventPayload["key"] == "notify/tell" {
			anchor = slackAnchor.FindStringSubmatch(string(m.Blocks))
		}
	}
	require.NotNil(t, anchor, "the finished run's incident message carries the journal's anchor")
	seq, hash := anchor[1], anchor[2]

	verify := e.stanch(nil, "runs", "verify", runID, "--anchor", seq+":"+hash, "--database", e.db)
	require.Equal(t, exitOK, verify.code, verify.stdout+verify.stderr)
	require.Contains(t, verify.stdout, "anchor holds: entry "+seq)

	// The forger edits the effect and chains every entry again.
	db, err := sql.Open("sqlite", strings.TrimPrefix(e.db, "file:"))
	require.NoError(t, err)
	defer db.Close()
	_, err = db.Exec(`UPDATE stanch_journal SET detail = 'nothing was changed' WHERE run_id = ? AND event = 'effect'`, runID)
	require.NoError(t, err)
	rows, err := db.Query(`SELECT seq, at, step_id, attempt, event, detail FROM stanch_journal WHERE run_id = ? ORDER BY seq`, runID)
	require.NoError(t, err)
	type entry struct {
		seq, attempt        int
		at                  int64
		step, event, detail string
	}
	var entries []entry
	for rows.Next() {
		var en entry
		require.NoError(t, rows.Scan(&en.seq, &en.at, &en.step, &en.attempt, &en.event, &en.detail))
		entries = append(entries, en)
	}
	require.NoError(t, rows.Err())
	rows.Close()
	prev := ""
	for _, en := range entries {
		h := docHash(runID, en.seq, en.at, en.step, en.attempt, en.event, en.detail, prev)
		_, err := db.Exec(`UPDATE stanch_journal SET prev_hash = ?, hash = ? WHERE run_id = ? AND seq = ?`, prev, h, runID, en.seq)
		require.NoError(t, err)
		prev = h
	}
	require.NoError(t, db.Close())

	forged := e.stanch(nil, "runs", "verify", runID, "--database", e.db)
	require.Equal(t, exitOK, forged.code, "a chain recomputed by the documented formula holds on its own: %s%s", forged.stdout, forged.stderr)
	forged = e.stanch(nil, "runs", "verify", runID, "--anchor", seq+":"+hash, "--database", e.db)
	require.Equal(t, exitFailed, forged.code, forged.stdout+forged.stderr)
	require.Contains(t, forged.stderr, "entry "+seq+" of run "+runID+" has hash ")
	require.Contains(t, forged.stderr, "the journal up to it was rewritten")
}

// anchored splits a GitHub resolution comment into what the playbook wrote
// (and the link, if any) and the journal's anchor stanch added, and checks
// with stanch runs verify --anchor that the run's journal still holds it.
func (e *e2e) anchored(t *testing.T, runID, comment string) string {
	t.Helper()
	text, anchor, ok := strings.Cut(comment, " — journal entry ")
	require.True(t, ok, "the comment ends with the journal's anchor: %s", comment)
	seq, hash, ok := strings.Cut(anchor, ", sha256 ")
	require.True(t, ok, comment)
	res := e.stanch(nil, "runs", "verify", runID, "--anchor", seq+":"+hash, "--database", e.db)
	require.Equal(t, exitOK, res.code, res.stdout+res.stderr)
	require.Contains(t, res.stdout, "anchor holds: entry "+seq)
	return text
}
