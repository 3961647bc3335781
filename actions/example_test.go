package actions_test

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/stanchhq/stanch/actions"
)

// GreetParams are the parameters of example.greet: what a playbook step's
// `with:` decodes into, strictly (an unknown or mistyped parameter is an
// error at load time).
type GreetParams struct {
	Name     string `json:"name" required:"true" doc:"who to greet"`
	Greeting string `json:"greeting" doc:"what to say (default Hello)"`
}

// GreetOutputs are the outputs of example.greet: what later steps read as
// steps.<id>.outputs.<name>, and what `stanch actions` lists.
type GreetOutputs struct {
	Text string `json:"text" doc:"what was said"`
	// ID is given by the service when the greeting is posted: a plan
	// cannot know it.
	ID string `json:"id" doc:"the greeting's id"`
}

// board stands for a provider's API: greetings posted, by text.
type board struct{ posted map[string]string }

func (b *board) post(text string) string {
	id := fmt.Sprintf("g-%d", len(b.posted)+1)
	b.posted[text] = id
	return id
}

// greet defines example.greet on b. Real actions live in a provider's
// package (actions/aws, …) and reach their API through the official SDK.
func greet(b *board) actions.Action {
	return actions.New(actions.Definition[GreetParams, GreetOutputs]{
		Name:    "example.greet",
		Summary: "Post a greeting once.",
		Permissions: []actions.Permission{
			{Name: "board:write", Why: "post the greeting"},
		},
		Example: "- id: hello\n  action: example.greet\n  with:\n    name: ${{ alert.credential.id }}\n",
		// Defaults first, so that Validate checks what the step will use.
		Provision: func(p *GreetParams) {
			if p.Greeting == "" {
				p.Greeting = "Hello"
			}
		},
		Validate: func(p GreetParams) error {
			if strings.ContainsAny(p.Name, "\n\r") {
				return errors.New("name must be one line")
			}
			return nil
		},
		// Plan makes every read Do makes, and no change.
		PlanFunc: func(_ context.Context, _ actions.Env, p *GreetParams) (actions.PlanOf[GreetOutputs], error) {
			text := p.Greeting + ", " + p.Name
			if id, ok := b.posted[text]; ok {
				return actions.PlanOf[GreetOutputs]{Summary: "already said: " + text, Settled: actions.Already,
					Outputs: &GreetOutputs{Text: text, ID: id}}, nil
			}
			return actions.PlanOf[GreetOutputs]{
				Summary:      "would say: " + text,
				Calls:        []actions.Call{{Service: "board", Operation: "Post", Params: map[string]any{"text": text}, Mutates: true, Effect: "post " + text}},
				Outputs:      &GreetOutputs{Text: text},
				Undetermined: []string{"id"},
			}, nil
		},
		// Do checks, acts only if needed, and says which it did.
		DoFunc: func(_ context.Context, _ actions.Env, p *GreetParams) (actions.ResultOf[GreetOutputs], error) {
			text := p.Greeting + ", " + p.Name
			if id, ok := b.posted[text]; ok {
				return actions.ResultOf[GreetOutputs]{Outcome: actions.Already, Message: "already said", Outputs: &GreetOutputs{Text: text, ID: id}}, nil
			}
			id := b.post(text)
			return actions.ResultOf[GreetOutputs]{Outcome: actions.Done, Message: "said " + text, Outputs: &GreetOutputs{Text: text, ID: id}}, nil
		},
	})
}

// An action's description is derived from its parameter and outputs
// structs: names from the json tags, types from the Go types, and docs
// from the doc tags.
func ExampleDefinition() {
	spec := greet(&board{posted: map[string]string{}}).Spec()
	fmt.Println(spec.Name)
	for _, p := range spec.Params {
		fmt.Printf("param  %s %s required=%v: %s\n", p.Name, p.Type, p.Required, p.Doc)
	}
	for _, o := range spec.Outputs {
		fmt.Printf("output %s %s: %s\n", o.Name, o.Type, o.Doc)
	}
	// Output:
	// example.greet
	// param  name string required=true: who to greet
	// param  greeting string required=false: what to say (default Hello)
	// output text string: what was said
	// output id string: the greeting's id
}

// A step's life: its `with:` is decoded (strictly, then provisioned with
// defaults, then validated), planned, and done. Done again, it changes
// nothing and says so.
func ExampleNew() {
	ctx := context.Background()
	greeter := greet(&board{posted: map[string]string{}})
	env := actions.Env{RunID: "run_1", StepID: "hello", Attempt: 1}

	params, err := greeter.Decode(map[string]any{"name": "Alice"})
	if err != nil {
		panic(err)
	}
	fmt.Printf("params:  %+v\n", *params.(*GreetParams))

	plan, err := greeter.Plan(ctx, env, params)
	if err != nil {
		panic(err)
	}
	fmt.Println("plan:   ", plan.Summary, plan.Effects(), plan.Outputs)

	for range 2 {
		res, err := greeter.Do(ctx, env, params)
		if err != nil {
			panic(err)
		}
		fmt.Println("do:     ", res.Outcome, res.Outputs)
	}

	_, err = greeter.Decode(map[string]any{"name": "Alice", "colour": "red"})
	fmt.Println("error:  ", err)
	// Output:
	// params:  {Name:Alice Greeting:Hello}
	// plan:    would say: Hello, Alice [post Hello, Alice] map[text:Hello, Alice]
	// do:      done map[id:g-1 text:Hello, Alice]
	// do:      already map[id:g-1 text:Hello, Alice]
	// error:   unknown parameter "colour" for example.greet
}

// The registry is filled explicitly by the program's wiring, and refuses a
// second action of the same name.
func ExampleNewRegistry() {
	b := &board{posted: map[string]string{}}
	reg, err := actions.NewRegistry(greet(b))
	if err != nil {
		panic(err)
	}
	a, ok := reg.Lookup("example.greet")
	fmt.Println(reg.Names(), ok, a.Spec().Summary)

	_, err = actions.NewRegistry(greet(b), greet(b))
	fmt.Println(err)
	// Output:
	// [example.greet] true Post a greeting once.
	// action "example.greet" registered twice
}

// CheckOutputs compares a step's outputs with its action's declaration:
// what tests check every action with.
func ExampleCheckOutputs() {
	spec := greet(&board{posted: map[string]string{}}).Spec()
	fmt.Println(actions.CheckOutputs(spec, map[string]any{"text": "Hello, Alice", "id": "g-1"}))
	fmt.Println(actions.CheckOutputs(spec, map[string]any{"text": "Hello, Alice", "id": 1, "when": "now"}))
	// Output:
	// <nil>
	// example.greet: output "id" is a int (int), declared string
	// example.greet: output "when" is not declared
}
