package report

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/stanchhq/stanch/record"
)

// Markdown writes the report of r as Markdown (GitHub-flavoured: tables,
// no HTML), for a GitHub issue or a post-mortem document.
func Markdown(w io.Writer, r record.Run, o Options) error {
	v := newView(r, o)
	m := &md{w: bufio.NewWriter(w)}
	m.header(v)
	m.timeline(v)
	m.impact(v)
	m.alerts(v)
	m.approvals(v)
	m.calls(v)
	m.journal(v)
	m.integrity(v)
	m.f("\n---\n_Generated %s by stanch from the run's record (schema stanch.export/v1)._", fmtTime(v.Generated))
	if v.Link != "" {
		m.f(" _This report: %s_", cell(v.Link))
	}
	m.f("\n")
	if err := m.w.Flush(); err != nil {
		return fmt.Errorf("write the report of run %s: %w", r.Run.ID, err)
	}
	return nil
}

// md writes Markdown; a write error shows at Flush.
type md struct{ w *bufio.Writer }

func (m *md) f(format string, args ...any) { fmt.Fprintf(m.w, format, args...) }

// table writes a table whose cells are already escaped.
func (m *md) table(head []string, rows [][]string) {
	m.f("| %s |\n|", strings.Join(head, " | "))
	for _, h := range head {
		if strings.HasSuffix(h, " ") {
			m.f("---:|") // a heading ending in a space is a number column
		} else {
			m.f("---|")
		}
	}
	m.f("\n")
	for _, r := range rows {
		m.f("| %s |\n", strings.Join(r, " | "))
	}
	m.f("\n")
}

// cell makes text safe in a table cell and in running text: one line, no
// column break, no HTML, no emphasis or link made of it.
func cell(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	return mdEscaper.Replace(s)
}

var mdEscaper = strings.NewReplacer(`\`, `\\`, "|", `\|`, "<", "&lt;", ">", "&gt;", "&", "&amp;", "*", `\*`, "_", `\_`, "`", "\\`",
	"[", `\[`, "]", `\]`)

// code is text in backticks: the only character to keep out is the
// backtick itself (and the table's column break).
func code(s string) string {
	if s == "" {
		return ""
	}
	s = strings.Join(strings.Fields(s), " ")
	s = strings.NewReplacer("`", "'", "|", `\|`).Replace(s)
	return "`" + s + "`"
}

func (m *md) header(v view) {
	m.f("# Incident report: %s\n\n", code(v.Run.ID))
	owner := v.Owner
	if owner == "" {
		owner = "not identified"
	}
	finished := "not finished"
	if !v.Run.FinishedAt.IsZero() {
		finished = fmt.Sprintf("%s (took %s)", fmtTime(v.Run.FinishedAt), fmtDur(v.Run.FinishedAt.Sub(v.Run.CreatedAt)))
	}
	ttc := "not contained: no containment step succeeded"
	if v.Contained != nil {
		ttc = fmt.Sprintf("**%s** by step %s (%s)", fmtDur(v.TimeToContain), code(v.Contained.ID), code(v.Contained.Action))
	}
	rows := [][]string{
		{"Run", code(v.Run.ID)},
		{"Playbook", cell(v.Run.Playbook)},
		{"Credential", code(v.Run.Credential)},
		{"Status", "**" + cell(v.Run.Status) + "**"},
		{"Owner", cell(owner)},
		{"Alert received", fmtTime(v.Start)},
		{"Run created", fmtTime(v.Run.CreatedAt)},
		{"Finished", finished},
		{"Time to contain", ttc},
	}
	if v.Run.Error != "" {
		where := ""
		if v.Run.FailedStep != "" {
			where = "step " + code(v.Run.FailedStep) + ": "
		}
		rows = append(rows, []string{"Error", where + cell(v.Run.Error)})
	}
	if !v.Run.ClosedAt.IsZero() {
		rows = append(rows, []string{"Closed", strings.TrimSpace(fmtTime(v.Run.ClosedAt) + " by " + cell(v.Run.ClosedBy) + " " + cell(v.Run.CloseNote))})
	}
	m.table([]string{"", ""}, rows)
}

