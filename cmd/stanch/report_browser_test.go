package main

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/internal/planted"
	"github.com/stanchhq/stanch/report/browsertest"
)

var keptStore = regexp.MustCompile(`store kept: stanch runs show (run_[0-9a-z]{26}) --database (\S+)`)

// The report of the run stanch demo makes (the example playbook on its
// sandbox, approvals clicked in its Slack), written by stanch report and
// opened in headless chromium: one bar per step with its outcome's class,
// the impact drawn, nothing on the console, no request but the page
// itself. artifacts/report-demo.png is the screenshot people look at.
func TestDemoReportInBrowser(t *testing.T) {
	t.Parallel()
	browsertest.Chromium(t)
	e := newE2E(t)
	demo := e.stanch([]string{"TMPDIR=" + e.dir}, "demo", "--keep")
	require.Equal(t, exitOK, demo.code, demo.stdout+demo.stderr)
	m := keptStore.FindStringSubmatch(demo.stdout)
	require.NotNil(t, m, "stanch demo --keep names the store it kept:\n%s", demo.stdout)
	id, db := m[1], m[2]

	file := filepath.Join(e.dir, "report-demo.html")
	res := e.stanch(nil, "report", id, "--html", file, "--database", db)
	require.Equal(t, exitOK, res.code, res.stdout+res.stderr)
	planted.RequireNoneInFiles(t, "written by stanch report", file)

	export := e.stanch(nil, "runs", "export", "--format", "json", "--database", db)
	require.Equal(t, exitOK, export.code, export.stderr)
	var runs []struct {
		Steps []struct {
			StepID  string         `json:"step_id"`
			Action  string         `json:"action"`
			Status  string         `json:"status"`
			Outcome string         `json:"outcome"`
			Outputs map[string]any `json:"outputs"`
		} `json:"steps"`
	}
	require.NoError(t, json.Unmarshal([]byte(export.stdout), &runs))
	require.Len(t, runs, 1)
	steps := runs[0].Steps

	page := browsertest.Open(t, file, "#final-hash")
	type bar struct {
		Step  string `json:"step"`
		Class string `json:"class"`
	}
	bars := browsertest.Eval[[]bar](t, page, `Array.from(document.querySelectorAll("svg.timeline rect.step")).map(r => ({step: r.dataset.step, class: r.getAttribute("class")}))`)
	require.Len(t, bars, len(steps), "one bar per step")
	for i, s := range steps {
		require.Equal(t, s.StepID, bars[i].Step)
		class := s.Outcome
		if class == "" {
			class = s.Status
		}
		require.Contains(t, " "+bars[i].Class+" ", " outcome-"+class+" ", "step %s", s.StepID)
	}
	for _, s := range steps {
		if s.Action != "aws.cloudtrail_impact" {
			continue
		}
		if tl, ok := s.Outputs["timeline"].(map[string]any); ok {
			// One point per bucket in each series of the impact's timeline.
			points := int(tl["points"].(float64))
			series := len(tl["by_region"].(map[string]any)) + len(tl["by_event"].(map[string]any))
			require.Equal(t, points*series, browsertest.Eval[int](t, page, `document.querySelectorAll("svg.stackchart rect.point").length`))
		} else {
			require.Equal(t, len(s.Outputs["by_region"].(map[string]any))+min(15, len(s.Outputs["by_event"].(map[string]any))),
				browsertest.Eval[int](t, page, `document.querySelectorAll("svg.barchart rect.bar").length`))
		}
	}
	require.Positive(t, browsertest.Eval[int](t, page, `document.querySelectorAll("svg.timeline .approval-wait").length`), "the demo's approvals are shaded")
	require.Empty(t, page.Console(), "the page writes nothing to the console")
	require.Equal(t, []string{page.URL}, page.Requests(), "the page requests nothing but itself")

	png := page.Screenshot(t, filepath.Join(e.root), "report-demo.png")
	t.Logf("screenshot of the demo run's report: %s", png)
}
