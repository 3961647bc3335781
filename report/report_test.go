package report_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"html"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/internal/planted"
	"github.com/stanchhq/stanch/record"
	"github.com/stanchhq/stanch/report"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata from what the report writes now")

// seeded is the record of testdata/run.json: a run with fixed times, two
// alerts, steps of every outcome, two approvals (one approved, one
// denied), API calls, a journal and an impact step with a 24-point
// timeline over two regions and three APIs.
func seeded(t testing.TB) record.Run {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "run.json"))
	require.NoError(t, err)
	var r record.Run
	require.NoError(t, json.Unmarshal(data, &r))
	return r
}

// options are what `stanch report` passes, with the clock fixed.
func options() report.Options {
	containment := map[string]bool{"aws.deactivate_key": true, "aws.delete_key": true, "aws.revoke_sessions": true}
	return report.Options{
		Containment: func(action string) bool { return containment[action] },
		Now:         func() time.Time { return time.Date(2025, 6, 2, 9, 0, 0, 0, time.UTC) },
	}
}

// The Markdown report of the seeded run is the golden file, byte for byte;
// go test ./report -update rewrites it.
func TestMarkdownGolden(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, report.Markdown(&out, seeded(t), options()))
	golden := filepath.Join("testdata", "run.md")
	if *update {
		require.NoError(t, os.WriteFile(golden, out.Bytes(), 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err, "no golden file: run go test ./report -update")
	require.Equal(t, string(want), out.String(), "the Markdown report changed: if that is meant, run go test ./report -update and review the diff")
}

// The HTML page holds every part the browser test looks at, and nothing
// that would load from elsewhere.
func TestHTMLIsSelfContained(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, report.HTML(&out, seeded(t), options()))
	page := out.String()
	text := html.UnescapeString(page)
	has := func(want, why string) {
		t.Helper()
		if !strings.Contains(text, want) {
			t.Errorf("the page does not hold %q: %s", want, why)
		}
	}

	require.Equal(t, 9, strings.Count(page, `<rect class="step `), "one bar per step")
	for step, class := range map[string]string{"deactivate": "outcome-done", "revoke_sessions": "outcome-already", "tell": "outcome-failed",
		"delete": "outcome-denied", "contain_derived": "outcome-noop", "resolve_github_alert": "outcome-skipped"} {
		require.Regexp(t, `<rect class="step [^"]*\b`+class+`\b[^"]*" data-step="`+step+`"`, page)
	}
	require.Equal(t, 24*(2+3), strings.Count(page, `<rect class="point`), "24 points for each of 2 regions and 3 APIs")
	require.Equal(t, 2, strings.Count(page, `class="approval-wait"`))
	has("approved by Alice Liddell at 10:03:12.000", "the approval wait's label")
	has("denied by Bob Builder at 10:06:00.000", "the denial's label")
	has("Alice Liddell (U0ALICE)", "the approvals table names who decided, with the id")
	has(`id="ttc-marker"`, "the time to contain is marked")
	has("contained +1.35s", "from the alert's arrival (10:00:00.100) to the end of deactivate (10:00:01.450)")
	has("stanch runs verify run_01jw0000000000000000000000", "how to verify")
	has(seeded(t).FinalHash, "the final hash")
	require.Equal(t, 4, strings.Count(page, `<g class="node`), "the leaked key and the three credentials derived from it")

	for _, pattern := range []string{`<script`, `<link`, `<img`, `<iframe`, `@import`, `src=`, `href=`, `https?://[^"<\s]*"\s*/?>`} {
		if loc := regexp.MustCompile(`(?i)` + pattern).FindStringIndex(page); loc != nil {
			t.Errorf("the page must load nothing, but holds %q", page[max(0, loc[0]-40):min(len(page), loc[1]+40)])
		}
	}
	for _, m := range regexp.MustCompile(`url\(([^)]*)\)`).FindAllStringSubmatch(page, -1) {
		require.True(t, strings.HasPrefix(m[1], "#"), "url(%s) points outside the page", m[1])
	}
}

// Without a timeline output the impact is drawn as bar charts of the
// counts; a timeline that does not hold together is said so and left out.
func TestImpactWithoutTimeline(t *testing.T) {
	r := seeded(t)
	impact := r.Steps[4].Outputs
	require.Equal(t, "aws.cloudtrail_impact", r.Steps[4].Action)

	delete(impact, "timeline")
	var out bytes.Buffer
	require.NoError(t, report.HTML(&out, r, options()))
	require.Zero(t, strings.Count(out.String(), `<rect class="point`))
	require.Equal(t, 2+6, strings.Count(out.String(), `<rect class="bar"`), "2 regions and 6 APIs")

	impact["timeline"] = map[string]any{"bucket": "1h", "start": "2025-05-31T10:00:00Z", "points": 3, "by_region": map[string]any{"us-east-1": []int{1, 2}}}
	out.Reset()
	require.NoError(t, report.HTML(&out, r, options()))
	require.True(t, strings.Contains(html.UnescapeString(out.String()), `the timeline's series "us-east-1" has 2 counts, not 3`))
	require.Equal(t, 2+6, strings.Count(out.String(), `<rect class="bar"`))
	out.Reset()
	require.NoError(t, report.Markdown(&out, r, options()))
	require.Contains(t, out.String(), "### Events by region")
}

