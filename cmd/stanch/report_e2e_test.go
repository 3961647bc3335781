package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/internal/planted"
)

// The example playbook runs against the sandbox up to its second approval
// (the first approved with stanch approve); stanch report writes both
// reports of it: one bar per step, the impact step's outputs, the
// approval with who decided, the final hash runs verify prints. A run
// whose alert carries planted secrets reports none of them. An unknown
// run, and a report with nowhere to go, are refused with what to do.
func TestReportCommand(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	waiting := e.stanch(nil, "run", "--playbook", e.example("playbooks/aws-key-leaked.yaml"), "--alert", e.example("alerts/manual-aws-key.json"), "--database", e.db)
	require.Equal(t, exitWaiting, waiting.code, waiting.stdout+waiting.stderr)
	id := runIDOf(t, waiting.stdout)
	idx := strings.Index(waiting.stdout, "stanch approve ")
	require.GreaterOrEqual(t, idx, 0, waiting.stdout)
	step := strings.Fields(waiting.stdout[idx:])[3]
	approved := e.stanch(nil, "approve", id, step, "--by", "security-oncall", "--database", e.db)
	require.Contains(t, []int{exitOK, exitWaiting}, approved.code, approved.stdout+approved.stderr)

	htmlFile, mdFile := filepath.Join(e.dir, "report.html"), filepath.Join(e.dir, "report.md")
	res := e.stanch(nil, "report", id, "--html", htmlFile, "--md", mdFile, "--database", e.db)
	require.Equal(t, exitOK, res.code, res.stdout+res.stderr)
	require.Empty(t, res.stdout, "the reports go to their files")
	page, err := os.ReadFile(htmlFile)
	require.NoError(t, err)
	md, err := os.ReadFile(mdFile)
	require.NoError(t, err)

	show := e.stanch(nil, "runs", "show", id, "--json", "--database", e.db)
	require.Equal(t, exitOK, show.code, show.stderr)
	var shown struct {
		Steps []struct {
			StepID string `json:"step_id"`
		} `json:"steps"`
	}
	require.NoError(t, json.Unmarshal([]byte(show.stdout), &shown))
	require.Equal(t, len(shown.Steps), strings.Count(string(page), `<rect class="step `), "one bar per step")
	for _, s := range shown.Steps {
		require.True(t, strings.Contains(string(page), `data-step="`+s.StepID+`"`), "no bar for step %s", s.StepID)
	}

	// Whether the chain holds is runs verify's to say (its own tests);
	// the report carries the final hash it prints.
	verify := e.stanch(nil, "runs", "verify", id, "--json", "--database", e.db)
	var checks []struct {
		FinalHash string `json:"final_hash"`
	}
	require.NoError(t, json.Unmarshal([]byte(verify.stdout), &checks))
	require.Len(t, checks, 1)
	for name, text := range map[string]string{"HTML": string(page), "Markdown": string(md)} {
		for _, want := range []string{checks[0].FinalHash, "stanch runs verify " + id, "security-oncall", leakedKey, "aws.cloudtrail_impact"} {
			require.True(t, strings.Contains(text, want), "the %s report does not hold %q", name, want)
		}
	}
	require.True(t, strings.HasPrefix(string(md), "# Incident report: `"+id+"`"))

	stdout := e.stanch(nil, "report", id, "--md", "-", "--database", e.db)
	require.Equal(t, exitOK, stdout.code, stdout.stderr)
	require.True(t, strings.HasPrefix(stdout.stdout, "# Incident report"), stdout.stdout)

	// Secrets planted in an alert reach neither report.
	alertFile := filepath.Join(e.dir, "planted.json")
	doc, err := json.Marshal(map[string]any{
		"source": "manual", "kind": "credential_exposed", "dedup_key": "manual:report:AKIAREPORTEXAMPLE001",
		"title":      "Key and secret " + planted.Random + " pasted in chat",
		"credential": map[string]any{"provider": "aws", "kind": "access_key", "id": "AKIAREPORTEXAMPLE001"},
		"location":   map[string]any{"path": "deploy/" + planted.InPath + "/env", "url": "https://chat.example.com/m?k=" + planted.InURL},
		"raw":        map[string]any{"note": "the secret was " + planted.InTitle},
	})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(alertFile, doc, 0o600))
	other := e.stanch(nil, "run", "--playbook", "testdata/contain.yaml", "--alert", alertFile, "--database", e.db)
	otherID := runIDOf(t, other.stdout+other.stderr)
	res = e.stanch(nil, "report", otherID, "--html", htmlFile, "--md", mdFile, "--database", e.db)
	require.Equal(t, exitOK, res.code, res.stdout+res.stderr)
	planted.RequireNoneInFiles(t, "written by stanch report", filepath.Join(e.dir, "report.*"))

	unknown := e.stanch(nil, "report", "run_nosuchrun", "--md", "-", "--database", e.db)
	require.Equal(t, exitFailed, unknown.code)
	require.Contains(t, unknown.stderr, "no run run_nosuchrun")
	require.Contains(t, unknown.stderr, "stanch runs list")

	nowhere := e.stanch(nil, "report", id, "--database", e.db)
	require.Equal(t, exitUsage, nowhere.code)
	require.Contains(t, nowhere.stderr, "--html FILE, --md FILE")
	both := e.stanch(nil, "report", id, "--html", "-", "--md", "-", "--database", e.db)
	require.Equal(t, exitUsage, both.code)

	help := e.stanch(nil, "report", "--help")
	require.Equal(t, exitOK, help.code)
	require.Contains(t, help.stdout, "--html")
}
