package playbooks

import (
	"errors"
	"fmt"
	"github.com/stanchhq/stanch/internal/yamldiag"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/expr-lang/expr/ast"
	yast "github.com/goccy/go-yaml/ast"

	"github.com/stanchhq/stanch/actions"
)

// stepNode is a step whose id and action are known before its body is
// checked.
type stepNode struct {
	step   *Step
	fields fieldSet
	at     pos
	action actions.Action // nil when unknown
	// misspelt is true when the step has unknown keys.
	misspelt bool
}

func (l *loader) steps(mv *yast.MappingValueNode) []*Step {
	seq, ok := mv.Value.(*yast.SequenceNode)
	if _, empty := mv.Value.(*yast.NullNode); empty || (ok && len(seq.Values) == 0) {
		l.Add(yamldiag.PosOf(mv.Key), "add at least one step with `id:` and `action:`", "the playbook has no steps")
		return nil
	}
	if !ok {
		l.Add(yamldiag.PosOf(mv.Value), "write a list of steps, each starting with `- id:`", "`steps` must be a list, not %s", yamldiag.Describe(mv.Value))
		return nil
	}
	// First every id and action, so that expressions in any step can tell
	// an unknown step from a later one.
	l.stepIndex = map[string]int{}
	var nodes []*stepNode
	for _, n := range seq.Values {
		if sn := l.stepHead(n, len(nodes)+1); sn != nil {
			nodes = append(nodes, sn)
		}
	}
	out := make([]*Step, 0, len(nodes))
	for i, sn := range nodes {
		l.stepBody(i, sn)
		out = append(out, sn.step)
	}
	return out
}

// stepHead decodes a step's id and action and registers the step.
func (l *loader) stepHead(n yast.Node, number int) *stepNode {
	fs, ok := l.fields(n, "a step", stepKeys)
	if !ok {
		return nil
	}
	at := yamldiag.PosOf(n)
	entries, _ := l.mapping(n, "a step")
	st := &Step{Line: at.Line, Timeout: DefaultTimeout, OnError: OnErrorStop, Target: TargetOwner,
		Retry: Retry{Attempts: DefaultAttempts, Backoff: DefaultBackoff, MaxBackoff: DefaultMaxBackoff}}
	// A misspelt key (wiht) already explains why parameters seem missing.
	sn := &stepNode{step: st, fields: fs, at: at, misspelt: len(entries) > len(fs)}
	label := fmt.Sprintf("step %d", number)
	if mv := fs["id"]; mv == nil {
		l.Add(at, "give every step a unique `id:` such as identify", "%s has no `id`", label)
	} else if id, ok := l.str(mv.Value, "id"); ok {
		label = "step `" + id + "`"
		switch first, dup := l.stepIndex[id]; {
		case !stepIDRe.MatchString(id):
			l.Add(yamldiag.PosOf(mv.Value), "step ids are lower-case letters, digits and '_', starting with a letter", "step id %q is not valid", id)
		case dup:
			l.Add(yamldiag.PosOf(mv.Value), fmt.Sprintf("step ids are unique; the first `%s` is step %d at line %d", id, first+1, l.stepLine(first)), "duplicate step id `%s`", id)
		}
		st.ID = id
	}
	var spec *actions.Spec
	if mv := fs["action"]; mv == nil {
		l.Add(at, "name the action the step runs, such as "+strings.Join(firstN(l.reg.Names(), 3), ", "), "%s has no `action`", label)
	} else if name, ok := l.str(mv.Value, "action"); ok {
		st.Action = name
		if a, found := l.reg.Lookup(name); found {
			sn.action = a
			s := a.Spec()
			spec = &s
		} else {
			l.Add(yamldiag.PosOf(mv.Value), yamldiag.Suggest(name, l.reg.Names(), "registered actions"), "unknown action `%s`", name)
		}
	}
	if _, dup := l.stepIndex[st.ID]; !dup && st.ID != "" {
		l.stepIndex[st.ID] = len(l.stepIDs)
	}
	// Every decoded step gets an index, even without a usable id, so that
	// indexes of the steps after it stay right.
	l.stepIDs = append(l.stepIDs, st.ID)
	l.specs = append(l.specs, spec)
	l.lines = append(l.lines, at.Line)
	return sn
}

