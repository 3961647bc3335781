package deploy

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/stretchr/testify/require"
)

// readTemplate reads a CloudFormation template written in YAML into the
// JSON form CloudFormation works on: the short forms of the intrinsic
// functions (!Ref X, !GetAtt R.A, !Sub "…", !If […]) become their long
// forms ({"Ref": "X"}, {"Fn::GetAtt": ["R", "A"]}, …).
func readTemplate(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	file, err := parser.ParseBytes(data, 0)
	require.NoError(t, err, path)
	require.Len(t, file.Docs, 1, path)
	v, err := cfnValue(file.Docs[0].Body)
	require.NoError(t, err, path)
	m, ok := v.(map[string]any)
	require.True(t, ok, "%s: not a mapping", path)
	return m
}

func cfnValue(n ast.Node) (any, error) {
	switch n := n.(type) {
	case *ast.MappingNode:
		m := map[string]any{}
		for _, kv := range n.Values {
			if err := cfnPair(m, kv); err != nil {
				return nil, err
			}
		}
		return m, nil
	case *ast.MappingValueNode:
		m := map[string]any{}
		return m, cfnPair(m, n)
	case *ast.SequenceNode:
		list := make([]any, 0, len(n.Values))
		for _, e := range n.Values {
			v, err := cfnValue(e)
			if err != nil {
				return nil, err
			}
			list = append(list, v)
		}
		return list, nil
	case *ast.TagNode:
		v, err := cfnValue(n.Value)
		if err != nil {
			return nil, err
		}
		name := strings.TrimPrefix(n.Start.Value, "!")
		switch name {
		case "Ref", "Condition":
			return map[string]any{name: v}, nil
		case "GetAtt":
			if s, ok := v.(string); ok {
				resource, attribute, _ := strings.Cut(s, ".")
				v = []any{resource, attribute}
			}
		}
		return map[string]any{"Fn::" + name: v}, nil
	case ast.ScalarNode:
		return n.GetValue(), nil
	default:
		return nil, fmt.Errorf("line %d: %s nodes are not read here", n.GetToken().Position.Line, n.Type())
	}
}

func cfnPair(m map[string]any, kv *ast.MappingValueNode) error {
	key, ok := kv.Key.(ast.ScalarNode)
	if !ok {
		return fmt.Errorf("line %d: a key that is not a scalar", kv.GetToken().Position.Line)
	}
	v, err := cfnValue(kv.Value)
	if err != nil {
		return err
	}
	m[fmt.Sprint(key.GetValue())] = v
	return nil
}

// dig follows keys (map keys, or list indexes as ints) into a template.
func dig(t *testing.T, v any, path ...any) any {
	t.Helper()
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			require.True(t, ok, "at %q: not a mapping", k)
			v, ok = m[k]
			require.True(t, ok, "no %q", k)
		case int:
			l, ok := v.([]any)
			require.True(t, ok, "at %d: not a list", k)
			require.Less(t, k, len(l))
			v = l[k]
		}
	}
	return v
}

// stack is what the tests know of a deployed stack, to resolve the
// intrinsic functions of parts of its template that moto does not create.
type stack struct {
	params     map[string]string
	conditions map[string]any // the template's Conditions
	attributes map[string]any // "Resource.Attribute" → value
}

// resolve evaluates Ref, Fn::GetAtt, Fn::If (with Fn::Equals, Fn::Not,
// Fn::And, Fn::Or and Condition) and AWS::NoValue in v, as CloudFormation
// does: what it does not know fails the test.
func (s stack) resolve(t *testing.T, v any) any {
	t.Helper()
	out, _ := s.eval(t, v)
	return out
}

func (s stack) eval(t *testing.T, v any) (any, bool) {
	t.Helper()
	switch v := v.(type) {
	case []any:
		var list []any
		for _, e := range v {
			if r, ok := s.eval(t, e); ok {
				list = append(list, r)
			}
		}
		return list, true
	case map[string]any:
		if len(v) == 1 {
			for fn, arg := range v {
				switch fn {
				case "Ref":
					name := arg.(string)
					if name == "AWS::NoValue" {
						return nil, false
					}
					if p, ok := s.params[name]; ok {
						return p, true
					}
					r, ok := s.attributes[name]
					require.True(t, ok, "Ref %s: unknown here", name)
					return r, true
				case "Fn::GetAtt":
					parts := arg.([]any)
					r, ok := s.attributes[parts[0].(string)+"."+parts[1].(string)]
					require.True(t, ok, "GetAtt %v: unknown here", parts)
					return r, true
				case "Fn::If":
					args := arg.([]any)
					if s.condition(t, args[0].(string)) {
						return s.eval(t, args[1])
					}
					return s.eval(t, args[2])
				}
				require.False(t, strings.HasPrefix(fn, "Fn::"), "%s is not evaluated here", fn)
			}
		}
		m := map[string]any{}
		for k, e := range v {
			if r, ok := s.eval(t, e); ok {
				m[k] = r
			}
		}
		return m, true
	default:
		return v, true
	}
}

