package actions

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"
)

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

// Duration is a time.Duration that decodes from strings such as "30s".
type Duration time.Duration

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