func (l *loader) stepLine(i int) int { return l.lines[i] }

func firstN(s []string, n int) []string { return s[:min(n, len(s))] }

func (l *loader) stepBody(i int, sn *stepNode) {
	st, fs := sn.step, sn.fields
	if mv := fs["if"]; mv != nil {
		st.cond = l.condition(mv.Value, i)
	}
	st.Target = l.oneOf(fs["target"], "target", []string{TargetOwner, TargetExplicit}, TargetOwner)
	st.with = l.with(i, sn, fs["with"])
	if mv := fs["delay"]; mv != nil {
		if d, ok := l.duration(mv.Value, "delay"); ok {
			st.Delay = d
		}
	}
	if mv := fs["timeout"]; mv != nil {
		if d, ok := l.duration(mv.Value, "timeout"); ok {
			st.Timeout = d
		}
	}
	if mv := fs["retry"]; mv != nil {
		l.retry(mv.Value, &st.Retry)
	}
	st.OnError = l.oneOf(fs["on_error"], "on_error", []string{OnErrorStop, OnErrorContinue}, OnErrorStop)
	if mv := fs["approval"]; mv != nil {
		st.Approval = l.approval(i, mv)
	}
}

func (l *loader) retry(n yast.Node, r *Retry) {
	fs, ok := l.fields(n, "`retry`", retryKeys)
	if !ok {
		return
	}
	if mv := fs["attempts"]; mv != nil {
		if a, ok := l.integer(mv.Value, "retry.attempts"); ok {
			if a < 1 || a > MaxAttempts {
				l.Add(yamldiag.PosOf(mv.Value), fmt.Sprintf("attempts counts the first try too: 1 means no retry; at most %d", MaxAttempts), "retry.attempts %d is out of range 1..%d", a, MaxAttempts)
			} else {
				r.Attempts = a
			}
		}
	}
	if mv := fs["backoff"]; mv != nil {
		if d, ok := l.duration(mv.Value, "retry.backoff"); ok {
			r.Backoff = d
		}
	}
	if mv := fs["max_backoff"]; mv != nil {
		if d, ok := l.duration(mv.Value, "retry.max_backoff"); ok {
			if d < r.Backoff {
				l.Add(yamldiag.PosOf(mv.Value), "raise max_backoff or lower backoff", "retry.max_backoff %s is shorter than retry.backoff %s", d, r.Backoff)
			} else {
				r.MaxBackoff = d
			}
		}
	}
}

func (l *loader) approval(i int, mv *yast.MappingValueNode) *Approval {
	fs, ok := l.fields(mv.Value, "`approval`", approvalKeys)
	if !ok {
		return nil
	}
	a := &Approval{Timeout: DefaultApprovalTimeout, OnTimeout: OnTimeoutDeny}
	if av := fs["approvers"]; av == nil {
		l.Add(yamldiag.PosOf(mv.Key), approversHint, "approval has no `approvers`")
	} else {
		a.Approvers = l.approvers(av, "approval.approvers")
	}
	if tv := fs["timeout"]; tv != nil {
		if d, ok := l.duration(tv.Value, "approval.timeout"); ok {
			a.Timeout = d
		}
	}
	a.OnTimeout = l.oneOf(fs["on_timeout"], "approval.on_timeout", []string{OnTimeoutDeny, OnTimeoutApprove, OnTimeoutEscalate}, OnTimeoutDeny)
	a.OnDeny = l.oneOf(fs["on_deny"], "approval.on_deny", []string{OnDenyStop, OnDenySkip}, OnDenyStop)
	if cv := fs["channel"]; cv != nil {
		a.Channel = l.channel(cv, "approval.channel")
	}
	if ev := fs["escalate"]; ev != nil {
		a.Escalate = l.escalation(ev, a.Timeout)
		if a.OnTimeout != OnTimeoutEscalate {
			l.Add(yamldiag.PosOf(ev.Key), "add `on_timeout: escalate`, or remove `escalate`", "`approval.escalate` is only used with `on_timeout: escalate`")
		}
	} else if a.OnTimeout == OnTimeoutEscalate {
		l.Add(yamldiag.PosOf(fs["on_timeout"].Value), "add `escalate:` with the `channel` (and optionally `approvers` and `timeout`) of the second round", "`on_timeout: escalate` needs `approval.escalate`")
	}
	if msg := fs["message"]; msg != nil {
		if _, isStr := msg.Value.(*yast.StringNode); isStr || isLiteral(msg.Value) {
			a.message, _, _ = l.value(msg.Value, site{step: i})
		} else {
			l.Add(yamldiag.PosOf(msg.Value), "", "`approval.message` must be a string, not %s", yamldiag.Describe(msg.Value))
		}
	}
	return a
}

