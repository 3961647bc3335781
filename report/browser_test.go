package report_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/report"
	"github.com/stanchhq/stanch/report/browsertest"
)

// The HTML report of the seeded run, opened in headless chromium: nothing
// on the console, no request but the file itself, one bar per step with
// its outcome's class, and 24 points for each series of the seeded impact
// timeline (2 regions, 3 APIs). The screenshot is for people to look at.
func TestReportInBrowser(t *testing.T) {
	r := seeded(t)
	file := filepath.Join(t.TempDir(), "report.html")
	f, err := os.Create(file)
	require.NoError(t, err)
	require.NoError(t, report.HTML(f, r, options()))
	require.NoError(t, f.Close())

	page := browsertest.Open(t, file, "#final-hash")

	type bar struct {
		Step  string  `json:"step"`
		Class string  `json:"class"`
		Width float64 `json:"width"`
	}
	bars := browsertest.Eval[[]bar](t, page, `Array.from(document.querySelectorAll("svg.timeline rect.step")).map(r => (
		{step: r.dataset.step, class: r.getAttribute("class"), width: r.getBoundingClientRect().width}))`)
	require.Len(t, bars, len(r.Steps), "one bar per step")
	for i, s := range r.Steps {
		require.Equal(t, s.StepID, bars[i].Step)
		require.Contains(t, " "+bars[i].Class+" ", " outcome-"+s.Outcome+" ", "step %s", s.StepID)
		require.Contains(t, " "+bars[i].Class+" ", " status-"+s.Status+" ", "step %s", s.StepID)
		require.Positive(t, bars[i].Width, "step %s's bar is drawn", s.StepID)
	}
	// The outcomes' colours differ: a failed bar is not drawn like a done one.
	fills := browsertest.Eval[map[string]string](t, page, `Object.fromEntries(Array.from(document.querySelectorAll("svg.timeline rect.step")).map(r => [r.dataset.step, getComputedStyle(r).fill]))`)
	require.NotEqual(t, fills["identify"], fills["tell"])
	require.NotEqual(t, fills["identify"], fills["delete"])
	require.NotEqual(t, fills["identify"], fills["resolve_github_alert"])

	points := browsertest.Eval[map[string]map[string]int](t, page, `Object.fromEntries(Array.from(document.querySelectorAll(".chart[data-chart]")).map(c => [
		c.dataset.chart,
		Object.fromEntries(Array.from(c.querySelectorAll("g.series")).map(g => [g.dataset.series, g.querySelectorAll("rect.point").length]))]))`)
	require.Equal(t, map[string]map[string]int{
		"Events over time by region": {"us-east-1": 24, "eu-west-1": 24},
		"Events over time by API":    {"ListBuckets": 24, "GetCallerIdentity": 24, "other": 24},
	}, points)
	require.Equal(t, 2, browsertest.Eval[int](t, page, `document.querySelectorAll("svg.timeline .approval-wait").length`))
	require.Equal(t, 4, browsertest.Eval[int](t, page, `document.querySelectorAll("svg#derived g.node").length`))
	require.Equal(t, r.FinalHash, browsertest.Eval[string](t, page, `document.getElementById("final-hash").textContent`))

	require.Empty(t, page.Console(), "the page writes nothing to the console")
	require.Equal(t, []string{page.URL}, page.Requests(), "the page requests nothing but itself")

	png := page.Screenshot(t, "..", "report.png")
	t.Logf("screenshot of the seeded run's report: %s", png)
}
