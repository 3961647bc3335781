package playbooks

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/stanchhq/stanch/internal/yamldiag"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"
)

// expression is one compiled expr-lang expression.
type expression struct {
	src     string
	program *vm.Program
}

func (e *expression) eval(sc Scope) (any, error) {
	v, err := expr.Run(e.program, sc)
	if err != nil {
		// expr's own formatting adds a source snippet over several lines;
		// the message alone reads better inside a step's error.
		var fe *file.Error
		if errors.As(err, &fe) {
			err = errors.New(fe.Message)
		}
		return nil, fmt.Errorf("`%s`: %w", e.src, err)
	}
	return v, nil
}

// value is a `with:` value or a message: a literal, a template, or a list
// or map of values.
type value interface {
	eval(sc Scope) (any, error)
}

type literal struct{ v any }

func (l literal) eval(Scope) (any, error) { return l.v, nil }

// whole is a value that is exactly one ${{ … }}: it keeps the type of the
// expression's result.
type whole struct{ e *expression }

func (w whole) eval(sc Scope) (any, error) {
	v, err := w.e.eval(sc)
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, fmt.Errorf("`%s` has no value (a step that was skipped or failed has no outputs)", w.e.src)
	}
	return v, nil
}

// mixed is text with templates in it; it evaluates to a string.
type mixed []piece

func (m mixed) eval(sc Scope) (any, error) {
	var b strings.Builder
	for _, p := range m {
		if p.e == nil {
			b.WriteString(p.text)
			continue
		}
		v, err := whole{p.e}.eval(sc)
		if err != nil {
			return nil, err
		}
		b.WriteString(text(v))
	}
	return b.String(), nil
}

type list []value

func (l list) eval(sc Scope) (any, error) {
	out := make([]any, len(l))
	for i, v := range l {
		x, err := v.eval(sc)
		if err != nil {
			return nil, fmt.Errorf("item %d: %w", i+1, err)
		}
		out[i] = x
	}
	return out, nil
}

type dict map[string]value

func (d dict) eval(sc Scope) (any, error) {
	out := make(map[string]any, len(d))
	for k, v := range d {
		x, err := v.eval(sc)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		out[k] = x
	}
	return out, nil
}

// text renders a template's value inside a string.
func text(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case time.Time:
		return t.UTC().Format(time.RFC3339)
	case map[string]any, []any:
		b, err := json.Marshal(t)
		if err != nil {
			return fmt.Sprint(t)
		}
		return string(b)
	default:
		return fmt.Sprint(t)
	}
}

// piece is literal text (e == nil) or one template of a string.
type piece struct {
	text string
	src  string // the expression between ${{ and }}
	off  int    // rune offset of src in the string
	e    *expression
}

// splitTemplates cuts s into text and ${{ … }} pieces. On a template that
// does not close it returns the rune offset of its start and a message.
func splitTemplates(s string) (pieces []piece, badAt int, bad string) {
	rest, runeOff := s, 0
	for {
		i := strings.Index(rest, "${{")
		if i < 0 {
			if rest != "" {
				pieces = append(pieces, piece{text: rest})
			}
			return pieces, 0, ""
		}
		if i > 0 {
			pieces = append(pieces, piece{text: rest[:i]})
		}
		start := runeOff + runeLen(rest[:i])
		j := strings.Index(rest[i+3:], "}}")
		if j < 0 {
			return nil, start, "`${{` has no closing `}}`"
		}
		src := rest[i+3 : i+3+j]
		if strings.TrimSpace(src) == "" {
			return nil, start, "empty template `${{ }}`"
		}
		pieces = append(pieces, piece{src: src, off: start + 3})
		consumed := rest[:i+3+j+2]
		runeOff += runeLen(consumed)
		rest = rest[len(consumed):]
	}
}

func runeLen(s string) int { return len([]rune(s)) }

// isWhole reports whether pieces are one template, possibly with blanks
// around it, so that the value keeps the expression's type.
func isWhole(pieces []piece) (piece, bool) {
	var found *piece
	for i := range pieces {
		p := &pieces[i]
		if p.src == "" {
			if strings.TrimSpace(p.text) != "" {
				return piece{}, false
			}
			continue
		}
		if found != nil {
			return piece{}, false
		}
		found = p
	}
	if found == nil {
		return piece{}, false
	}
	return *found, true
}

// site says where an expression sits, which decides what it may refer to
// and where its problems are reported.
type site struct {
	step     int  // index of the step it belongs to; -1 for `when`
	secretOK bool // only `with:` values may use secret outputs
	at       pos  // position of the expression's first character
	exact    bool // columns inside the expression map onto the file
}