const approversHint = "list who may decide: Slack user or group ids (U…, S…) or names used with `stanch approve --by`"

func (l *loader) approvers(av *yast.MappingValueNode, what string) []string {
	var out []string
	for j, s := range l.strList(av.Value, what) {
		if strings.TrimSpace(s) == "" {
			l.Add(yamldiag.PosOf(listItem(av.Value, j)), approversHint, "an approver is empty")
			continue
		}
		out = append(out, s)
	}
	if seq, ok := av.Value.(*yast.SequenceNode); ok && len(seq.Values) == 0 {
		l.Add(yamldiag.PosOf(av.Key), approversHint, "`%s` is empty", what)
	}
	return out
}

func (l *loader) channel(cv *yast.MappingValueNode, what string) string {
	s, ok := cv.Value.(*yast.StringNode)
	if !ok {
		l.Add(yamldiag.PosOf(cv.Value), "", "`%s` must be a Slack channel name or id, not %s", what, yamldiag.Describe(cv.Value))
		return ""
	}
	if !channelRe.MatchString(s.Value) {
		l.Add(yamldiag.PosOf(cv.Value), "write a channel name such as \"#sec-incidents\" (quoted: YAML reads # as a comment) or an id such as C0123ABCD", "`%s` %q is not a Slack channel", what, s.Value)
		return ""
	}
	return s.Value
}

func (l *loader) escalation(ev *yast.MappingValueNode, timeout time.Duration) *Escalation {
	fs, ok := l.fields(ev.Value, "`approval.escalate`", escalateKeys)
	if !ok {
		return nil
	}
	e := &Escalation{Timeout: timeout}
	if cv := fs["channel"]; cv != nil {
		e.Channel = l.channel(cv, "approval.escalate.channel")
	} else {
		l.Add(yamldiag.PosOf(ev.Key), "name the Slack channel of the second round", "`approval.escalate` has no `channel`")
	}
	if av := fs["approvers"]; av != nil {
		e.Approvers = l.approvers(av, "approval.escalate.approvers")
	}
	if tv := fs["timeout"]; tv != nil {
		if d, ok := l.duration(tv.Value, "approval.escalate.timeout"); ok {
			e.Timeout = d
		}
	}
	return e
}

func isLiteral(n yast.Node) bool {
	_, ok := n.(*yast.LiteralNode)
	return ok
}

