package actions

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/stretchr/testify/require"
)

type keyParams struct {
	Key    string `json:"key" required:"true" doc:"the key"`
	Region string `json:"region" doc:"where (default us-east-1)"`
	Tries  int    `json:"tries" doc:"how often (default 3)"`
}

type keyOutputs struct {
	Owner   string         `json:"owner" doc:"who owns the key"`
	Active  bool           `json:"active" doc:"whether it still works"`
	Uses    int            `json:"uses" doc:"how often it was used"`
	Regions []string       `json:"regions" doc:"where it was used"`
	ByName  map[string]int `json:"by_name" doc:"uses per API call"`
	Secret  string         `json:"secret" secret:"true" doc:"its secret half"`
}

// keyAction records what Validate saw, so that tests can tell the order of
// the lifecycle.
func keyAction(validated *keyParams, plan PlanOf[keyOutputs], res ResultOf[keyOutputs]) Action {
	return New(Definition[keyParams, keyOutputs]{
		Name: "test.key",
		Provision: func(p *keyParams) {
			if p.Region == "" {
				p.Region = "us-east-1"
			}
			if p.Tries == 0 {
				p.Tries = 3
			}
		},
		Validate: func(p keyParams) error {
			*validated = p
			if p.Tries < 0 {
				return errors.New("tries must not be negative")
			}
			p.Region = "changed by Validate" // a copy: the step never sees it
			return nil
		},
		PlanFunc: func(context.Context, Env, *keyParams) (PlanOf[keyOutputs], error) { return plan, nil },
		DoFunc:   func(context.Context, Env, *keyParams) (ResultOf[keyOutputs], error) { return res, nil },
	})
}

func TestOutputsAreDerivedFromTheOutputsStruct(t *testing.T) {
	t.Parallel()
	a := keyAction(new(keyParams), PlanOf[keyOutputs]{}, ResultOf[keyOutputs]{})
	require.Equal(t, []Output{
		{Name: "owner", Type: "string", Doc: "who owns the key"},
		{Name: "active", Type: "bool", Doc: "whether it still works"},
		{Name: "uses", Type: "int", Doc: "how often it was used"},
		{Name: "regions", Type: "list", Doc: "where it was used"},
		{Name: "by_name", Type: "map", Doc: "uses per API call"},
		{Name: "secret", Type: "string", Doc: "its secret half", Secret: true},
	}, a.Spec().Outputs)
}

func TestDoReturnsTheOutputsStructAsTheMapTheRunnerStores(t *testing.T) {
	t.Parallel()
	out := &keyOutputs{Owner: "ci-bot", Active: true, Uses: 2, Regions: []string{"us-east-1"}, ByName: map[string]int{"ListBuckets": 2}, Secret: "s3cr3t"}
	a := keyAction(new(keyParams), PlanOf[keyOutputs]{}, ResultOf[keyOutputs]{Outcome: Done, Message: "found", Outputs: out, Owner: &Owner{User: "ci-bot"}})
	p, err := a.Decode(map[string]any{"key": "k"})
	require.NoError(t, err)
	res, err := a.Do(context.Background(), Env{}, p)
	require.NoError(t, err)
	// Each value keeps its Go type, as a hand-built map had it.
	require.Equal(t, Result{Outcome: Done, Message: "found", Owner: &Owner{User: "ci-bot"}, Outputs: map[string]any{
		"owner": "ci-bot", "active": true, "uses": 2, "regions": []string{"us-east-1"}, "by_name": map[string]int{"ListBuckets": 2}, "secret": "s3cr3t",
	}}, res)
	require.NoError(t, CheckOutputs(a.Spec(), res.Outputs))

	none := keyAction(new(keyParams), PlanOf[keyOutputs]{}, ResultOf[keyOutputs]{Outcome: NoOp})
	res, err = none.Do(context.Background(), Env{}, p)
	require.NoError(t, err)
	require.Nil(t, res.Outputs, "a step that has no outputs to give gives none, rather than zero values")
}

func TestPlanLeavesOutUndeterminedOutputs(t *testing.T) {
	t.Parallel()
	p := &keyParams{Key: "k"}
	partial := PlanOf[keyOutputs]{Summary: "would look", Outputs: &keyOutputs{Owner: "ci-bot"}, Undetermined: []string{"uses", "regions", "by_name", "secret", "active"}}
	plan, err := keyAction(new(keyParams), partial, ResultOf[keyOutputs]{}).Plan(context.Background(), Env{}, p)
	require.NoError(t, err)
	require.Equal(t, Plan{Summary: "would look", Outputs: map[string]any{"owner": "ci-bot"}}, plan)

	plan, err = keyAction(new(keyParams), PlanOf[keyOutputs]{Summary: "would look"}, ResultOf[keyOutputs]{}).Plan(context.Background(), Env{}, p)
	require.NoError(t, err)
	require.Nil(t, plan.Outputs, "no outputs planned: later steps are planned at run time")

	wrong := PlanOf[keyOutputs]{Outputs: &keyOutputs{}, Undetermined: []string{"user"}}
	_, err = keyAction(new(keyParams), wrong, ResultOf[keyOutputs]{}).Plan(context.Background(), Env{}, p)
	require.ErrorContains(t, err, `test.key: the plan leaves out output "user", which the action does not declare`)
	require.Equal(t, KindPermanent, KindOf(err))
}

