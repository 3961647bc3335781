package playbooks

import "github.com/stanchhq/stanch/internal/yamldiag"

// Error is one problem in a playbook file, at a 1-based line and column;
// its Error method formats it as `file:line:col: message`, followed by an
// indented `hint:` line when there is a hint.
type Error = yamldiag.Problem

// Errors is every problem found in one playbook, sorted by position. Load
// and Parse return it (as the error) when a playbook is invalid.
type Errors = yamldiag.Problems

// pos is a position in the YAML file.
type pos = yamldiag.Pos

// problems collects errors while a playbook is decoded, so that one pass
// reports all of them.
type problems = yamldiag.Collector