// condition compiles a `when` or `if`: one boolean expression, optionally
// wrapped in ${{ }}.
func (l *loader) condition(n yast.Node, step int) *expression {
	src, at, exact, ok := scalarSite(n)
	if tag, isTag := n.(*yast.TagNode); isTag {
		l.Add(yamldiag.PosOf(n), fmt.Sprintf("quote the condition: \"%s…\"", tag.Start.Value), "YAML reads `%s` as a tag, not as part of the condition", tag.Start.Value)
		// The tag may have taken the keys after it as its value.
		l.tagged = true
		return nil
	}
	if !ok {
		l.Add(yamldiag.PosOf(n), "write an expression that is true or false, such as `alert.severity == \"critical\"`", "a condition must be an expression, not %s", yamldiag.Describe(n))
		return nil
	}
	where := site{step: step, at: at, exact: exact}
	pieces, badAt, bad := splitTemplates(src)
	if bad != "" {
		l.Add(where.pos(badAt), "close every `${{` with `}}`", "%s", bad)
		return nil
	}
	if p, whole := isWhole(pieces); whole {
		src, where.at = p.src, where.pos(p.off)
	} else if len(pieces) > 1 {
		l.Add(where.at, "write the condition as one expression, with or without a single `${{ }}` around all of it", "a condition cannot mix text and `${{ }}`")
		return nil
	}
	return l.compile(src, where, true)
}

// value compiles a `with:` value or a message: templates in strings become
// expressions. raw is the value as written, for the action's Check;
// templated says whether it holds any template.
func (l *loader) value(n yast.Node, where site) (v value, raw any, templated bool) {
	switch t := n.(type) {
	case *yast.StringNode, *yast.LiteralNode:
		s, at, exact, _ := scalarSite(n)
		where.at, where.exact = at, exact
		pieces, badAt, bad := splitTemplates(s)
		if bad != "" {
			l.Add(where.pos(badAt), "close every `${{` with `}}`", "%s", bad)
			return literal{s}, s, true
		}
		if p, ok := isWhole(pieces); ok {
			return whole{l.compileAt(p, where)}, s, true
		}
		if !slices.ContainsFunc(pieces, func(p piece) bool { return p.src != "" }) {
			return literal{s}, s, false
		}
		for i := range pieces {
			if pieces[i].src != "" {
				pieces[i].e = l.compileAt(pieces[i], where)
			}
		}
		return mixed(pieces), s, true
	case *yast.SequenceNode:
		out := make(list, len(t.Values))
		raws := make([]any, len(t.Values))
		for i, item := range t.Values {
			var tpl bool
			out[i], raws[i], tpl = l.value(item, where)
			templated = templated || tpl
		}
		return out, raws, templated
	case *yast.MappingNode, *yast.MappingValueNode:
		entries, _ := l.mapping(n, "")
		out := make(dict, len(entries))
		raws := make(map[string]any, len(entries))
		for _, mv := range entries {
			var tpl bool
			k := keyName(mv)
			out[k], raws[k], tpl = l.value(mv.Value, where)
			templated = templated || tpl
		}
		return out, raws, templated
	}
	p, _ := l.plain(n)
	return literal{p}, p, false
}

// templateType reports a template whose type is known at load time and
// cannot fit the parameter, which Check cannot see because templates are
// only evaluated at run time.
func (l *loader) templateType(at pos, p actions.Param, v value) {
	var got reflect.Type
	src := ""
	switch t := v.(type) {
	case whole:
		if t.e == nil {
			return
		}
		got, src = t.e.program.Node().Type(), "`"+t.e.src+"`"
	case mixed:
		got, src = reflect.TypeFor[string](), "text with templates"
	default:
		return
	}
	if got == nil || got.Kind() == reflect.Interface {
		return // known only at run time
	}
	var fits bool
	switch p.Type {
	case "string", "duration":
		fits = got.Kind() == reflect.String
	case "bool":
		fits = got.Kind() == reflect.Bool
	case "int":
		fits = isInt(got.Kind())
	case "number":
		fits = isInt(got.Kind()) || got.Kind() == reflect.Float32 || got.Kind() == reflect.Float64
	default:
		return
	}
	if !fits {
		l.Add(at, p.Hint(), "parameter %q wants %s, but %s gives %s", p.Name, p.Type, src, got)
	}
}