func (s site) pos(off int) pos {
	if !s.exact {
		return s.at
	}
	return pos{Line: s.at.Line, Col: s.at.Col + off}
}

var scopeType = reflect.TypeFor[Scope]()

// compile checks src and compiles it against Scope. References to steps and
// vars are checked here, because the scope's maps cannot tell expr which
// steps and vars exist; expr's type checker does the rest (alert, run,
// types of operators). It returns nil after reporting a problem.
func (l *loader) compile(src string, at site, asBool bool) *expression {
	if why := exprWithinLimits(src); why != "" {
		l.Add(at.pos(0), "split the condition into simpler steps or vars", "%s", why)
		return nil
	}
	tree, err := parser.Parse(src)
	if err != nil {
		l.exprError(src, at, err, asBool)
		return nil
	}
	refs := &refChecker{l: l, at: at}
	ast.Walk(&tree.Node, refs)
	if refs.bad {
		return nil
	}
	opts := []expr.Option{expr.Env(Scope{})}
	if asBool {
		opts = append(opts, expr.AsBool())
	}
	program, err := expr.Compile(src, opts...)
	if err != nil {
		l.exprError(src, at, err, asBool)
		return nil
	}
	return &expression{src: strings.TrimSpace(src), program: program}
}

var (
	unknownName  = regexp.MustCompile(`^unknown name (\S+)$`)
	noField      = regexp.MustCompile(`^type (\S+) has no field (\S+)$`)
	expectedBool = regexp.MustCompile(`^expected bool, but got (\S+)$`)
)

func (l *loader) exprError(src string, at site, err error, asBool bool) {
	off, msg := 0, err.Error()
	var fe *file.Error
	if errors.As(err, &fe) {
		off, msg = fe.From, fe.Message
	}
	where := at.pos(off)
	const hint = "expressions use the expr language: https://expr-lang.org/docs/language-definition"
	switch {
	case unknownName.MatchString(msg):
		name := unknownName.FindStringSubmatch(msg)[1]
		l.Add(where, yamldiag.Suggest(name, []string{"alert", "run", "steps", "vars"}, "an expression can use"), "unknown name `%s`", name)
	case noField.MatchString(msg):
		m := noField.FindStringSubmatch(msg)
		if t, ok := exprTypes[m[1]]; ok {
			l.Add(where, yamldiag.Suggest(m[2], t.fields, "fields of "+t.path), "`%s` has no field `%s`", t.path, m[2])
			return
		}
		l.Add(where, hint, "expression does not compile: %s", msg)
	case asBool && expectedBool.MatchString(msg):
		got := expectedBool.FindStringSubmatch(msg)[1]
		l.Add(where, "compare the value to get true or false, e.g. `steps.identify.outputs.user_name != \"\"`", "condition `%s` has type %s, not bool", strings.TrimSpace(src), got)
	default:
		l.Add(where, hint, "expression does not compile: %s", msg)
	}
}

// exprType names a struct type of the scope as playbooks write it.
type exprType struct {
	path   string
	fields []string
}

// exprTypes maps Go type names, as expr's errors print them, to the path
// and field names a playbook author knows.
var exprTypes = func() map[string]exprType {
	out := map[string]exprType{}
	var walk func(t reflect.Type, path string)
	walk = func(t reflect.Type, path string) {
		if t.Kind() != reflect.Struct || t == reflect.TypeFor[time.Time]() {
			return
		}
		et := exprType{path: path}
		for i := range t.NumField() {
			f := t.Field(i)
			name := f.Tag.Get("expr")
			if name == "" || name == "-" || !f.IsExported() {
				continue
			}
			et.fields = append(et.fields, name)
			walk(f.Type, path+"."+name)
		}
		out[t.String()] = et
	}
	for i := range scopeType.NumField() {
		f := scopeType.Field(i)
		name := f.Tag.Get("expr")
		if f.Type.Kind() == reflect.Struct {
			walk(f.Type, name)
		}
	}
	return out
}()

// refChecker walks an expression and reports references to steps and vars
// that do not exist or are not allowed where the expression sits.
type refChecker struct {
	l   *loader
	at  site
	bad bool
}

func (r *refChecker) report(n ast.Node, hint, format string, args ...any) {
	r.bad = true
	r.l.Add(r.at.pos(n.Location().From), hint, format, args...)
}