func (m *md) timeline(v view) {
	m.f("## Timeline\n\nTimes are UTC; offsets are from the alert's arrival.\n\n```text\n")
	type line struct {
		at   time.Time
		text string
	}
	var lines []line
	for _, a := range v.Alerts {
		lines = append(lines, line{a.ReceivedAt, fmt.Sprintf("alert %s (%s): %s", a.Relation, a.Source, oneLine(a.Title))})
	}
	for _, s := range v.Steps {
		if s.StartedAt.IsZero() {
			continue
		}
		lines = append(lines, line{s.StartedAt, fmt.Sprintf("step %s (%s) started", s.ID, s.Action)})
		if !s.EndedAt.IsZero() {
			text := fmt.Sprintf("step %s %s, took %s", s.ID, stepResult(s), fmtDur(s.Took()))
			if v.Contained != nil && s.ID == v.Contained.ID {
				text += fmt.Sprintf("  <- contained, %s after the alert", fmtDur(v.TimeToContain))
			}
			lines = append(lines, line{s.EndedAt, text})
		}
	}
	for _, a := range v.Approvals {
		lines = append(lines, line{a.RequestedAt, fmt.Sprintf("approval of %s asked of %s", a.StepID, strings.Join(a.Approvers, ", "))})
		if !a.DecidedAt.IsZero() {
			lines = append(lines, line{a.DecidedAt, fmt.Sprintf("approval of %s: %s by %s via %s, after %s", a.StepID, decisionWord(a.Decision), a.Decider, a.Via,
				fmtDur(a.Waited(v.End)))})
		}
	}
	if !v.Run.FinishedAt.IsZero() {
		lines = append(lines, line{v.Run.FinishedAt, "run " + v.Run.Status})
	}
	// Stable: what happened at the same moment keeps the order above.
	slices.SortStableFunc(lines, func(a, b line) int { return a.at.Compare(b.at) })
	for _, l := range lines {
		m.f("%s  %-9s  %s\n", fmtClock(l.at), "+"+fmtDur(l.at.Sub(v.Start)), strings.ReplaceAll(l.text, "```", "'''"))
	}
	m.f("```\n\n")
	rows := [][]string{}
	for _, s := range v.Steps {
		took := "—"
		if s.Took() > 0 {
			took = fmtDur(s.Took())
		}
		action := code(s.Action)
		if s.Containment {
			action += " (containment)"
		}
		msg := cell(s.Message)
		if s.Error != "" {
			msg = strings.TrimSpace(msg + " **error:** " + cell(s.Error))
		}
		rows = append(rows, []string{fmt.Sprint(s.Seq), code(s.ID), action, cell(stepResult(s)), fmt.Sprint(s.Attempts), fmtClock(s.StartedAt), took, msg})
	}
	m.table([]string{"# ", "Step", "Action", "Result", "Attempts ", "Started", "Took ", "Message"}, rows)
}

func (m *md) impact(v view) {
	m.f("## Impact\n\n")
	iv := v.Impact
	if iv == nil {
		m.f("This run has no aws.cloudtrail_impact step with outputs: no impact to show.\n\n")
		return
	}
	m.f("From step %s (aws.cloudtrail_impact): **%d** CloudTrail events", code(iv.StepID), iv.Events)
	if iv.FirstUsed != "" {
		m.f(", first %s, last %s", cell(iv.FirstUsed), cell(iv.LastUsed))
	}
	m.f("; %d denied.", iv.Denied)
	if len(iv.Regions) > 0 {
		m.f(" Regions read: %s.", cell(strings.Join(iv.Regions, ", ")))
	}
	m.f("\n\n")
	if len(iv.RegionsFailed) > 0 {
		var names []string
		for _, r := range iv.RegionsFailed {
			names = append(names, r.Name)
		}
		m.f("Regions not read: %s\n\n", cell(strings.Join(names, "; ")))
	}
	if tl := iv.Timeline; tl != nil {
		m.seriesTable("Events over time by region", tl, tl.ByRegion)
		m.seriesTable("Events over time by API", tl, tl.ByEvent)
	} else {
		if iv.TimelineProblem != "" {
			m.f("The events over time are not shown: %s.\n\n", cell(iv.TimelineProblem))
		}
		m.countTable("Events by region", "Region", iv.ByRegion)
		m.countTable("Events by API", "API", iv.ByEvent)
	}
	m.countTable("Source IPs", "Source IP", iv.BySourceIP)
	m.countTable("User agents", "User agent", iv.ByUserAgent)
	m.countTable("Findings by class", "Class", iv.Findings)
	m.f("### Derived credentials\n\n")
	if len(iv.Derived) == 0 {
		m.f("None: the key minted or created no other credential.\n\n")
		return
	}
	m.f("```text\n")
	m.tree(v.Run.Credential, iv.Derived)
	m.f("```\n\n")
	rows := [][]string{}
	for _, d := range iv.Derived {
		rows = append(rows, []string{code(d.AccessKeyID), cell(d.Kind), cell(d.Principal), code(d.CreatedByKey), cell(d.CreatedByEvent)})
	}
	m.table([]string{"Credential", "Kind", "Principal", "Created by key", "With"}, rows)
}

