// Package strictyaml decodes a YAML document into a Go struct strictly and
// reports every problem at once, each with its line and column: unknown
// keys (with the nearest known one), duplicate keys, values of the wrong
// kind. It is for configuration files, which people edit by hand and CI
// checks: one run must show everything to fix.
package strictyaml

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	yast "github.com/goccy/go-yaml/ast"
	yparser "github.com/goccy/go-yaml/parser"

	"github.com/stanchhq/stanch/internal/yamldiag"
)

// Positions maps the dotted path of every key decoded (aws.response_roles.arn,
// playbooks[1]) to where its value is, for problems found after decoding.
type Positions map[string]yamldiag.Pos

// MaxBytes bounds a file: configuration is short, and the parser's cost
// grows faster than the input.
const MaxBytes = 1 << 20

// Decode decodes data into v (a pointer to a struct), field names from
// `yaml:"name"` tags (`yaml:",inline"` embeds a struct's fields). The
// error, if any, is yamldiag.Problems.
func Decode(file string, data []byte, v any) (Positions, error) {
	d := &decoder{Collector: yamldiag.Collector{File: file}, at: Positions{}}
	if len(data) > MaxBytes {
		d.Add(yamldiag.Pos{Line: 1, Col: 1}, "", "the file is larger than %d bytes", MaxBytes)
		return d.at, d.Problems
	}
	// Duplicate keys are left to the decoder, which reports them with the
	// others instead of stopping at the first.
	f, err := yparser.ParseBytes(data, 0, yparser.AllowDuplicateMapKey())
	if err != nil {
		// The parser's error knows where: put it where problems go.
		at, msg := yamldiag.Pos{Line: 1, Col: 1}, firstLine(err.Error())
		var syn *yaml.SyntaxError
		if errors.As(err, &syn) {
			at, msg = yamldiag.TokenPos(syn.GetToken()), syn.GetMessage()
		}
		d.Add(at, "", "YAML syntax error: %s", msg)
		return d.at, d.Problems
	}
	var body yast.Node
	if len(f.Docs) > 1 {
		d.Add(yamldiag.PosOf(f.Docs[1]), "keep the whole configuration in one document", "more than one YAML document")
	}
	if len(f.Docs) > 0 {
		body = f.Docs[0].Body
	}
	if body == nil {
		return d.at, nil // an empty file: every default
	}
	d.value(body, reflect.ValueOf(v).Elem(), "")
	if len(d.Problems) > 0 {
		return d.at, d.Sorted()
	}
	return d.at, nil
}

type decoder struct {
	yamldiag.Collector
	at Positions
}

var durationType = reflect.TypeFor[time.Duration]()

