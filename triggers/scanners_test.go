package triggers

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/alert"
)

// gitleaksSecret is the fake AWS secret access key in the scanned file of
// the real gitleaks reports (testdata/gitleaks-scan).
const gitleaksSecret = "tvI7fG3k+Qz0LmWp2sXo9RbNcV4hJ1uYdEeA8KjT"

// gitleaksKeyID is the fake key id next to it.
const gitleaksKeyID = "AKIAQYLPMN5HHHFPZAM2"

func requireNoSecret(t *testing.T, rep Report, secrets ...string) {
	t.Helper()
	for _, a := range rep.Alerts {
		for _, s := range secrets {
			require.NotContains(t, string(a.Raw)+a.Title+a.Credential.ID+a.DedupKey, s)
		}
	}
	for _, sk := range rep.Skipped {
		for _, s := range secrets {
			require.NotContains(t, sk.Where+sk.Reason, s)
		}
	}
}

// TestTruffleHogMixedWithItsLogLines reads truffleHog output as it lands in
// a file with 2>&1: JSON log lines around the findings, a finding in the
// current format, one from an early 3.x release (Raw in base64, the key id
// in Redacted), and a finding cut short. The readable findings become
// alerts; the log lines are counted as lines that are not findings; the
// cut-short one is named.
func TestTruffleHogMixedWithItsLogLines(t *testing.T) {
	t.Parallel()
	rep, err := ParseDocument(load(t, "trufflehog-mixed.jsonl"), now, SourceFiles{})
	require.NoError(t, err)
	requireNoSecret(t, rep, planted...)

	require.Len(t, rep.Alerts, 2)
	current, early := rep.Alerts[0], rep.Alerts[1]
	require.Equal(t, "AKIAIOSFODNN7EXAMPLE", current.Credential.ID)
	require.Equal(t, alert.Location{Repo: "acme/payments-service", Path: "deploy/settings.py", Line: 12, Commit: "4f1c9d2a7e3b5c6d8e9f0a1b2c3d4e5f6a7b8c9d"}, current.Location)
	require.Equal(t, "AKIAI44QH8DHBEXAMPLE", early.Credential.ID, "read from Redacted; Raw is base64")
	require.Equal(t, "ops/backup.sh", early.Location.Path)
	require.NotContains(t, string(early.Raw), "QUtJQUk0NFFIOERIQkVYQU1QTEU=", "Raw is redacted whatever its encoding")

	require.Equal(t, []Skipped{
		{Where: "line 1", Reason: "a truffleHog log line", NotAFinding: true},
		{Where: "line 4", Reason: "a truffleHog finding that is not valid JSON (cut short or corrupted)"},
		{Where: "line 5", Reason: "a truffleHog log line", NotAFinding: true},
	}, rep.Skipped)
	require.Equal(t, []Skipped{rep.Skipped[1]}, rep.Unactionable())
}

// truffleHog's Redacted is the start of the secret for most detectors: it
// is not kept either (the key id of an AWS finding is).
func TestTruffleHogRedactedFieldIsNotKept(t *testing.T) {
	t.Parallel()
	lines := strings.Split(strings.TrimSpace(string(load(t, "trufflehog.jsonl"))), "\n")
	partial := strings.Replace(lines[1], `"Redacted":""`, `"Redacted":"ghp_EXAMPLEexampleEXAMP"`, 1)
	rep, err := ParseTruffleHog([]byte(lines[0]+"\n"+partial), now)
	require.NoError(t, err)
	require.Len(t, rep.Alerts, 2)
	require.Contains(t, string(rep.Alerts[0].Raw), `"Redacted":"AKIAIOSFODNN7EXAMPLE"`)
	require.NotContains(t, string(rep.Alerts[1].Raw), "ghp_EXAMPLEexampleEXAMP")
}

// A stream that starts with log lines is still recognised.
func TestRecogniseTruffleHogAfterLogLines(t *testing.T) {
	t.Parallel()
	require.Equal(t, FormatTruffleHog, Recognise(load(t, "trufflehog-mixed.jsonl")))
	require.Equal(t, FormatTruffleHog, Recognise([]byte(`{"level":"info-0","ts":"2026-11-28T12:00:03Z","logger":"trufflehog","msg":"finished scanning","chunks":0}`)))
	rep, err := ParseDocument([]byte(`{"level":"info-0","ts":"2026-11-28T12:00:03Z","logger":"trufflehog","msg":"finished scanning","chunks":0}`), now, SourceFiles{})
	require.NoError(t, err, "a scan that found nothing")
	require.Empty(t, rep.Alerts)
	require.Empty(t, rep.Unactionable())
}

