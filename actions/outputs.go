package actions

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
)

// ResultOf is what a Definition's DoFunc returns: a Result whose
// outputs are the action's outputs struct. New turns it into the Result the
// runner stores, with one output per field of O.
type ResultOf[O any] struct {
	Outcome Outcome
	// Message is one line for people: "AKIA… deactivated (was Active)".
	Message string
	// Outputs are the step's outputs; nil when it has none to give (it did
	// nothing, such as a notification with nowhere to post), so that later
	// steps read no made-up values.
	Outputs *O
	// Owner, set by actions that identify a credential's owner, tells the
	// runner who every later step acts on.
	Owner *Owner
}

// PlanOf is what a Definition's PlanFunc returns: a Plan whose outputs
// are the action's outputs struct. New turns it into the Plan `stanch plan`
// and approvals read.
type PlanOf[O any] struct {
	// Summary is one line: what would happen.
	Summary string
	// Calls are the API calls Do would make, reads and writes, in order.
	Calls []Call
	// Outputs are the outputs the reads determine, so that later steps can
	// be planned too. nil when the reads determine none: the steps that use
	// them are then planned at run time.
	Outputs *O
	// Undetermined names (as steps.X.outputs.NAME does) the outputs that
	// only Do can know, such as the id of a key not created yet: they are
	// left out of the plan rather than planned as zero values.
	Undetermined []string
	// Owner is what the result's Owner would be, for actions that identify
	// one.
	Owner *Owner
	// Settled is set (Already or NoOp) when the reads found the state as
	// the step wants it; see Plan.Settled.
	Settled Outcome
}

// Effects returns the changes the plan would make, in order; see
// Plan.Effects.
func (p PlanOf[O]) Effects() []Effect { return Plan{Calls: p.Calls}.Effects() }

func (r ResultOf[O]) untyped(f outputFields) Result {
	res := Result{Outcome: r.Outcome, Message: r.Message, Owner: r.Owner}
	if r.Outputs != nil {
		res.Outputs = f.values(reflect.ValueOf(r.Outputs).Elem())
	}
	return res
}

func (p PlanOf[O]) untyped(f outputFields) (Plan, error) {
	plan := Plan{Summary: p.Summary, Calls: p.Calls, Owner: p.Owner, Settled: p.Settled}
	if p.Outputs == nil {
		return plan, nil
	}
	plan.Outputs = f.values(reflect.ValueOf(p.Outputs).Elem())
	for _, name := range p.Undetermined {
		if !slices.ContainsFunc(f.declared, func(o Output) bool { return o.Name == name }) {
			return Plan{}, fmt.Errorf("the plan leaves out output %q, which the action does not declare", name)
		}
		delete(plan.Outputs, name)
	}
	return plan, nil
}

// outputFields describes an outputs struct: the outputs it declares, and
// which field holds each.
type outputFields struct {
	declared []Output
	field    []int // the field index of each declared output
}

// values returns the outputs held in v, an outputs struct, keyed by name.
// Each value keeps its Go type, as it would in a hand-built map: later
// steps' expressions and the store see an int as an int.
func (f outputFields) values(v reflect.Value) map[string]any {
	out := make(map[string]any, len(f.declared))
	for i, o := range f.declared {
		out[o.Name] = v.Field(f.field[i]).Interface()
	}
	return out
}

func describeOutputs(t reflect.Type) (outputFields, error) {
	var f outputFields
	if t.Kind() != reflect.Struct {
		return f, fmt.Errorf("outputs must be a struct, not %s", t)
	}
	seen := map[string]bool{}
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			return f, fmt.Errorf("field %s has no json name", sf.Name)
		}
		if seen[name] {
			return f, fmt.Errorf("field %s: output %q declared twice", sf.Name, name)
		}
		seen[name] = true
		// A struct would reach later steps' expressions with its Go field
		// names, and come back from the store as a map with its JSON names:
		// plain values read the same either way. An interface has no type
		// to declare: only the elements of lists and maps may be any.
		if sf.Type.Kind() == reflect.Interface || !plainValue(sf.Type) {
			return f, fmt.Errorf("field %s: %s is not a plain value (a string, bool or number, or a list or map of them)", sf.Name, sf.Type)
		}
		f.declared = append(f.declared, Output{
			Name:   name,
			Type:   outputType(sf.Type),
			Doc:    sf.Tag.Get("doc"),
			Secret: sf.Tag.Get("secret") == "true",
		})
		f.field = append(f.field, i)
	}
	return f, nil
}

func plainValue(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.String, reflect.Bool,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return true
	case reflect.Interface:
		return t.NumMethod() == 0
	case reflect.Slice:
		return plainValue(t.Elem())
	case reflect.Map:
		return t.Key().Kind() == reflect.String && plainValue(t.Elem())
	default:
		return false
	}
}

// CheckOutputs reports, all at once, how outputs (a Result's) differ from
// what spec declares: an output missing, one not declared, or one of
// another type. nil outputs (a step that had none to give) differ from
// nothing. Actions built from a Definition match by construction; tests
// check every action with it all the same.
func CheckOutputs(spec Spec, outputs map[string]any) error {
	return checkOutputs(spec, outputs, true)
}

// CheckPlannedOutputs is CheckOutputs for a Plan's outputs, which may leave
// out those that only Do can know.
func CheckPlannedOutputs(spec Spec, outputs map[string]any) error {
	return checkOutputs(spec, outputs, false)
}

func checkOutputs(spec Spec, outputs map[string]any, all bool) error {
	if outputs == nil {
		return nil
	}
	var errs []error
	declared := map[string]bool{}
	for _, o := range spec.Outputs {
		declared[o.Name] = true
		v, ok := outputs[o.Name]
		switch {
		case !ok && all:
			errs = append(errs, fmt.Errorf("%s: declared output %q is missing", spec.Name, o.Name))
		case !ok:
		case v == nil:
			errs = append(errs, fmt.Errorf("%s: output %q is nil, declared %s", spec.Name, o.Name, o.Type))
		case outputType(reflect.TypeOf(v)) != o.Type:
			errs = append(errs, fmt.Errorf("%s: output %q is a %s (%T), declared %s", spec.Name, o.Name, outputType(reflect.TypeOf(v)), v, o.Type))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(outputs)) {
		if !declared[name] {
			errs = append(errs, fmt.Errorf("%s: output %q is not declared", spec.Name, name))
		}
	}
	return errors.Join(errs...)
}

func outputType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "int"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "list"
	case reflect.Map:
		return "map"
	default:
		return t.Kind().String()
	}
}
