// Package yamldiag is how stanch reports problems in YAML files people
// write by hand (playbooks, the configuration file): every problem at
// once, each at its line and column with a hint, with the words and the
// typo suggestions the same in every file.
package yamldiag

import (
	"fmt"
	"sort"
	"strings"

	yast "github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"
)

// Problem is one thing wrong in a file, at a 1-based line and column.
type Problem struct {
	File      string
	Line, Col int
	Msg       string
	// Hint tells how to fix the problem; it may be empty.
	Hint string
}

// Error formats the problem as `file:line:col: message`, followed by an
// indented `hint:` line when there is a hint.
func (p *Problem) Error() string {
	s := fmt.Sprintf("%s:%d:%d: %s", p.File, p.Line, p.Col, p.Msg)
	if p.Hint != "" {
		s += "\n    hint: " + p.Hint
	}
	return s
}

// Problems is every problem found in one file.
type Problems []*Problem

// Error joins the formatted problems with newlines.
func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// Sort orders problems by position; problems at the same position keep
// the order in which they were found.
func (ps Problems) Sort() {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		return a.Line < b.Line || (a.Line == b.Line && a.Col < b.Col)
	})
}

// Pos is a place in a file.
type Pos struct{ Line, Col int }

// Collector gathers the problems of one file while it is read, so that one
// pass reports all of them.
type Collector struct {
	File     string
	Problems Problems
}

// Add records a problem at at (the file's start when at is unknown).
func (c *Collector) Add(at Pos, hint, format string, args ...any) {
	if at.Line <= 0 {
		at = Pos{1, 1}
	}
	c.Problems = append(c.Problems, &Problem{File: c.File, Line: at.Line, Col: at.Col, Msg: fmt.Sprintf(format, args...), Hint: hint})
}

// Sorted returns the problems in file order.
func (c *Collector) Sorted() Problems {
	c.Problems.Sort()
	return c.Problems
}

// PosOf is where a node starts in the file.
func PosOf(n yast.Node) Pos {
	switch t := n.(type) {
	case *yast.MappingNode:
		if len(t.Values) > 0 {
			return PosOf(t.Values[0])
		}
	case *yast.MappingValueNode:
		return PosOf(t.Key)
	case *yast.DocumentNode:
		if t.Start != nil {
			return TokenPos(t.Start)
		}
		if t.Body != nil {
			return PosOf(t.Body)
		}
	}
	return TokenPos(n.GetToken())
}

// TokenPos is where a token is; the file's start when it is not known.
func TokenPos(tk *token.Token) Pos {
	if tk == nil || tk.Position == nil {
		return Pos{1, 1}
	}
	return Pos{tk.Position.Line, tk.Position.Column}
}

// Describe names a node's kind for messages ("a list", "a number").
func Describe(n yast.Node) string {
	switch n.(type) {
	case *yast.StringNode, *yast.LiteralNode:
		return "a string"
	case *yast.IntegerNode, *yast.FloatNode, *yast.InfinityNode, *yast.NanNode:
		return "a number"
	case *yast.BoolNode:
		return "true/false"
	case *yast.NullNode:
		return "empty"
	case *yast.SequenceNode:
		return "a list"
	case *yast.MappingNode, *yast.MappingValueNode:
		return "a mapping"
	case *yast.AnchorNode:
		return "anchors (&name)"
	case *yast.AliasNode:
		return "aliases (*name)"
	case *yast.TagNode:
		return "tags (!tag)"
	default:
		return fmt.Sprintf("a YAML %s", n.Type())
	}
}

// Nearest returns the candidate closest to word, or "" when none is close
// enough to be a plausible typo.
func Nearest(word string, candidates []string) string {
	best, bestDist := "", 1+len(word)/4
	for _, c := range candidates {
		if d := editDistance(word, c); d <= bestDist && (best == "" || d < editDistance(word, best)) {
			best, bestDist = c, d
		}
	}
	return best
}

// Suggest is a hint naming the nearest candidate, if any, and listing all
// under what ("valid keys").
func Suggest(word string, candidates []string, what string) string {
	list := what + ": " + strings.Join(candidates, ", ")
	if n := Nearest(word, candidates); n != "" {
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
