package main

import (
	"io"
	"strings"

	"github.com/stanchhq/stanch/triggers"
)

// reportSkipped tells on w what in the document at path became no alert:
// every finding stanch could not act on, by name and with the reason, and
// the lines that were no findings at all (a scanner's log output), counted
// by kind. It returns how many findings could not be acted on.
func reportSkipped(w io.Writer, path string, rep triggers.Report) int {
	var kinds []string
	notFindings := map[string][]string{}
	unacted := 0
	for _, s := range rep.Skipped {
		if s.NotAFinding {
			if _, ok := notFindings[s.Reason]; !ok {
				kinds = append(kinds, s.Reason)
			}
			notFindings[s.Reason] = append(notFindings[s.Reason], s.Where)
			continue
		}
		say(w, "%s: could not act on %s: %s\n", path, s.Where, s.Reason)
		unacted++
	}
	for _, kind := range kinds {
		where := notFindings[kind]
		say(w, "%s: ignored %d line(s) that are not findings (%s): %s\n", path, len(where), kind, strings.Join(where, ", "))
	}
	return unacted
}