func TestProvisionRunsBeforeValidate(t *testing.T) {
	t.Parallel()
	var validated keyParams
	a := keyAction(&validated, PlanOf[keyOutputs]{}, ResultOf[keyOutputs]{})
	p, err := a.Decode(map[string]any{"key": "k"})
	require.NoError(t, err)
	require.Equal(t, &keyParams{Key: "k", Region: "us-east-1", Tries: 3}, p, "defaults filled in; Validate changed nothing")
	require.Equal(t, keyParams{Key: "k", Region: "us-east-1", Tries: 3}, validated, "Validate saw the defaults")

	p, err = a.Decode(map[string]any{"key": "k", "region": "eu-west-1", "tries": 1})
	require.NoError(t, err)
	require.Equal(t, &keyParams{Key: "k", Region: "eu-west-1", Tries: 1}, p, "given values are kept")

	_, err = a.Decode(map[string]any{"key": "k", "tries": -1})
	require.ErrorContains(t, err, "test.key: tries must not be negative")
}

func TestOutputsStructHoldsPlainValues(t *testing.T) {
	t.Parallel()
	type nested struct{ A string }
	for name, tc := range map[string]struct {
		typ  reflect.Type
		want string
	}{
		"not a struct": {reflect.TypeFor[map[string]any](), "outputs must be a struct, not map[string]interface {}"},
		"no name": {reflect.TypeFor[struct {
			A string
		}](), "field A has no json name"},
		// Built at run time: vet refuses such a struct in source.
		"twice": {reflect.StructOf([]reflect.StructField{
			{Name: "A", Type: reflect.TypeFor[string](), Tag: `json:"a"`},
			{Name: "B", Type: reflect.TypeFor[string](), Tag: `json:"a"`},
		}), `field B: output "a" declared twice`},
		"a struct": {reflect.TypeFor[struct {
			A nested `json:"a"`
		}](), "field A: actions.nested is not a plain value"},
		"a list of structs": {reflect.TypeFor[struct {
			A []nested `json:"a"`
		}](), "field A: []actions.nested is not a plain value"},
		"a pointer": {reflect.TypeFor[struct {
			A *string `json:"a"`
		}](), "field A: *string is not a plain value"},
		"any": {reflect.TypeFor[struct {
			A any `json:"a"`
		}](), "field A: interface {} is not a plain value"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := describeOutputs(tc.typ)
			require.ErrorContains(t, err, tc.want)
		})
	}

	ok, err := describeOutputs(reflect.TypeFor[struct {
		Items []map[string]any `json:"items"`
		Count map[string]int   `json:"count"`
	}]())
	require.NoError(t, err)
	require.Equal(t, []Output{{Name: "items", Type: "list"}, {Name: "count", Type: "map"}}, ok.declared)

	require.PanicsWithValue(t, "action test.bad: outputs: field A: actions.nested is not a plain value (a string, bool or number, or a list or map of them)", func() {
		New(Definition[keyParams, struct {
			A nested `json:"a"`
		}]{Name: "test.bad"})
	})
}

func TestCheckOutputsReportsEveryDifference(t *testing.T) {
	t.Parallel()
	spec := Spec{Name: "test.legacy", Outputs: []Output{{Name: "name", Type: "string"}, {Name: "count", Type: "int"}, {Name: "items", Type: "list"}, {Name: "gone", Type: "bool"}}}
	err := CheckOutputs(spec, map[string]any{"name": 3, "count": 1, "items": []map[string]any{}, "extra": "x"})
	require.EqualError(t, err, "test.legacy: output \"name\" is a int (int), declared string\n"+
		"test.legacy: declared output \"gone\" is missing\n"+
		"test.legacy: output \"extra\" is not declared")
	require.NoError(t, CheckPlannedOutputs(spec, map[string]any{"count": 2}), "a plan may leave outputs out")
	require.ErrorContains(t, CheckPlannedOutputs(spec, map[string]any{"count": nil}), `test.legacy: output "count" is nil, declared int`)
	require.NoError(t, CheckOutputs(spec, nil), "no outputs at all: the step gave none")
}

// A test double is a Definition like any action: what it returns matches
// what it declares, a refusal by Validate names the action, and a
// definition without DoFunc says so when run.
func TestTestDoubleDefinition(t *testing.T) {
	t.Parallel()
	a := New(Definition[echoParams, echoOutputs]{
		Name: "test.double",
		Validate: func(p echoParams) error {
			if p.Times < 0 {
				return errors.New("times must not be negative")
			}
			return nil
		},
		PlanFunc: func(_ context.Context, _ Env, p *echoParams) (PlanOf[echoOutputs], error) {
			return PlanOf[echoOutputs]{Summary: "would say " + p.Message}, nil
		},
		DoFunc: func(_ context.Context, _ Env, p *echoParams) (ResultOf[echoOutputs], error) {
			return ResultOf[echoOutputs]{Outcome: Done, Outputs: &echoOutputs{Said: p.Message}}, nil
		},
	})
	p, err := a.Decode(map[string]any{"message": "hi"})
	require.NoError(t, err)
	res, err := a.Do(context.Background(), Env{}, p)
	require.NoError(t, err)
	require.NoError(t, CheckOutputs(a.Spec(), res.Outputs))
	_, err = a.Decode(map[string]any{"message": "hi", "times": -1})
	require.ErrorContains(t, err, "test.double: times must not be negative")

	_, err = New(Definition[echoParams, echoOutputs]{Name: "test.nothing"}).Do(context.Background(), Env{}, p)
	require.ErrorContains(t, err, "test.nothing: the action has no DoFunc")
}
