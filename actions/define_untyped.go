package actions

import (
	"context"
	"fmt"
	"reflect"
)

// Definition builds an Action whose parameters decode into P, with outputs
// declared as a list and returned as a hand-built map. It is the untyped
// form of TypedDefinition, which every provider's action uses: here
// nothing but CheckOutputs ties what DoFunc returns to Outputs. It serves
// test doubles, and actions on their way to TypedDefinition.
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

func (d Definition[P]) define() (Action, error) {
	params, err := describeParams(reflect.TypeFor[P]())
	if err != nil {
		return nil, fmt.Errorf("action %s: %w", d.Name, err)
	}
	return &defined[P]{
		spec: Spec{
			Name:        d.Name,
			Summary:     d.Summary,
			Params:      params,
			Outputs:     d.Outputs,
			Permissions: d.Permissions,
			Example:     d.Example,
			Slow:        d.Slow,
			Containment: d.Containment,
		},
		validate: d.Validate,
		plan:     d.PlanFunc,
		do:       d.DoFunc,
	}, nil
}