// A run that contained nothing says so, and a record without impact, calls
// or approvals still makes both reports.
func TestBareRun(t *testing.T) {
	r := seeded(t)
	r.Steps = r.Steps[:1]
	r.Approvals, r.Calls, r.Alerts = nil, nil, nil
	r.Run.Status, r.Run.FinishedAt = "running", time.Time{}
	for _, write := range []func(*bytes.Buffer) error{
		func(b *bytes.Buffer) error { return report.HTML(b, r, report.Options{}) },
		func(b *bytes.Buffer) error { return report.Markdown(b, r, report.Options{}) },
	} {
		var out bytes.Buffer
		require.NoError(t, write(&out))
		for _, want := range []string{"not contained", "no impact to show", "AWS access key committed to acme/api"} {
			require.True(t, strings.Contains(out.String(), want), "missing %q", want)
		}
	}
}

// Secrets planted wherever a record carries free text reach neither
// report: the record is redacted when it is written, and the report
// redacts its text again.
func TestNoPlantedSecretInReports(t *testing.T) {
	r := seeded(t)
	plant := func(i int) string { return planted.All[i%len(planted.All)] }
	r.Run.Error = "aws_secret_access_key=" + plant(0)
	r.Run.CloseNote = "rotated; old secret was " + plant(1)
	r.Alert.Title = "key " + planted.AfterKeyID + " leaked"
	r.Alerts[0].Alert.Title = "AKIAIOSFODNN7EXAMPLE:" + planted.AfterKeyID
	r.Alerts[0].Alert.Location.Path = "deploy/" + planted.InPath + "/creds.env"
	r.Alerts[1].Alert.Location.URL = "https://example.com/?secret=" + strings.ReplaceAll(planted.InURL, "/", "%2F")
	r.Alerts[1].Alert.Title = "finding: " + planted.InTitle
	for i := range r.Steps {
		r.Steps[i].Message = "output held " + plant(i)
		r.Steps[i].Error = "error with " + planted.AllTokens[i%len(planted.AllTokens)]
	}
	impact := r.Steps[4].Outputs
	impact["by_user_agent"] = map[string]any{"curl/8 secret=" + planted.NoUpper: 3}
	impact["by_source_ip"] = map[string]any{planted.Random: 1}
	impact["finding_counts"] = map[string]any{planted.InLiteral: 2}
	impact["derived_credentials"] = []any{map[string]any{"access_key_id": "AKIAI44QH8DHBEXAMPLE", "kind": "access_key",
		"user_name": planted.NoDigit, "created_by_key": "AKIAIOSFODNN7EXAMPLE", "created_by_event": planted.SlackBot}}
	tl := impact["timeline"].(map[string]any)
	tl["by_event"].(map[string]any)[planted.GitHubPAT] = tl["by_event"].(map[string]any)["other"]
	r.Approvals[0].Message = "approve? " + planted.GitLabPAT
	r.Approvals[0].DecidedByName = planted.NPM
	r.Approvals[1].Effects[0].Description = "delete " + planted.VaultService
	r.Calls[0].Error = "InvalidClientTokenId: " + planted.Random
	r.Journal[0].Detail = "secret " + planted.InTitle
	r.ChainOK = false
	r.ChainBreaks = append(r.ChainBreaks, struct {
		Seq     int    `json:"seq"`
		Problem string `json:"problem"`
		Detail  string `json:"detail"`
	}{Seq: 3, Problem: "edited", Detail: "detail now " + planted.NoUpper})

	var page, text bytes.Buffer
	require.NoError(t, report.HTML(&page, r, options()))
	require.NoError(t, report.Markdown(&text, r, options()))
	planted.RequireNone(t, "the HTML report", page.String())
	// What a browser shows: the page's escapes undone.
	planted.RequireNone(t, "the HTML report as shown", html.UnescapeString(page.String()))
	planted.RequireNone(t, "the Markdown report", text.String())
	planted.RequireNone(t, "the Markdown report unescaped", strings.ReplaceAll(text.String(), `\`, ""))
	require.True(t, strings.Contains(page.String(), "The chain is broken"))
}