// An AWS finding that names no key id anywhere is one stanch cannot act
// on; the others are still read.
func TestTruffleHogAWSFindingWithoutKeyID(t *testing.T) {
	t.Parallel()
	lines := strings.Split(strings.TrimSpace(string(load(t, "trufflehog.jsonl"))), "\n")
	noID := strings.NewReplacer(`"Raw":"AKIAIOSFODNN7EXAMPLE"`, `"Raw":""`, `"RawV2":"AKIAIOSFODNN7EXAMPLEwJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"`, `"RawV2":"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"`, `"Redacted":"AKIAIOSFODNN7EXAMPLE"`, `"Redacted":""`).Replace(lines[0])
	rep, err := ParseTruffleHog([]byte(noID+"\n"+lines[1]), now)
	require.NoError(t, err)
	requireNoSecret(t, rep, planted...)
	require.Len(t, rep.Alerts, 1)
	require.Equal(t, []Skipped{{Where: "line 1 (deploy/settings.py:12, AWS)", Reason: "an AWS finding without an access key id in Raw, RawV2 or Redacted"}}, rep.Skipped)
}

// TestGitleaksRealReport reads gitleaks 8.30.1's own report of the scratch
// repository in testdata/gitleaks-scan.
func TestGitleaksRealReport(t *testing.T) {
	t.Parallel()
	rep, err := ParseDocument(load(t, "gitleaks-git.json"), now, SourceFiles{})
	require.NoError(t, err)
	requireNoSecret(t, rep, gitleaksSecret)
	require.Empty(t, rep.Skipped)
	require.Len(t, rep.Alerts, 2)
	require.Equal(t, "generic-api-key", rep.Alerts[0].Credential.Provider)
	require.Equal(t, gitleaksKeyID, rep.Alerts[1].Credential.ID)
	require.Equal(t, alert.Location{Path: "deploy/settings.py", Line: 4, Commit: "d388c3d87144e514a0cf4f785e8ec6a65f86731f"}, rep.Alerts[1].Location)
}

// TestGitleaksRedactedReadsTheKeyIDFromTheScannedFile: a `gitleaks
// --redact` report says REDACTED where the key id was, which used to turn
// the AWS finding into a token nobody's playbook matched. With the scanned
// directory at hand, the key id is read from the reported line (the AWS
// rule) or the lines around it (the secret on the next line).
func TestGitleaksRedactedReadsTheKeyIDFromTheScannedFile(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct {
		report string
		dirs   []string
	}{
		"git": {"gitleaks-git-redacted.json", []string{"testdata/gitleaks-scan/repo"}},
		"dir": {"gitleaks-dir-redacted.json", []string{"testdata/nowhere", "testdata/gitleaks-scan"}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rep, err := ParseDocument(load(t, c.report), now, SourceFiles{Dirs: c.dirs})
			require.NoError(t, err)
			requireNoSecret(t, rep, gitleaksSecret)
			require.Empty(t, rep.Skipped)
			require.Len(t, rep.Alerts, 2)
			for _, a := range rep.Alerts {
				require.Equal(t, alert.Credential{Provider: "aws", Kind: alert.CredentialAccessKey, ID: gitleaksKeyID}, a.Credential)
			}
			lines := map[int]bool{rep.Alerts[0].Location.Line: true, rep.Alerts[1].Location.Line: true}
			require.Equal(t, map[int]bool{4: true, 5: true}, lines)
		})
	}
}

// Without the scanned files, a redacted finding is one stanch cannot act
// on, and says how to fix that.
func TestGitleaksRedactedWithoutTheFiles(t *testing.T) {
	t.Parallel()
	rep, err := ParseDocument(load(t, "gitleaks-git-redacted.json"), now, SourceFiles{Dirs: []string{"testdata/nowhere"}})
	require.NoError(t, err)
	require.Empty(t, rep.Alerts)
	require.Len(t, rep.Unactionable(), 2)
	require.Equal(t, "finding 2 (deploy/settings.py:4, aws-access-token)", rep.Skipped[1].Where)
	require.Contains(t, rep.Skipped[1].Reason, "the report hides the secret (gitleaks --redact) and deploy/settings.py cannot be read here (tried testdata/nowhere/deploy/settings.py)")
	require.Contains(t, rep.Skipped[1].Reason, "--source DIR")

	rep, err = ParseDocument(load(t, "gitleaks-git-redacted.json"), now, SourceFiles{})
	require.NoError(t, err)
	require.Len(t, rep.Unactionable(), 2, "the zero SourceFiles reads no file")
}

// A file without a key id near the line leaves the finding unactionable.
func TestGitleaksRedactedKeyIDTooFar(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	files := SourceFiles{Dirs: []string{dir}}
	writeLines(t, dir+"/far.py", "AWS_ACCESS_KEY_ID = \""+gitleaksKeyID+"\"", "", "", "", "", "SECRET = \"REDACTED-in-the-report\"")
	_, err := files.keyIDNear("far.py", 6, "")
	require.ErrorContains(t, err, "no AWS access key id is on line 6 of far.py or within 3 lines of it")
	id, err := files.keyIDNear("far.py", 4, "")
	require.NoError(t, err)
	require.Equal(t, gitleaksKeyID, id)
	_, err = files.keyIDNear("far.py", 60, "")
	require.ErrorContains(t, err, "far.py has no line 60")
}

func writeLines(t *testing.T, path string, lines ...string) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600))
}
