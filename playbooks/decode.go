package playbooks

import (
	"errors"
	"github.com/stanchhq/stanch/internal/yamldiag"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	yast "github.com/goccy/go-yaml/ast"
	yparser "github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/alert"
)

// loader decodes one playbook from the YAML syntax tree, so that every
// problem is reported with its line and column, and all in one pass.
type loader struct {
	problems
	reg  *actions.Registry
	vars map[string]any
	// Steps known before their bodies are checked, so that a reference to
	// a later step can be told from a reference to no step at all.
	stepIDs   []string
	stepIndex map[string]int
	specs     []*actions.Spec // by step index; nil when the action is unknown
	lines     []int           // by step index
	// tagged is set after an unquoted `!…` condition, which YAML reads as a
	// tag that may swallow the keys below it; their absence is then no news.
	tagged bool
}

var (
	topKeys      = []string{"name", "description", "on", "when", "correlate", "vars", "steps"}
	onKeys       = []string{"sources", "kinds", "providers", "credential_kinds"}
	stepKeys     = []string{"id", "action", "if", "with", "target", "delay", "timeout", "retry", "on_error", "approval"}
	retryKeys    = []string{"attempts", "backoff", "max_backoff"}
	approvalKeys = []string{"approvers", "timeout", "on_timeout", "on_deny", "message", "channel", "escalate"}
	escalateKeys = []string{"channel", "approvers", "timeout"}

	sources         = []string{alert.SourceGitHub, alert.SourceGuardDuty, alert.SourceHealth, alert.SourceTruffleHog, alert.SourceGitleaks, alert.SourceManual}
	kinds           = []string{alert.KindCredentialExposed, alert.KindCredentialMisused, alert.KindCredentialResolved}
	credentialKinds = []string{alert.CredentialAccessKey, alert.CredentialRoleSession, alert.CredentialToken}

	nameRe    = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	stepIDRe  = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	varNameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	// channelRe is a Slack channel id (C…, G…) or name (lower case, with
	// or without #).
	channelRe  = regexp.MustCompile(`^(#?[a-z0-9][a-z0-9._-]{0,79}|[CG][A-Z0-9]{2,})$`)
	providerRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
)

func (l *loader) load(data []byte) *Playbook {
	if !l.withinLimits(data) {
		return nil
	}
	f, err := yparser.ParseBytes(data, 0)
	if err != nil {
		l.syntaxError(err)
		return nil
	}
	if len(f.Docs) == 0 || f.Docs[0].Body == nil {
		l.Add(pos{Line: 1, Col: 1}, "a playbook needs at least `name:` and `steps:`", "the playbook is empty")
		return nil
	}
	if len(f.Docs) > 1 {
		l.Add(yamldiag.PosOf(f.Docs[1]), "put each playbook in a file of its own", "a playbook file holds one YAML document")
	}
	root := f.Docs[0].Body
	top, ok := l.fields(root, "the playbook", topKeys)
	if !ok {
		return nil
	}
	pb := &Playbook{}
	if mv := top["name"]; mv == nil {
		l.Add(yamldiag.PosOf(root), "add `name:`, lower-case letters, digits and '-', such as aws-key-leaked", "the playbook has no `name`")
	} else if name, ok := l.str(mv.Value, "name"); ok {
		if !nameRe.MatchString(name) {
			l.Add(yamldiag.PosOf(mv.Value), "use lower-case letters, digits and '-', such as aws-key-leaked", "name %q is not a valid playbook name", name)
		}
		pb.Name = name
	}
	if mv := top["description"]; mv != nil {
		pb.Description, _ = l.str(mv.Value, "description")
	}
	if mv := top["on"]; mv != nil {
		pb.On = l.on(mv.Value)
	}
	pb.Correlate = true
	if mv := top["correlate"]; mv != nil {
		if b, ok := mv.Value.(*yast.BoolNode); ok {
			pb.Correlate = b.Value
		} else {
			l.Add(yamldiag.PosOf(mv.Value), "write correlate: true or correlate: false", "`correlate` must be true or false, not %s", yamldiag.Describe(mv.Value))
		}
	}
	l.vars = map[string]any{}
	if mv := top["vars"]; mv != nil {
		l.decodeVars(mv.Value)
	}
	pb.Vars = l.vars
	if mv := top["when"]; mv != nil {
		pb.when = l.condition(mv.Value, -1)
	}
	if mv := top["steps"]; mv == nil && !l.tagged {
		l.Add(yamldiag.PosOf(root), "add `steps:` with at least one step", "the playbook has no steps")
	} else if mv != nil {
		pb.Steps = l.steps(mv)
	}
	return pb
}