// tree draws the derived credentials as an indented tree from the leaked
// key; one whose maker is not in the list hangs from the leaked key.
func (m *md) tree(root string, ds []derivedView) {
	children := map[string][]derivedView{}
	known := map[string]bool{root: true}
	for _, d := range ds {
		known[d.AccessKeyID] = true
	}
	for _, d := range ds {
		by := d.CreatedByKey
		if !known[by] {
			by = root
		}
		children[by] = append(children[by], d)
	}
	m.f("%s (leaked)\n", root)
	seen := map[string]bool{root: true}
	var walk func(id, indent string)
	walk = func(id, indent string) {
		for i, d := range children[id] {
			branch, next := "├─ ", "│  "
			if i == len(children[id])-1 {
				branch, next = "└─ ", "   "
			}
			detail := strings.TrimSpace(d.Kind + " " + d.Principal)
			m.f("%s%s%s  %s (%s)\n", indent, branch, strings.ReplaceAll(d.CreatedByEvent, "`", "'"), d.AccessKeyID, strings.ReplaceAll(detail, "`", "'"))
			if !seen[d.AccessKeyID] {
				seen[d.AccessKeyID] = true
				walk(d.AccessKeyID, indent+next)
			}
		}
	}
	walk(root, "")
}

func (m *md) countTable(title, column string, cs []count) {
	m.f("### %s\n\n", title)
	if len(cs) == 0 {
		m.f("None.\n\n")
		return
	}
	rows := [][]string{}
	for _, c := range cs {
		rows = append(rows, []string{code(c.Name), fmt.Sprint(c.Count)})
	}
	m.table([]string{column, "Events "}, rows)
}

// seriesTable is a chart as a table: one row per bucket, one column per
// series (the first eight; the rest summed).
func (m *md) seriesTable(title string, tl *timeline, ss []series) {
	m.f("### %s\n\nOne row per %s from %s.\n\n", title, fmtBucket(tl.Bucket), fmtTime(tl.Start))
	if len(ss) == 0 {
		m.f("No events.\n\n")
		return
	}
	const maxColumns = 8
	shown, rest := ss, []series(nil)
	if len(ss) > maxColumns {
		shown, rest = ss[:maxColumns-1], ss[maxColumns-1:]
	}
	head := []string{"Bucket"}
	for _, s := range shown {
		head = append(head, code(s.Name)+" ")
	}
	if rest != nil {
		head = append(head, fmt.Sprintf("%d more ", len(rest)))
	}
	layout := bucketLayout(tl.Bucket)
	rows := [][]string{}
	for k := range tl.Points {
		row := []string{tl.Start.Add(time.Duration(k) * tl.Bucket).Format(layout)}
		for _, s := range shown {
			row = append(row, fmt.Sprint(s.Counts[k]))
		}
		if rest != nil {
			n := 0
			for _, s := range rest {
				n += s.Counts[k]
			}
			row = append(row, fmt.Sprint(n))
		}
		rows = append(rows, row)
	}
	m.table(head, rows)
}

func (m *md) alerts(v view) {
	m.f("## Alerts\n\n")
	rows := [][]string{}
	for _, a := range v.Alerts {
		rows = append(rows, []string{fmtTime(a.ReceivedAt), cell(a.Relation), cell(a.Source), cell(a.Kind), cell(a.Severity), cell(a.Title),
			code(a.Credential), cell(a.Where), code(a.DedupKey)})
	}
	m.table([]string{"Received", "Relation", "Source", "Kind", "Severity", "Title", "Credential", "Where", "Dedup key"}, rows)
}

