package playbooks

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// problemsOf returns the problems Parse or Load found.
func problemsOf(t *testing.T, err error) Errors {
	t.Helper()
	var errs Errors
	require.True(t, errors.As(err, &errs), "want playbook problems, got %v", err)
	return errs
}

// TestPathologicalNestingIsRefusedBeforeParsing: 40 KB of nested flow
// sequences took goccy/go-yaml's parser 6.5 s and 657 MB, and 200 KB more
// than 1.5 GB. Such files are refused by a scan of their tokens, at the
// place the limit is passed, before the parser sees them.
func TestPathologicalNestingIsRefusedBeforeParsing(t *testing.T) {
	t.Parallel()
	head := "name: deep\nsteps:\n  - id: a\n    action: test.secret_maker\n    with: "
	for _, n := range []int{20000, 100000} { // 40 KB and 200 KB
		for open, close := range map[string]string{"[": "]", "{a: ": "}"} {
			data := head + strings.Repeat(open, n) + "1" + strings.Repeat(close, n) + "\n"
			_, err := Parse("deep.yaml", []byte(data), testRegistry(t))
			errs := problemsOf(t, err)
			require.Len(t, errs, 1)
			require.Equal(t, 5, errs[0].Line)
			require.Contains(t, errs[0].Error(), "deep.yaml:5:")
			require.Contains(t, errs[0].Msg, "collections nested more than 64 deep")
		}
	}
}

func TestBlockNestingAndNodeCountAreLimited(t *testing.T) {
	t.Parallel()
	var deep strings.Builder
	deep.WriteString("name: deep\nvars:\n")
	for i := 1; i <= 100; i++ {
		deep.WriteString(strings.Repeat(" ", i) + "a:\n")
	}
	deep.WriteString(strings.Repeat(" ", 101) + "b: 1\nsteps:\n  - id: a\n    action: test.secret_maker\n")
	errs := problemsOf(t, func() error { _, err := Parse("block.yaml", []byte(deep.String()), testRegistry(t)); return err }())
	require.Contains(t, errs[0].Msg, "nested more than 64 deep")
	require.Equal(t, 66, errs[0].Line, "where the 65th level opens")

	wide := "name: wide\nvars:\n  v: [" + strings.Repeat("1, ", 60000) + "1]\nsteps:\n  - id: a\n    action: test.secret_maker\n"
	errs = problemsOf(t, func() error { _, err := Parse("wide.yaml", []byte(wide), testRegistry(t)); return err }())
	require.Contains(t, errs[0].Msg, "more than 50000 YAML nodes")
	require.Equal(t, 3, errs[0].Line)
}

func TestLargeFilesAreRefusedUnread(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "big.yaml")
	data := "name: big\ndescription: \"" + strings.Repeat("x", 2<<20) + "\"\nsteps:\n  - id: a\n    action: test.secret_maker\n"
	require.NoError(t, os.WriteFile(path, []byte(data), 0o600))
	_, err := Load(path, testRegistry(t))
	errs := problemsOf(t, err)
	require.Equal(t, path+":1:1: the file is larger than 1048576 bytes (1 MiB), the most a playbook may be", strings.Split(errs.Error(), "\n")[0])
}

// Ordinary nesting, flow and block, is well within the limits.
func TestOrdinaryPlaybooksAreWithinLimits(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../examples/playbooks/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		l := &loader{problems: problems{File: f}}
		require.True(t, l.withinLimits(data), "%s: %v", f, l.Problems)
	}
}

// TestPathologicalExpressionsAreRefusedBeforeCompiling: one `if:` of
// 400 KB of nested parentheses took expr 500 MB. An expression too long or
// nesting too deep is refused where it starts; brackets inside string
// literals do not count.
func TestPathologicalExpressionsAreRefusedBeforeCompiling(t *testing.T) {
	t.Parallel()
	parse := func(cond string) error {
		data := "name: deep\nsteps:\n  - id: a\n    action: test.secret_maker\n    if: '" + cond + "'\n"
		_, err := Parse("deep.yaml", []byte(data), testRegistry(t))
		return err
	}
	deep := strings.Repeat("(", MaxExprDepth+1) + "true" + strings.Repeat(")", MaxExprDepth+1)
	errs := problemsOf(t, parse(deep))
	require.Len(t, errs, 1)
	require.Equal(t, "deep.yaml:5:10: the expression nests brackets more than 32 deep", strings.SplitN(errs[0].Error(), "\n", 2)[0])

	long := "true" + strings.Repeat(" && true", MaxExprLength/8)
	errs = problemsOf(t, parse(long))
	require.Len(t, errs, 1)
	require.Contains(t, errs[0].Msg, "at most 4096 are allowed")

	ok := strings.Repeat("(", MaxExprDepth) + `alert.source == "((((((((((((((((((((((((((((((((((((((((x"` + strings.Repeat(")", MaxExprDepth)
	require.NoError(t, parse(ok))
}