// Visit sees every member access, innermost first: for
// steps.identify.outputs.user_name it sees steps.identify, then
// steps.identify.outputs, then the whole. Each visit checks only the last
// name of its chain, so every problem is reported once.
func (r *refChecker) Visit(node *ast.Node) {
	m, ok := (*node).(*ast.MemberNode)
	if !ok {
		return
	}
	root, props := memberChain(m)
	if root == nil {
		return
	}
	switch root.Value {
	case "steps":
		r.step(props)
	case "vars":
		if len(props) == 1 {
			r.variable(props[0])
		}
	}
}

// memberChain returns the identifier a chain of member accesses starts from
// and the properties after it, in order.
func memberChain(n ast.Node) (*ast.IdentifierNode, []ast.Node) {
	var props []ast.Node
	for {
		switch t := n.(type) {
		case *ast.MemberNode:
			props = append(props, t.Property)
			n = t.Node
		case *ast.ChainNode:
			n = t.Node
		case *ast.IdentifierNode:
			slices.Reverse(props)
			return t, props
		default:
			return nil, nil
		}
	}
}

func propName(n ast.Node) (string, bool) {
	s, ok := n.(*ast.StringNode)
	if !ok {
		return "", false
	}
	return s.Value, true
}

var stepFields = []string{"outputs", "outcome", "status"}

func (r *refChecker) step(props []ast.Node) {
	last := len(props) - 1
	id, ok := propName(props[0])
	if !ok {
		if last == 0 {
			r.report(props[0], "write the step id out, like `steps.identify.outputs.user_name`", "steps must be named by a literal step id")
		}
		return
	}
	target, known := r.l.stepIndex[id]
	if last == 0 {
		earlier := r.l.stepIDs[:max(r.at.step, 0)]
		switch {
		case r.at.step < 0:
			r.report(props[0], "`when` decides whether the playbook starts, before any step runs; use a step's `if` to test earlier steps", "`when` cannot refer to steps")
		case !known:
			hint := "no step comes before this one"
			if len(earlier) > 0 {
				hint = yamldiag.Suggest(id, earlier, "steps before this one")
			}
			r.report(props[0], hint, "unknown step `%s`", id)
		case target == r.at.step:
			r.report(props[0], "a step's outputs exist only after it ran; use them in a later step", "step `%s` refers to itself", id)
		case target > r.at.step:
			r.report(props[0], fmt.Sprintf("steps run in order, so only earlier steps have results; move step `%s` before step `%s`", id, r.l.stepIDs[r.at.step]), "step `%s` runs later than this step", id)
		}
		return
	}
	if !known || target >= r.at.step || r.at.step < 0 {
		return // reported at the step id
	}
	field, ok := propName(props[1])
	if !ok || !slices.Contains(stepFields, field) {
		if last == 1 {
			r.report(props[1], yamldiag.Suggest(field, stepFields, "a step has"), "step `%s` has no field `%s`", id, field)
		}
		return
	}
	if field != "outputs" || last != 2 {
		return
	}
	spec := r.l.specs[target]
	if spec == nil {
		return // its unknown action is reported at the step
	}
	name, ok := propName(props[2])
	if !ok {
		r.report(props[2], "write the output name out, like `steps.identify.outputs.user_name`", "outputs must be named literally")
		return
	}
	var names []string
	for _, o := range spec.Outputs {
		names = append(names, o.Name)
		if o.Name != name {
			continue
		}
		if o.Secret && !r.at.secretOK {
			r.report(props[2], "secret outputs never appear in conditions, messages or logs; pass it to an action parameter under `with:`", "output `%s` of step `%s` is secret and may only be used in `with:`", name, id)
		}
		return
	}
	hint := spec.Name + " has no outputs"
	if len(names) > 0 {
		hint = yamldiag.Suggest(name, names, "outputs of "+spec.Name)
	}
	r.report(props[2], hint, "step `%s` (%s) has no output `%s`", id, spec.Name, name)
}

func (r *refChecker) variable(n ast.Node) {
	name, ok := propName(n)
	if !ok {
		r.report(n, "write the var name out, like `vars.team_channel`", "vars must be named literally")
		return
	}
	if _, ok := r.l.vars[name]; ok {
		return
	}
	hint := "declare it under `vars:` at the top of the playbook"
	if len(r.l.vars) > 0 {
		hint = yamldiag.Suggest(name, slices.Sorted(maps.Keys(r.l.vars)), "declared vars")
	}
	r.report(n, hint, "unknown var `%s`", name)
}