// fixedTarget reports a parameter naming the credential's account,
// principal or key that is the same for every run (a literal, or a template
// of vars only): a playbook handles whatever credential leaks, so the step
// would act on that one account, user or key whoever owns the leaked one.
func (l *loader) fixedTarget(at pos, p actions.Param, v value) {
	if p.Target == "" {
		return
	}
	var shown string
	switch t := v.(type) {
	case literal:
		if s, ok := t.v.(string); !ok || s == "" {
			return
		}
		shown = fmt.Sprintf("%q", t.v)
	case whole:
		if t.e == nil || !onlyVars(t.e) {
			return
		}
		shown = "`" + t.e.src + "`"
	case mixed:
		for _, piece := range t {
			if piece.src != "" && (piece.e == nil || !onlyVars(piece.e)) {
				return // dynamic, or broken (reported where it is)
			}
		}
		shown = "a text of vars only"
	default:
		return
	}
	what := map[string]string{actions.TargetAccount: "account", actions.TargetUser: "IAM user", actions.TargetRole: "IAM role", actions.TargetCredential: "credential"}[p.Target]
	l.Add(at, fmt.Sprintf("leave `%s` out: once aws.identify_key has found who owns the leaked credential, the step acts on that owner; or set `target: explicit` on the step to act on %s on purpose", p.Name, shown),
		"parameter %q fixes the %s to %s for every run, whoever owns the leaked credential", p.Name, what, shown)
}

// onlyVars reports whether an expression reads nothing but vars, so that
// its value is the same for every run.
func onlyVars(e *expression) bool {
	static := true
	node := e.program.Node()
	ast.Walk(&node, visitor(func(n ast.Node) {
		if id, ok := n.(*ast.IdentifierNode); ok && id.Value != "vars" {
			static = false
		}
	}))
	return static
}

type visitor func(ast.Node)

func (v visitor) Visit(n *ast.Node) { v(*n) }

func isInt(k reflect.Kind) bool {
	return k >= reflect.Int && k <= reflect.Uint64
}

func (l *loader) compileAt(p piece, where site) *expression {
	where.at = where.pos(p.off)
	return l.compile(p.src, where, false)
}

// with compiles a step's parameters and checks them with the action.
func (l *loader) with(i int, sn *stepNode, mv *yast.MappingValueNode) map[string]value {
	out := map[string]value{}
	raw := map[string]any{}
	deferred := map[string]bool{}
	keyAt := map[string]pos{}
	missingAt := sn.at
	if mv != nil {
		missingAt = yamldiag.PosOf(mv.Key)
		entries, ok := l.mapping(mv.Value, "`with`")
		if !ok {
			return out
		}
		for _, e := range entries {
			k := keyName(e)
			keyAt[k] = yamldiag.PosOf(e.Key)
			out[k], raw[k], deferred[k] = l.value(e.Value, site{step: i, secretOK: true})
		}
	}
	if sn.action == nil {
		return out
	}
	spec := sn.action.Spec()
	for _, p := range spec.Params {
		if v, ok := out[p.Name]; ok {
			l.templateType(keyAt[p.Name], p, v)
			if _, isLiteral := v.(literal); sn.step.Target != TargetExplicit && !(isLiteral && deferred[p.Name]) {
				l.fixedTarget(keyAt[p.Name], p, v)
			}
		}
	}
	for _, err := range sn.action.Check(raw, deferred) {
		var pe *actions.ParamError
		if !errors.As(err, &pe) {
			l.Add(missingAt, "", "%s: %v", spec.Name, err)
			continue
		}
		at, known := keyAt[pe.Param]
		if pe.Missing && mv == nil && sn.misspelt {
			continue
		}
		if pe.Missing || !known {
			at = missingAt
		}
		hint := pe.Hint
		if !slices.ContainsFunc(spec.Params, func(p actions.Param) bool { return p.Name == pe.Param }) {
			names := make([]string, len(spec.Params))
			for j, p := range spec.Params {
				names[j] = p.Name
			}
			hint = yamldiag.Suggest(pe.Param, names, "parameters of "+spec.Name)
		}
		l.Add(at, hint, "%s", pe.Msg)
	}
	return out
}
