package playbooks

import (
	"fmt"
	"io"

	"github.com/goccy/go-yaml/scanner"
	"github.com/goccy/go-yaml/token"
)

// Limits on a playbook file, checked before it is parsed. goccy/go-yaml's
// parser needs time and memory that grow much faster than the file when
// collections nest deeply (40 KB of nested flow sequences took 6.5 s and
// 657 MB, 200 KB more than 1.5 GB), and `stanch validate` runs in CI on
// pull requests, on files anyone may propose. A real playbook is a few
// kilobytes, nests a handful of levels and holds a few thousand tokens.
const (
	// MaxSize is the largest playbook file, in bytes.
	MaxSize = 1 << 20
	// MaxDepth is how deeply collections may nest, block and flow
	// together.
	MaxDepth = 64
	// MaxNodes is how many YAML tokens (keys, values, indicators) a
	// playbook may hold.
	MaxNodes = 50000
	// MaxExprLength and MaxExprDepth bound one expression: expr's parser
	// and checker recurse on nesting and keep every node, so 400 KB of
	// nested parentheses in one `if:` took 500 MB. Real conditions are a
	// line long and nest a few levels.
	MaxExprLength = 4096
	MaxExprDepth  = 32
)

// exprWithinLimits says why an expression may not be compiled, or "".
func exprWithinLimits(src string) string {
	if len(src) > MaxExprLength {
		return fmt.Sprintf("the expression is %d characters long; at most %d are allowed", len(src), MaxExprLength)
	}
	depth := 0
	var quote byte
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case quote != 0 && c == '\\':
			i++ // the escaped character cannot end the string
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'' || c == '`':
			quote = c
		case c == '(' || c == '[' || c == '{':
			if depth++; depth > MaxExprDepth {
				return fmt.Sprintf("the expression nests brackets more than %d deep", MaxExprDepth)
			}
		case c == ')' || c == ']' || c == '}':
			depth--
		}
	}
	return ""
}

// withinLimits reports whether data may be handed to the parser, adding
// a problem at the place a limit is passed when it may not. It reads the
// tokens one by one with the parser's own scanner, which takes time and
// memory in proportion to the input, and stops at the first limit passed.
func (l *loader) withinLimits(data []byte) bool {
	const hint = "a playbook nests a few levels (steps, with, parameters) and is a few kilobytes; split or flatten what is here"
	if len(data) > MaxSize {
		l.Add(pos{Line: 1, Col: 1}, hint, "the file is larger than %d bytes (1 MiB), the most a playbook may be", MaxSize)
		return false
	}
	var s scanner.Scanner
	s.Init(string(data))
	var (
		nodes int
		flow  int   // open [ and {
		block []int // columns of the open block collections
		line  int   // the line of the last token seen
	)
	for {
		// Like the parser's own lexer, go on after a scanning error: the
		// parser will see what follows it. A scan that yields nothing is
		// no progress; the parser reports the syntax error.
		tokens, err := s.Scan()
		if err == io.EOF || (err != nil && len(tokens) == 0) {
			return true
		}
		for _, tk := range tokens {
			if tk == nil || tk.Position == nil || tk.Type == token.CommentType {
				continue
			}
			at := pos{Line: tk.Position.Line, Col: tk.Position.Column}
			if nodes++; nodes > MaxNodes {
				l.Add(at, hint, "more than %d YAML nodes; a playbook may hold at most %d", MaxNodes, MaxNodes)
				return false
			}
			switch tk.Type {
			case token.SequenceStartType, token.MappingStartType:
				flow++
			case token.SequenceEndType, token.MappingEndType:
				flow = max(flow-1, 0)
			case token.DocumentHeaderType:
				block, flow = nil, 0
			}
			// Outside flow collections nesting is indentation: a line's
			// first token, and every "- " (several may share a line),
			// opens a level deeper than the open ones to its left.
			if flow == 0 && (at.Line != line || tk.Type == token.SequenceEntryType) {
				for len(block) > 0 && block[len(block)-1] >= at.Col {
					block = block[:len(block)-1]
				}
				block = append(block, at.Col)
			}
			line = at.Line
			if depth := len(block) + flow; depth > MaxDepth {
				l.Add(at, hint, "collections nested more than %d deep; a playbook may nest at most %d", MaxDepth, MaxDepth)
				return false
			}
		}
	}
}