func (d *decoder) value(n yast.Node, v reflect.Value, path string) {
	if path != "" {
		d.at[path] = yamldiag.PosOf(n)
	}
	switch t := n.(type) {
	case *yast.AnchorNode, *yast.AliasNode, *yast.TagNode:
		d.Add(yamldiag.PosOf(n), "write the value out in full", "%s are not supported here", yamldiag.Describe(n))
		return
	case *yast.NullNode:
		return // as if absent
	case *yast.CommentGroupNode:
		return
	case *yast.MappingValueNode:
		n = &yast.MappingNode{Values: []*yast.MappingValueNode{t}}
	}
	if v.Type() == durationType {
		s, ok := scalar(n)
		dur, err := time.ParseDuration(s)
		switch {
		case !ok:
			d.Add(yamldiag.PosOf(n), "use a duration such as 30s, 5m, 1h", "`%s` must be a duration, not %s", name(path), yamldiag.Describe(n))
		case err != nil || dur <= 0:
			d.Add(yamldiag.PosOf(n), "use a duration such as 30s, 5m, 1h", "`%s`: %q is not a duration longer than zero", name(path), s)
		default:
			v.SetInt(int64(dur))
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.value(n, v.Elem(), path)
	case reflect.Struct:
		d.object(n, v, path)
	case reflect.Map:
		d.mapping(n, v, path)
	case reflect.Slice:
		seq, ok := n.(*yast.SequenceNode)
		if !ok {
			d.Add(yamldiag.PosOf(n), "write a list: [a, b] or one `- item` per line", "`%s` must be a list, not %s", name(path), yamldiag.Describe(n))
			return
		}
		out := reflect.MakeSlice(v.Type(), len(seq.Values), len(seq.Values))
		for i, item := range seq.Values {
			d.value(item, out.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(out)
	case reflect.String:
		s, ok := scalar(n)
		if !ok {
			d.Add(yamldiag.PosOf(n), "", "`%s` must be a string, not %s", name(path), yamldiag.Describe(n))
			return
		}
		v.SetString(s)
	case reflect.Bool:
		b, ok := n.(*yast.BoolNode)
		if !ok {
			d.Add(yamldiag.PosOf(n), "write true or false", "`%s` must be true or false, not %s", name(path), yamldiag.Describe(n))
			return
		}
		v.SetBool(b.Value)
	case reflect.Int, reflect.Int64, reflect.Int32:
		s, ok := scalar(n)
		i, err := strconv.ParseInt(s, 10, 64)
		if _, isInt := n.(*yast.IntegerNode); !ok || !isInt || err != nil {
			d.Add(yamldiag.PosOf(n), "", "`%s` must be a whole number, not %s", name(path), yamldiag.Describe(n))
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		s, ok := scalar(n)
		f, err := strconv.ParseFloat(s, 64)
		switch n.(type) {
		case *yast.IntegerNode, *yast.FloatNode:
		default:
			ok = false
		}
		if !ok || err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			d.Add(yamldiag.PosOf(n), "", "`%s` must be a number, not %s", name(path), yamldiag.Describe(n))
			return
		}
		v.SetFloat(f)
	default:
		panic(fmt.Sprintf("strictyaml: unsupported field type %s", v.Type()))
	}
}

// fields lists a struct's keys, flattening inline structs.
func fields(t reflect.Type) map[string][]int {
	out := map[string][]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		key, opts, _ := strings.Cut(tag, ",")
		if opts == "inline" {
			for k, idx := range fields(f.Type) {
				out[k] = append([]int{i}, idx...)
			}
			continue
		}
		if key == "" || key == "-" || !f.IsExported() {
			continue
		}
		out[key] = []int{i}
	}
	return out
}

func (d *decoder) object(n yast.Node, v reflect.Value, path string) {
	m, ok := n.(*yast.MappingNode)
	if !ok {
		d.Add(yamldiag.PosOf(n), "", "`%s` must be a mapping of keys, not %s", name(path), yamldiag.Describe(n))
		return
	}
	known := fields(v.Type())
	names := make([]string, 0, len(known))
	for k := range known {
		names = append(names, k)
	}
	sort.Strings(names)
	seen := map[string]yamldiag.Pos{}
	for _, mv := range m.Values {
		key, ok := scalar(mv.Key)
		at := yamldiag.PosOf(mv.Key)
		if !ok {
			d.Add(at, "", "a key must be a plain name, not %s", yamldiag.Describe(mv.Key))
			continue
		}
		if first, dup := seen[key]; dup {
			d.Add(at, fmt.Sprintf("the first `%s` is at line %d", key, first.Line), "duplicate key `%s`", key)
			continue
		}
		seen[key] = at
		idx, ok := known[key]
		if !ok {
			hint := "valid keys: " + strings.Join(names, ", ")
			if near := yamldiag.Nearest(key, names); near != "" {
				hint = fmt.Sprintf("did you mean `%s`? %s", near, hint)
			}
			where := "at the top level"
			if path != "" {
				where = "in `" + path + "`"
			}
			d.Add(at, hint, "unknown key `%s` %s", key, where)
			continue
		}
		d.value(mv.Value, v.FieldByIndex(idx), join(path, key))
	}
}

func (d *decoder) mapping(n yast.Node, v reflect.Value, path string) {
	m, ok := n.(*yast.MappingNode)
	if !ok {
		d.Add(yamldiag.PosOf(n), "", "`%s` must be a mapping, not %s", name(path), yamldiag.Describe(n))
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(v.Type()))
	}
	for _, mv := range m.Values {
		key, ok := scalar(mv.Key)
		if !ok {
			d.Add(yamldiag.PosOf(mv.Key), "", "a key must be a plain name, not %s", yamldiag.Describe(mv.Key))
			continue
		}
		if v.MapIndex(reflect.ValueOf(key)).IsValid() {
			d.Add(yamldiag.PosOf(mv.Key), "", "duplicate key `%s`", key)
			continue
		}
		elem := reflect.New(v.Type().Elem()).Elem()
		d.value(mv.Value, elem, join(path, key))
		v.SetMapIndex(reflect.ValueOf(key), elem)
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func name(path string) string {
	if path == "" {
		return "the file"
	}
	return path
}

// scalar returns a scalar's text: strings, numbers and booleans alike (an
// account id written without quotes is a number to YAML).
func scalar(n yast.Node) (string, bool) {
	switch t := n.(type) {
	case *yast.StringNode:
		return t.Value, true
	case *yast.LiteralNode:
		return t.Value.Value, true
	case *yast.IntegerNode, *yast.FloatNode, *yast.BoolNode:
		return t.GetToken().Value, true
	}
	return "", false
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
