package main

import (
	"bytes"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestTermSafe(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"AKIAIOSFODNN7EXAMPLE":      "AKIAIOSFODNN7EXAMPLE",
		"é ✓ ⚡ 🚨":                   "é ✓ ⚡ 🚨",
		"\x1b[2J\x1b]0;owned\x07":   `\x1b[2J\x1b]0;owned\x07`,
		"ok\rfake":                  `ok\rfake`,
		"a\nb\tc":                   `a\nb\tc`,
		"\u202eevil\u2066":          `\u202eevil\u2066`,
		"\u0085\u009b31m":           `\u0085\u009b31m`,
		"\x9b31m":                   `\x9b31m`, // a lone C1 byte, not UTF-8
		"zero\u200bwidth\u2028line": `zero\u200bwidth\u2028line`,
		"tag\U000e0041":             `tag\U000e0041`,
		"\x7f":                      `\x7f`,
	} {
		require.Equal(t, want, termSafe(in), "%q", in)
	}
	require.Equal(t, "one\ntwo \\x1b[31m", termLines("one\ntwo \x1b[31m"))
}

func TestSayMakesEveryArgumentSafe(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	say(&b, "%s|%v|%d|%s|%5.1f|%q|%s\n", "a\x1bb", errors.New("e\rr"), 42, 1500*time.Millisecond, 2.5, "q\x1b", stringer("s\u202e"))
	require.Equal(t, `a\x1bb|e\rr|42|1.5s|  2.5|"q\\x1b"|s\u202e`+"\n", b.String())
}

type stringer string

func (s stringer) String() string { return string(s) }

// TestEveryPrintGoesThroughTheTerminalHelpers: one helper for everything
// the CLI prints, so that no value from outside is missed. Only the
// helpers themselves may call fmt's printing functions.
func TestEveryPrintGoesThroughTheTerminalHelpers(t *testing.T) {
	t.Parallel()
	// version prints nothing but the binary's own build information.
	allowed := map[string]bool{"terminal.go": true, "version.go": true}
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	fset := token.NewFileSet()
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") || allowed[file] {
			continue
		}
		f, err := parser.ParseFile(fset, file, nil, 0)
		require.NoError(t, err)
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if pkg, ok := sel.X.(*ast.Ident); ok && pkg.Name == "fmt" && strings.HasPrefix(sel.Sel.Name, "Print") || ok && pkg.Name == "fmt" && strings.HasPrefix(sel.Sel.Name, "Fprint") {
				t.Errorf("%s: fmt.%s prints without making its arguments safe for a terminal; use say, sayln or sayLines", fset.Position(call.Pos()), sel.Sel.Name)
			}
			return true
		})
	}
}
