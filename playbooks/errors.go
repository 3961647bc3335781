package playbooks

import (
	"fmt"
	"sort"
	"strings"
)

// Error is one problem in a playbook file, at a 1-based line and column.
type Error struct {
	File      string
	Line, Col int
	Msg       string
	// Hint tells how to fix the problem; it may be empty.
	Hint string
}

// Error formats the problem as `file:line:col: message`, followed by an
// indented `hint:` line when there is a hint.
func (e *Error) Error() string {
	s := fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
	if e.Hint != "" {
		s += "\n    hint: " + e.Hint
	}
	return s
}

// Errors is every problem found in one playbook, sorted by position. Load
// and Parse return it (as the error) when a playbook is invalid.
type Errors []*Error

// Error joins the formatted problems with newlines.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// pos is a position in the YAML file.
type pos struct{ line, col int }

// problems collects errors while a playbook is decoded, so that one pass
// reports all of them.
type problems struct {
	file string
	errs Errors
}

func (p *problems) add(at pos, hint, format string, args ...any) {
	if at.line <= 0 {
		at = pos{1, 1}
	}
	p.errs = append(p.errs, &Error{File: p.file, Line: at.line, Col: at.col, Msg: fmt.Sprintf(format, args...), Hint: hint})
}

// sorted returns the problems ordered by position; problems at the same
// position keep the order in which they were found.
func (p *problems) sorted() Errors {
	sort.SliceStable(p.errs, func(i, j int) bool {
		a, b := p.errs[i], p.errs[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	return p.errs
}

// nearest returns the candidate closest to word, or "" when none is close
// enough to be a plausible typo.
func nearest(word string, candidates []string) string {
	best, bestDist := "", 1+len(word)/4
	for _, c := range candidates {
		if d := editDistance(word, c); d <= bestDist && (best == "" || d < editDistance(word, best)) {
			best, bestDist = c, d
		}
	}
	return best
}

// suggest is a hint naming the nearest candidate, if any, and listing all.
func suggest(word string, candidates []string, what string) string {
	list := what + ": " + strings.Join(candidates, ", ")
	if n := nearest(word, candidates); n != "" {
		return "did you mean `" + n + "`? " + list
	}
	return list
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and swaps of neighbours each cost one, because
// swapped letters are the commonest typo in a key.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