func (s stack) condition(t *testing.T, name string) bool {
	t.Helper()
	c, ok := s.conditions[name]
	require.True(t, ok, "no condition %s", name)
	return s.truth(t, c)
}

func (s stack) truth(t *testing.T, v any) bool {
	t.Helper()
	m := v.(map[string]any)
	require.Len(t, m, 1)
	for fn, arg := range m {
		switch fn {
		case "Condition":
			return s.condition(t, arg.(string))
		case "Fn::Equals":
			args := arg.([]any)
			return fmt.Sprint(s.resolve(t, args[0])) == fmt.Sprint(s.resolve(t, args[1]))
		case "Fn::Not":
			return !s.truth(t, arg.([]any)[0])
		case "Fn::And", "Fn::Or":
			and := fn == "Fn::And"
			for _, c := range arg.([]any) {
				if s.truth(t, c) != and {
					return !and
				}
			}
			return and
		}
		t.Fatalf("condition function %s is not evaluated here", fn)
	}
	return false
}

// policyJSON reads a policy document as IAM returns it (URL-encoded JSON)
// into a value to compare. moto 5.2.1 returns the inline policies of a role
// that CloudFormation created (AWS::IAM::Role Policies) as the Python repr
// of the document ({'Version': '2012-10-17', …}) instead of JSON: that form
// is read too.
func policyJSON(t *testing.T, doc string) any {
	t.Helper()
	if unescaped, err := url.QueryUnescape(doc); err == nil {
		doc = unescaped
	}
	if !json.Valid([]byte(doc)) && strings.HasPrefix(doc, "{'") {
		doc = pythonReprToJSON(t, doc)
	}
	var v any
	require.NoError(t, json.Unmarshal([]byte(doc), &v), doc)
	return v
}

// pythonReprToJSON turns the repr of a Python dict of strings, lists,
// dicts, numbers and booleans into JSON.
func pythonReprToJSON(t *testing.T, s string) string {
	t.Helper()
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\'' || c == '"':
			var str strings.Builder
			for i++; i < len(s) && s[i] != c; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				str.WriteByte(s[i])
			}
			require.Less(t, i, len(s), "unterminated string in %s", s)
			q, _ := json.Marshal(str.String())
			b.Write(q)
		case strings.HasPrefix(s[i:], "True"):
			b.WriteString("true")
			i += len("True") - 1
		case strings.HasPrefix(s[i:], "False"):
			b.WriteString("false")
			i += len("False") - 1
		case strings.HasPrefix(s[i:], "None"):
			b.WriteString("null")
			i += len("None") - 1
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func TestPythonReprToJSON(t *testing.T) {
	t.Parallel()
	got := pythonReprToJSON(t, `{'Version': '2012-10-17', 'Statement': [{'Action': ['a:B', "it's"], 'N': 3, 'T': True, 'F': False, 'X': None, 'E': 'back\\slash'}]}`)
	require.JSONEq(t, `{"Version": "2012-10-17", "Statement": [{"Action": ["a:B", "it's"], "N": 3, "T": true, "F": false, "X": null, "E": "back\\slash"}]}`, got)
}

// TestTemplatesPassCfnLint runs cfn-lint, AWS's CloudFormation linter, on
// the templates: every resource's properties against the CloudFormation
// resource schemas, including the resources moto does not create
// (AWS::Events::Connection, AWS::Events::ApiDestination,
// AWS::SQS::QueuePolicy).
func TestTemplatesPassCfnLint(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("cfn-lint"); err != nil {
		t.Skip("cfn-lint is not on PATH (pip install cfn-lint; moto's CloudFormation extra brings it)")
	}
	for _, name := range []string{"cloudformation/eventbridge.yaml", "cloudformation/response-role.yaml"} {
		out, err := exec.Command("cfn-lint", "--", name).CombinedOutput()
		require.NoError(t, err, "cfn-lint %s:\n%s", name, out)
	}
}
