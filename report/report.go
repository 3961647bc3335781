// Package report draws a run's incident record (record.Run) for people: a
// self-contained HTML page (HTML) and Markdown (Markdown). Both show the
// same things: the run, a timeline, the impact the CloudTrail step found,
// the alerts, approvals, every provider API call, the journal and the
// chain's final hash with how to verify it (docs/report.md).
//
// The page needs nothing but itself: its CSS and SVG are inline, it loads
// no script, font or image and makes no request, so it opens offline and
// can be attached to a ticket as it is. Everything shown is escaped
// (html/template) and free text is redacted again (alert.RedactText).
package report

import (
	"bufio"
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"time"

	"github.com/stanchhq/stanch/record"
)

// Options say what the record alone does not.
type Options struct {
	// Containment reports whether an action takes a leaked credential's
	// power away (actions.Spec.Containment): the first such step that
	// succeeds marks the time to contain.
	Containment func(action string) bool
	// Now is the clock the report's "generated at" line reads; default
	// time.Now. Tests fix it.
	Now func() time.Time
	// Link, when set, is where the report is served (stanch serve's
	// signed link); the report names it in its footer.
	Link string
}

//go:embed report.html.tmpl
var pageSource string

//go:embed report.css
var pageCSS string

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"time":    fmtTime,
	"clock":   fmtClock,
	"dur":     fmtDur,
	"bucket":  fmtBucket,
	"short":   shortHash,
	"result":  stepResult,
	"decided": decisionWord,
	"css":     func() template.CSS { return template.CSS(pageCSS) },
	"f":       func(v float64) string { return fmt.Sprintf("%.1f", v) },
	"add":     func(a, b float64) float64 { return a + b },
	"sub":     func(a, b float64) float64 { return a - b },
	"half":    func(v float64) float64 { return v / 2 },
	"stack":   stackChartOf,
	"bars":    barChartOf,
	"graph":   derivedGraph,
	"classes": outcomeClasses,
	"countTable": func(title, column string, rows []count, id string) countTable {
		return countTable{Title: title, Column: column, Rows: rows, ID: id}
	},
}).Parse(pageSource))

// HTML writes the report of r as one self-contained HTML page.
func HTML(w io.Writer, r record.Run, o Options) error {
	v := newView(r, o)
	bw := bufio.NewWriter(w)
	if err := page.Execute(bw, pageData{view: v, Timeline: v.timeline()}); err != nil {
		return fmt.Errorf("write the report of run %s: %w", r.Run.ID, err)
	}
	return bw.Flush()
}

// pageData is the view with its pictures laid out.
type pageData struct {
	view
	Timeline timelineSVG
}

// countTable is one table of counts.
type countTable struct {
	Title, Column, ID string
	Rows              []count
}

// outcomeClasses are the outcome classes the steps have, in a fixed
// order, for the legend.
func outcomeClasses(steps []stepView) []string {
	order := []string{"done", "already", "noop", "succeeded", "running", "waiting_approval", "delayed", "pending", "skipped", "denied", "failed"}
	have := map[string]bool{}
	for _, s := range steps {
		have[s.Class] = true
	}
	var out []string
	for _, c := range order {
		if have[c] {
			out = append(out, c)
			delete(have, c)
		}
	}
	for _, s := range steps {
		if have[s.Class] {
			out = append(out, s.Class)
			delete(have, s.Class)
		}
	}
	return out
}