func (l *loader) syntaxError(err error) {
	const hint = "check the indentation and quoting here; quote values that contain `: ` or start with one of { [ * & ! % @ `"
	var ye yaml.Error
	if errors.As(err, &ye) && ye.GetToken() != nil && ye.GetToken().Position != nil {
		p := ye.GetToken().Position
		l.Add(pos{Line: p.Line, Col: p.Column}, hint, "YAML syntax error: %s", ye.GetMessage())
		return
	}
	l.Add(pos{Line: 1, Col: 1}, hint, "YAML syntax error: %v", err)
}

func (l *loader) on(n yast.Node) On {
	var on On
	fs, ok := l.fields(n, "`on`", onKeys)
	if !ok {
		return on
	}
	if mv := fs["sources"]; mv != nil {
		on.Sources = l.enumList(mv.Value, "on.sources", sources)
	}
	if mv := fs["kinds"]; mv != nil {
		on.Kinds = l.enumList(mv.Value, "on.kinds", kinds)
	}
	if mv := fs["providers"]; mv != nil {
		for i, p := range l.strList(mv.Value, "on.providers") {
			if !providerRe.MatchString(p) {
				l.Add(yamldiag.PosOf(listItem(mv.Value, i)), "providers are lower case, such as aws, github, slack", "provider %q is not valid", p)
			}
			on.Providers = append(on.Providers, p)
		}
	}
	if mv := fs["credential_kinds"]; mv != nil {
		on.CredentialKinds = l.enumList(mv.Value, "on.credential_kinds", credentialKinds)
	}
	return on
}

// enumList decodes a list whose items must be among allowed.
func (l *loader) enumList(n yast.Node, what string, allowed []string) []string {
	var out []string
	for i, v := range l.strList(n, what) {
		if !slices.Contains(allowed, v) {
			l.Add(yamldiag.PosOf(listItem(n, i)), yamldiag.Suggest(v, allowed, what+" are"), "%q is not a valid value in %s", v, what)
			continue
		}
		out = append(out, v)
	}
	return out
}

func (l *loader) decodeVars(n yast.Node) {
	m, ok := l.mapping(n, "`vars`")
	if !ok {
		return
	}
	for _, mv := range m {
		name := keyName(mv)
		if !varNameRe.MatchString(name) {
			l.Add(yamldiag.PosOf(mv.Key), "var names are letters, digits and '_', starting with a letter, so that `vars.<name>` works", "var name %q is not valid", name)
			continue
		}
		if v, ok := l.plain(mv.Value); ok {
			l.vars[name] = v
		}
	}
}

// fieldSet holds a mapping's entries by key.
type fieldSet map[string]*yast.MappingValueNode

// fields decodes a mapping whose keys must be among known, reporting the
// unknown ones with the nearest known key.
func (l *loader) fields(n yast.Node, what string, known []string) (fieldSet, bool) {
	entries, ok := l.mapping(n, what)
	if !ok {
		return nil, false
	}
	fs := fieldSet{}
	for _, mv := range entries {
		k := keyName(mv)
		if !slices.Contains(known, k) {
			l.Add(yamldiag.PosOf(mv.Key), yamldiag.Suggest(k, known, "valid keys"), "unknown key `%s` in %s", k, what)
			continue
		}
		fs[k] = mv
	}
	return fs, true
}

// mapping returns the entries of a mapping; an empty value is an empty
// mapping.
func (l *loader) mapping(n yast.Node, what string) ([]*yast.MappingValueNode, bool) {
	switch t := n.(type) {
	case *yast.MappingNode:
		return t.Values, true
	case *yast.MappingValueNode:
		return []*yast.MappingValueNode{t}, true
	case *yast.NullNode:
		return nil, true
	}
	l.Add(yamldiag.PosOf(n), "write `key: value` pairs, indented under the key", "%s must be a mapping, not %s", what, yamldiag.Describe(n))
	return nil, false
}

func keyName(mv *yast.MappingValueNode) string {
	if tk := mv.Key.GetToken(); tk != nil {
		return tk.Value
	}
	return mv.Key.String()
}

func (l *loader) str(n yast.Node, what string) (string, bool) {
	switch t := n.(type) {
	case *yast.StringNode:
		return t.Value, true
	case *yast.LiteralNode:
		return t.Value.Value, true
	}
	l.Add(yamldiag.PosOf(n), "write text, in quotes if it starts with one of [ { * & ! or contains `: `", "`%s` must be a string, not %s", what, yamldiag.Describe(n))
	return "", false
}

func (l *loader) strList(n yast.Node, what string) []string {
	seq, ok := n.(*yast.SequenceNode)
	if !ok {
		l.Add(yamldiag.PosOf(n), "write a list, such as [a, b]", "`%s` must be a list of strings, not %s", what, yamldiag.Describe(n))
		return nil
	}
	var out []string
	for _, item := range seq.Values {
		if s, ok := l.str(item, what+" item"); ok {
			out = append(out, s)
		}
	}
	return out
}

