package actions

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"
)

// Definition builds an Action whose parameters decode into P, a struct whose
// fields carry `json:"name"`, optional `required:"true"` and `doc:"…"` tags.
type Definition[P any] struct {
	Name        string
	Summary     string
	Outputs     []Output
	Permissions []Permission
	Example     string
	// Slow marks long-running actions; see Spec.Slow.
	Slow bool
	// Containment marks actions that contain a credential; see
	// Spec.Containment.
	Containment bool
	// Validate, when set, checks decoded parameters beyond their types.
	Validate func(p *P) error
	PlanFunc func(ctx context.Context, env Env, p *P) (Plan, error)
	DoFunc   func(ctx context.Context, env Env, p *P) (Result, error)
}

// New returns the Action that d defines. It panics on a parameter struct that
// cannot be described, which is a programming error found by any test.
func New[P any](d Definition[P]) Action {
	params, err := describeParams(reflect.TypeFor[P]())
	if err != nil {
		panic(fmt.Sprintf("action %s: %v", d.Name, err))
	}
	return &defined[P]{def: d, params: params}
}

type defined[P any] struct {
	def    Definition[P]
	params []Param
}

func (a *defined[P]) Spec() Spec {
	return Spec{
		Name:        a.def.Name,
		Summary:     a.def.Summary,
		Params:      a.params,
		Outputs:     a.def.Outputs,
		Permissions: a.def.Permissions,
		Example:     a.def.Example,
		Slow:        a.def.Slow,
		Containment: a.def.Containment,
	}
}

func (a *defined[P]) Decode(with map[string]any) (any, error) {
	if errs := a.Check(with, nil); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	p, err := decodeStrict[P](with)
	if err != nil {
		return nil, err
	}
	if a.def.Validate != nil {
		if err := a.def.Validate(p); err != nil {
			return nil, fmt.Errorf("%s: %w", a.def.Name, err)
		}
	}
	return p, nil
}

// Check reports every problem with a step's `with:` at once: unknown
// parameters, missing required ones and literal values of the wrong type.
// Parameters named in deferred hold templates; their values are only known
// at run time, so only their presence counts.
func (a *defined[P]) Check(with map[string]any, deferred map[string]bool) []error {
	var errs []error
	known := map[string]Param{}
	for _, p := range a.params {
		known[p.Name] = p
	}
	keys := make([]string, 0, len(with))
	for k := range with {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p, ok := known[k]
		if !ok {
			errs = append(errs, &ParamError{Param: k, Msg: fmt.Sprintf("unknown parameter %q for %s", k, a.def.Name), Hint: "known parameters: " + a.paramNames()})
			continue
		}
		if deferred[k] {
			continue
		}
		if _, err := decodeStrict[P](map[string]any{k: with[k]}); err != nil {
			errs = append(errs, &ParamError{Param: k, Msg: fmt.Sprintf("parameter %q wants %s: %v", k, p.Type, shortJSONError(err)), Hint: p.Hint()})
		}
	}
	for _, p := range a.params {
		if !p.Required {
			continue
		}
		v, ok := with[p.Name]
		if !ok || v == nil || v == "" {
			errs = append(errs, &ParamError{Param: p.Name, Missing: true, Msg: fmt.Sprintf("missing required parameter %q for %s", p.Name, a.def.Name), Hint: p.Hint()})
		}
	}
	return errs
}

func (a *defined[P]) paramNames() string {
	names := make([]string, len(a.params))
	for i, p := range a.params {
		names[i] = p.Name
	}
	return strings.Join(names, ", ")
}

func (a *defined[P]) Plan(ctx context.Context, env Env, params any) (Plan, error) {
	p, ok := params.(*P)
	if !ok {
		return Plan{}, fmt.Errorf("%s: parameters of type %T, want %T", a.def.Name, params, p)
	}
	return a.def.PlanFunc(ctx, env, p)
}

func (a *defined[P]) Do(ctx context.Context, env Env, params any) (Result, error) {
	p, ok := params.(*P)
	if !ok {
		return Result{}, fmt.Errorf("%s: parameters of type %T, want %T", a.def.Name, params, p)
	}
	return a.def.DoFunc(ctx, env, p)
}

// ParamError is a problem with one parameter of a step.
type ParamError struct {
	Param   string
	Msg     string
	Hint    string
	Missing bool // the parameter is absent (report at the `with:` or step)
}

func (e *ParamError) Error() string { return e.Msg }

// Hint describes a parameter for error hints: name (type, required): doc.
func (p Param) Hint() string {
	h := p.Name + " (" + p.Type
	if p.Required {
		h += ", required"
	}
	h += ")"
	if p.Doc != "" {
		h += ": " + p.Doc
	}
	return h
}

func decodeStrict[P any](with map[string]any) (*P, error) {
	data, err := json.Marshal(normalise(with))
	if err != nil {
		return nil, fmt.Errorf("encode parameters: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	p := new(P)
	if err := dec.Decode(p); err != nil {
		return nil, err
	}
	return p, nil
}

// normalise turns YAML-decoded maps with non-string keys into JSON-encodable
// values.
func normalise(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, c := range t {
			out[k] = normalise(c)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(t))
		for k, c := range t {
			out[fmt.Sprint(k)] = normalise(c)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, c := range t {
			out[i] = normalise(c)
		}
		return out
	default:
		return v
	}
}

func shortJSONError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return "got " + te.Value
	}
	return err.Error()
}

var durationType = reflect.TypeFor[Duration]()

func describeParams(t reflect.Type) ([]Param, error) {
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("parameters must be a struct, not %s", t)
	}
	var out []Param
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			return nil, fmt.Errorf("field %s has no json name", f.Name)
		}
		target := f.Tag.Get("target")
		if target != "" && (!targetRoles[target] || f.Type.Kind() != reflect.String) {
			return nil, fmt.Errorf("field %s: target %q: want account, user, role or credential on a string field", f.Name, target)
		}
		out = append(out, Param{
			Name:     name,
			Type:     typeName(f.Type),
			Required: f.Tag.Get("required") == "true",
			Doc:      f.Tag.Get("doc"),
			Kind:     f.Type.Kind(),
			Target:   target,
		})
	}
	return out, nil
}

func typeName(t reflect.Type) string {
	if t == durationType {
		return "duration"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint32, reflect.Uint64:
		return "int"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice:
		return "list of " + typeName(t.Elem())
	case reflect.Map:
		return "map"
	case reflect.Pointer:
		return typeName(t.Elem())
	default:
		return t.Kind().String()
	}
}

// UnmarshalJSON accepts a Go duration string such as "90s" or "15m".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return &json.UnmarshalTypeError{Value: string(b), Type: durationType}
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration (use forms like 30s, 5m, 1h)", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}