func (m *md) approvals(v view) {
	m.f("## Approvals\n\n")
	if len(v.Approvals) == 0 {
		m.f("No step of this run asked for approval.\n\n")
		return
	}
	rows := [][]string{}
	for _, a := range v.Approvals {
		decision := decisionWord(a.Decision)
		if a.Decision == "" {
			decision = "waiting (deadline " + fmtTime(a.Deadline) + ")"
		}
		asked := cell(strings.Join(a.Approvers, ", "))
		if a.Channel != "" {
			asked += " in " + cell(a.Channel)
		}
		rows = append(rows, []string{code(a.StepID), asked, fmtTime(a.RequestedAt), decision, cell(a.Decider), fmtTime(a.DecidedAt), cell(a.Via),
			fmtDur(a.Waited(v.End))})
	}
	m.table([]string{"Step", "Asked", "Requested", "Decision", "Decided by", "Decided", "Via", "Waited "}, rows)
	for _, a := range v.Approvals {
		if a.Message == "" && len(a.Effects) == 0 {
			continue
		}
		m.f("- %s: %s", code(a.StepID), cell(a.Message))
		for _, e := range a.Effects {
			m.f("\n  - %s", cell(e))
		}
		m.f("\n")
	}
	m.f("\n")
}

func (m *md) calls(v view) {
	m.f("## API calls\n\n")
	if len(v.Calls) == 0 {
		m.f("No provider API call was recorded for this run.\n\n")
		return
	}
	m.f("Every call an action made to a provider, in order: what and where, never its parameters.\n\n")
	rows := [][]string{}
	for _, c := range v.Calls {
		step := code(c.StepID)
		if c.Attempt > 1 {
			step += fmt.Sprintf(" #%d", c.Attempt)
		}
		outcome := cell(c.Outcome)
		if c.Error != "" {
			outcome += ": " + cell(c.Error)
		}
		rows = append(rows, []string{fmtClock(c.At), step, cell(c.Service), code(c.Operation), code(c.Where), code(c.RequestID), outcome, cell(c.Duration)})
	}
	m.table([]string{"Time", "Step", "Service", "Operation", "Account / region", "Request id", "Outcome", "Duration "}, rows)
}

func (m *md) journal(v view) {
	m.f("## Journal\n\n")
	rows := [][]string{}
	for _, e := range v.Journal {
		step := code(e.StepID)
		if e.Attempt > 1 {
			step += fmt.Sprintf(" #%d", e.Attempt)
		}
		hash := code(shortHash(e.Hash))
		if e.Migrated {
			hash += " (chained at migration)"
		}
		rows = append(rows, []string{fmt.Sprint(e.Seq), fmtClock(e.At), step, code(e.Event), cell(e.Detail), hash})
	}
	m.table([]string{"# ", "Time", "Step", "Event", "Detail", "Hash"}, rows)
}

func (m *md) integrity(v view) {
	m.f("## Integrity\n\nThe journal's final hash:\n\n```text\n%s\n```\n\n", v.FinalHash)
	if v.ChainOK {
		m.f("**The chain holds**: every entry's hash matched when this report was made.\n\n")
	} else {
		m.f("**The chain is broken**:\n\n")
		for _, b := range v.ChainBreaks {
			m.f("- %s\n", cell(b))
		}
		m.f("\n")
	}
	if v.Migrated > 0 {
		m.f("%d entries were written before the store had hashes and were chained when it was migrated: the chain shows changes made to them after the upgrade, not before.\n\n", v.Migrated)
	}
	m.f("### How to verify\n\n")
	m.f("Each journal entry's hash is the hex SHA-256 of the run id, its seq, time (microseconds), step, attempt, event, detail and the hash of the entry before it, each length-prefixed (docs/runs.md, \"The journal\"; docs/export.md). The last one, above, covers the whole journal. Recompute it from the store:\n\n")
	m.f("```sh\nstanch runs verify %s\n```\n\n", v.Run.ID)
	m.f("It names any entry that was edited, deleted, reordered or inserted, and ends with the run's final hash. Compare that hash with a copy kept elsewhere: the Slack incident message, the GitHub resolution comment, or the SIEM's copy of `stanch runs export`. A match shows that no entry was removed from the end and that the journal was not rewritten with every hash recomputed, which the chain alone cannot show. The Slack message and the GitHub comment name the entry the journal had reached when they were written (`Journal to entry 23: sha256 …`); check such a copy with `stanch runs verify %s --anchor 23:HASH`.\n", v.Run.ID)
}

// oneLine keeps text on one line in the text timeline.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