func listItem(n yast.Node, i int) yast.Node {
	if seq, ok := n.(*yast.SequenceNode); ok && i < len(seq.Values) {
		return seq.Values[i]
	}
	return n
}

func (l *loader) duration(n yast.Node, what string) (time.Duration, bool) {
	const hint = "use a Go duration such as 30s, 5m, 1h30m"
	s, isStr := n.(*yast.StringNode)
	if !isStr {
		l.Add(yamldiag.PosOf(n), hint, "`%s` must be a duration, not %s", what, yamldiag.Describe(n))
		return 0, false
	}
	d, err := time.ParseDuration(s.Value)
	if err != nil {
		l.Add(yamldiag.PosOf(n), hint, "`%s`: %q is not a duration", what, s.Value)
		return 0, false
	}
	if d <= 0 {
		l.Add(yamldiag.PosOf(n), hint, "`%s` must be longer than zero", what)
		return 0, false
	}
	return d, true
}

func (l *loader) integer(n yast.Node, what string) (int, bool) {
	if i, ok := n.(*yast.IntegerNode); ok {
		if v, ok := intOf(i.Value); ok {
			return v, true
		}
	}
	l.Add(yamldiag.PosOf(n), "", "`%s` must be a whole number, not %s", what, yamldiag.Describe(n))
	return 0, false
}

// oneOf decodes a string that must be among allowed; absent gives def.
func (l *loader) oneOf(mv *yast.MappingValueNode, what string, allowed []string, def string) string {
	if mv == nil {
		return def
	}
	s, ok := l.str(mv.Value, what)
	if !ok {
		return def
	}
	if !slices.Contains(allowed, s) {
		l.Add(yamldiag.PosOf(mv.Value), yamldiag.Suggest(s, allowed, "`"+what+"` is one of"), "%q is not a valid `%s`", s, what)
		return def
	}
	return s
}

// plain decodes a YAML value that holds no templates into Go values:
// string, int, float64, bool, nil, []any and map[string]any.
func (l *loader) plain(n yast.Node) (any, bool) {
	switch t := n.(type) {
	case *yast.StringNode:
		return t.Value, true
	case *yast.LiteralNode:
		return t.Value.Value, true
	case *yast.IntegerNode:
		if v, ok := intOf(t.Value); ok {
			return v, true
		}
		return t.Value, true
	case *yast.FloatNode:
		return t.Value, true
	case *yast.BoolNode:
		return t.Value, true
	case *yast.NullNode:
		return nil, true
	case *yast.SequenceNode:
		out := make([]any, 0, len(t.Values))
		ok := true
		for _, item := range t.Values {
			v, good := l.plain(item)
			ok = ok && good
			out = append(out, v)
		}
		return out, ok
	case *yast.MappingNode, *yast.MappingValueNode:
		entries, _ := l.mapping(n, "")
		out := make(map[string]any, len(entries))
		ok := true
		for _, mv := range entries {
			v, good := l.plain(mv.Value)
			ok = ok && good
			out[keyName(mv)] = v
		}
		return out, ok
	}
	l.unsupported(n)
	return nil, false
}

// intOf converts the parser's int64 or uint64 to an int when it fits.
func intOf(v any) (int, bool) {
	switch t := v.(type) {
	case int64:
		if t >= -1<<31 && t < 1<<31 {
			return int(t), true
		}
	case uint64:
		if t < 1<<31 {
			return int(t), true
		}
	}
	return 0, false
}

func (l *loader) unsupported(n yast.Node) {
	l.Add(yamldiag.PosOf(n), "write the value out in full", "%s are not supported in playbooks", yamldiag.Describe(n))
}

// scalarSite returns a scalar's text and where its first character is.
// Columns inside the text map onto the file only when the scalar sits on
// one line and has no escapes; otherwise problems point at the scalar.
func scalarSite(n yast.Node) (string, pos, bool, bool) {
	switch t := n.(type) {
	case *yast.StringNode:
		tk := t.Token
		at := yamldiag.TokenPos(tk)
		content := strings.TrimSpace(tk.Origin)
		if tk.Type == token.DoubleQuoteType || tk.Type == token.SingleQuoteType {
			at.Col++
			if len(content) >= 2 {
				content = content[1 : len(content)-1]
			}
		}
		return t.Value, at, content == t.Value, true
	case *yast.LiteralNode:
		return t.Value.Value, yamldiag.PosOf(n), false, true
	case *yast.BoolNode:
		return t.Token.Value, yamldiag.PosOf(n), true, true
	}
	return "", yamldiag.PosOf(n), false, false
}
