package actions

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// Definition builds an Action whose parameters decode into P and whose
// outputs are the fields of O.
//
// P is a struct whose fields carry `json:"name"`, optional `required:"true"`,
// `doc:"…"` and `target:"…"` tags. O is a struct whose fields carry
// `json:"name"`, `doc:"…"` and optional `secret:"true"` tags, and hold plain
// values (strings, bools, numbers, and lists or maps of them): the outputs
// that `stanch actions` lists and `stanch validate` checks
// `steps.X.outputs.Y` against are derived from O, and the outputs a step
// returns are the fields of the O it returns, so the two cannot drift.
//
// Decoding a step's `with:` is a lifecycle: strict decoding into P, then
// Provision (defaults), then Validate (checks), as Caddy provisions a module
// before validating it.
type Definition[P, O any] struct {
	Name        string
	Summary     string
	Permissions []Permission
	Example     string
	// Slow marks long-running actions; see Spec.Slow.
	Slow bool
	// Containment marks actions that contain a credential; see
	// Spec.Containment.
	Containment bool
	// Provision, when set, fills in the defaults of parameters the step
	// left out. It runs before Validate and cannot fail: checks belong in
	// Validate. Defaults that depend on the run (its id, when the step
	// started) are the action's own business, in PlanFunc and DoFunc.
	Provision func(p *P)
	// Validate, when set, checks provisioned parameters beyond their types.
	// It gets a copy, so that no default hides in a check.
	Validate func(p P) error
	PlanFunc func(ctx context.Context, env Env, p *P) (PlanOf[O], error)
	DoFunc   func(ctx context.Context, env Env, p *P) (ResultOf[O], error)
}

// New returns the Action that d defines. It panics on a parameter or
// outputs struct that cannot be described, which is a programming error
// found by any test.
func New[P, O any](d Definition[P, O]) Action {
	a, err := d.define()
	if err != nil {
		panic(err.Error())
	}
	return a
}

func (d Definition[P, O]) define() (Action, error) {
	params, err := describeParams(reflect.TypeFor[P]())
	if err != nil {
		return nil, fmt.Errorf("action %s: %w", d.Name, err)
	}
	outputs, err := describeOutputs(reflect.TypeFor[O]())
	if err != nil {
		return nil, fmt.Errorf("action %s: outputs: %w", d.Name, err)
	}
	a := &defined[P]{
		spec: Spec{
			Name:        d.Name,
			Summary:     d.Summary,
			Params:      params,
			Outputs:     outputs.declared,
			Permissions: d.Permissions,
			Example:     d.Example,
			Slow:        d.Slow,
			Containment: d.Containment,
		},
		provision: d.Provision,
	}
	if d.Validate != nil {
		a.validate = func(p *P) error { return d.Validate(*p) }
	}
	if d.PlanFunc != nil {
		a.plan = func(ctx context.Context, env Env, p *P) (Plan, error) {
			typed, err := d.PlanFunc(ctx, env, p)
			plan, convErr := typed.untyped(outputs)
			if convErr != nil {
				return Plan{}, Permanent(fmt.Errorf("%s: %w", d.Name, convErr))
			}
			return plan, err
		}
	}
	if d.DoFunc != nil {
		a.do = func(ctx context.Context, env Env, p *P) (Result, error) {
			typed, err := d.DoFunc(ctx, env, p)
			return typed.untyped(outputs), err
		}
	}
	return a, nil
}

// defined is an Action built by New: the parts every definition shares
// (strict decoding, provisioning, validation, checking), with Plan and Do
// already turned into their untyped forms.
type defined[P any] struct {
	spec      Spec
	provision func(p *P)
	validate  func(p *P) error
	plan      func(ctx context.Context, env Env, p *P) (Plan, error)
	do        func(ctx context.Context, env Env, p *P) (Result, error)
}

func (a *defined[P]) Spec() Spec { return a.spec }

func (a *defined[P]) Decode(with map[string]any) (any, error) {
	if errs := a.Check(with, nil); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	p, err := decodeStrict[P](with)
	if err != nil {
		return nil, err
	}
	if a.provision != nil {
		a.provision(p)
	}
	if a.validate != nil {
		if err := a.validate(p); err != nil {
			return nil, fmt.Errorf("%s: %w", a.spec.Name, err)
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
	for _, p := range a.spec.Params {
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
			errs = append(errs, &ParamError{Param: k, Msg: fmt.Sprintf("unknown parameter %q for %s", k, a.spec.Name), Hint: "known parameters: " + a.paramNames()})
			continue
		}
		if deferred[k] {
			continue
		}
		if _, err := decodeStrict[P](map[string]any{k: with[k]}); err != nil {
			errs = append(errs, &ParamError{Param: k, Msg: fmt.Sprintf("parameter %q wants %s: %v", k, p.Type, shortJSONError(err)), Hint: p.Hint()})
		}
	}
	for _, p := range a.spec.Params {
		if !p.Required {
			continue
		}
		v, ok := with[p.Name]
		if !ok || v == nil || v == "" {
			errs = append(errs, &ParamError{Param: p.Name, Missing: true, Msg: fmt.Sprintf("missing required parameter %q for %s", p.Name, a.spec.Name), Hint: p.Hint()})
		}
	}
	return errs
}

func (a *defined[P]) paramNames() string {
	names := make([]string, len(a.spec.Params))
	for i, p := range a.spec.Params {
		names[i] = p.Name
	}
	return strings.Join(names, ", ")
}

func (a *defined[P]) Plan(ctx context.Context, env Env, params any) (Plan, error) {
	p, ok := params.(*P)
	if !ok {
		return Plan{}, fmt.Errorf("%s: parameters of type %T, want %T", a.spec.Name, params, p)
	}
	if a.plan == nil {
		return Plan{}, Permanentf("%s: the action has no PlanFunc", a.spec.Name)
	}
	return a.plan(ctx, env, p)
}

func (a *defined[P]) Do(ctx context.Context, env Env, params any) (Result, error) {
	p, ok := params.(*P)
	if !ok {
		return Result{}, fmt.Errorf("%s: parameters of type %T, want %T", a.spec.Name, params, p)
	}
	if a.do == nil {
		return Result{}, Permanentf("%s: the action has no DoFunc", a.spec.Name)
	}
	return a.do(ctx, env, p)
}
