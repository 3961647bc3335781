package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The fake key of the real gitleaks reports in triggers/testdata, as it
// sits in the scanned file there.
const (
	gitleaksKeyID  = "AKIAQYLPMN5HHHFPZAM2"
	gitleaksSecret = "tvI7fG3k+Qz0LmWp2sXo9RbNcV4hJ1uYdEeA8KjT"
	// truffleHogSecret is planted in triggers/testdata/trufflehog-mixed.jsonl.
	truffleHogSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
)

// gitleaksE2E is the e2e sandbox with the gitleaks key belonging to a user.
func gitleaksE2E(t *testing.T) *e2e {
	t.Helper()
	seed, err := os.ReadFile("testdata/seed.yaml")
	require.NoError(t, err)
	s := strings.Replace(string(seed), "      - name: ci-bot\n", "      - name: deploy-bot\n        keys:\n          - id: "+gitleaksKeyID+"\n            secret: "+gitleaksSecret+"\n      - name: ci-bot\n", 1)
	return newE2EWithSeed(t, []byte(s))
}

func (e *e2e) testdata(name string) string {
	return filepath.Join(e.root, "triggers", "testdata", name)
}

func requireNowhere(t *testing.T, e *e2e, secret string, outputs ...string) {
	t.Helper()
	for _, out := range outputs {
		require.NotContains(t, out, secret)
	}
	require.NotContains(t, dbFiles(t, e), secret, "the store")
}

// TestIngestRedactedGitleaksReport ingests a real `gitleaks git --redact`
// report, whose AWS finding says REDACTED where the key id was. Without the
// scanned files at hand, ingest names both findings as ones it could not
// act on, says how to fix that, and exits 1 (it used to exit 0, the key
// ignored). With --source, the key id is read from the scanned file and
// the key is contained.
func TestIngestRedactedGitleaksReport(t *testing.T) {
	t.Parallel()
	e := gitleaksE2E(t)
	report := e.testdata("gitleaks-git-redacted.json")
	blind := e.stanch(nil, "ingest", "--playbooks", "testdata/contain.yaml", "--database", e.db, report)
	require.Equal(t, 1, blind.code, "stdout:\n%s\nstderr:\n%s", blind.stdout, blind.stderr)
	require.Contains(t, blind.stderr, report+": could not act on finding 2 (deploy/settings.py:4, aws-access-token): the report hides the secret (gitleaks --redact) and deploy/settings.py cannot be read here")
	require.Contains(t, blind.stderr, "finding 1 (deploy/settings.py:5, generic-api-key)")
	require.Contains(t, blind.stderr, "--source DIR")
	require.Contains(t, blind.stderr, "2 finding(s) could not be acted on")
	status, _ := e.sb.KeyStatus(account, gitleaksKeyID)
	require.Equal(t, "Active", status)

	seen := e.stanch(nil, "ingest", "--playbooks", "testdata/contain.yaml", "--database", e.db, "--source", e.testdata("gitleaks-scan/repo"), report)
	require.Equal(t, 0, seen.code, "stdout:\n%s\nstderr:\n%s", seen.stdout, seen.stderr)
	status, _ = e.sb.KeyStatus(account, gitleaksKeyID)
	require.Equal(t, "Inactive", status)
	requireNowhere(t, e, gitleaksSecret, blind.stdout, blind.stderr, seen.stdout, seen.stderr)

	help := e.stanch(nil, "ingest", "--help")
	require.Contains(t, help.stdout, "--source DIR")
}

// TestIngestTruffleHogWithLogLines ingests truffleHog output written with
// 2>&1: its log lines are counted and ignored, the finding from an early
// 3.x release (Raw in base64) is read, and the finding cut short is named;
// the others are acted on, then ingest exits 1.
func TestIngestTruffleHogWithLogLines(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	report := e.testdata("trufflehog-mixed.jsonl")
	res := e.stanch(nil, "ingest", "--playbooks", "testdata/contain.yaml", "--database", e.db, report)
	require.Equal(t, 1, res.code, "stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
	require.Contains(t, res.stderr, report+": could not act on line 4: a truffleHog finding that is not valid JSON (cut short or corrupted)")
	require.Contains(t, res.stderr, report+": ignored 2 line(s) that are not findings (a truffleHog log line): line 1, line 5")
	require.Contains(t, res.stderr, "1 finding(s) could not be acted on (named above); the other 2 were handed to the playbooks")
	for _, key := range []string{leakedKey, otherKey} {
		status, _ := e.sb.KeyStatus(account, key)
		require.Equal(t, "Inactive", status, key)
	}
	requireNowhere(t, e, truffleHogSecret, res.stdout, res.stderr)

	// stanch run --alert reads the same way, names what it skipped, and
	// its exit code is the runs'.
	run := e.stanch(nil, "run", "--playbook", "testdata/contain.yaml", "--alert", report, "--database", e.db)
	require.Equal(t, 0, run.code, "stdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)
	require.Contains(t, run.stderr, report+": could not act on line 4")

	// Nothing left to act on is an error, as before.
	none := e.stanch(nil, "run", "--playbook", "testdata/contain.yaml", "--alert", e.testdata("gitleaks-git-redacted.json"), "--database", e.db)
	require.Equal(t, 1, none.code)
	require.Contains(t, none.stderr, "could not act on finding 2 (deploy/settings.py:4, aws-access-token)")
	require.Contains(t, none.stderr, "no findings in it")
}
