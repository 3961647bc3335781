package testkit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
)

// Secret is a secret that test.mark hands out as its secret output, and
// that tests plant elsewhere: nothing stanch shows or stores may hold it.
const Secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzPLANTED12"

// World is a fake provider for tests of what runs actions (the runner,
// the metrics, serve's wiring): real actions, built as providers build
// theirs, whose only effects are counters in memory that tests read, the
// way the sandbox records API calls.
//
//   - test.mark (name, fail, permanent) applies effect name once per run:
//     Plan says whether it would, Do checks, acts and says which it did.
//     fail makes the step's first attempts fail, retryably; permanent makes
//     every attempt fail with that message.
//   - test.slow (for, gated) is slow: it waits for its duration, or, gated,
//     until the test calls OpenGate.
//   - test.identify (credential, account, user) says who owns a
//     credential; test.touch (name, account, user) changes something of
//     a principal in an account: together, a provider with targets.
//   - test.check reads, test.contain contains a credential (as
//     aws.deactivate_key does) and test.refused is refused as AWS refuses
//     an action: AccessDenied.
type World struct {
	mu      sync.Mutex
	effects map[string]int // effect name → times applied
	calls   map[string]int // test.mark name → times Do succeeded
	fails   map[string]int // run/step → retryable failures spent
	gate    chan struct{}
	opened  sync.Once
	// Leak, when set, is a secret that test.mark puts in the message of
	// every step it does, as a careless provider could.
	Leak string
}

// NewWorld returns a world where nothing happened yet.
func NewWorld() *World {
	return &World{effects: map[string]int{}, calls: map[string]int{}, fails: map[string]int{}, gate: make(chan struct{})}
}

// Effect returns how often effect name was applied. test.mark's effects
// are named after their name parameter, and also name@run for each run;
// test.touch's name@account/user; test.slow's slow.
func (w *World) Effect(name string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.effects[name]
}

// Calls returns how often test.mark's Do succeeded for name, including
// the times it found name already marked and changed nothing.
func (w *World) Calls(name string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.calls[name]
}

// OpenGate lets every gated test.slow step finish, now and later.
func (w *World) OpenGate() {
	w.opened.Do(func() { close(w.gate) })
}

// Registry returns a registry of the world's actions.
func (w *World) Registry(t testing.TB) *actions.Registry {
	t.Helper()
	reg, err := actions.NewRegistry(w.Actions()...)
	require.NoError(t, err)
	return reg
}

// Actions returns the world's actions.
func (w *World) Actions() []actions.Action {
	return []actions.Action{w.mark(), w.slow(), identify(), w.touch(), check(), contain(), refused()}
}

type markParams struct {
	Name string `json:"name" required:"true"`
	// Fail makes the first N attempts fail with a retryable error.
	Fail int `json:"fail"`
	// Permanent makes every attempt fail permanently with this message.
	Permanent string `json:"permanent"`
}

type markOutputs struct {
	Name   string `json:"name"`
	Count  int    `json:"count"`
	Secret string `json:"secret" secret:"true"`
}

type slowParams struct {
	For   actions.Duration `json:"for"`
	Gated bool             `json:"gated"`
}

type identifyParams struct {
	Credential string `json:"credential" required:"true" target:"credential"`
	Account    string `json:"account" required:"true"`
	User       string `json:"user" required:"true"`
}

type touchParams struct {
	Name    string `json:"name" required:"true"`
	Account string `json:"account" target:"account"`
	User    string `json:"user" target:"user"`
}

// nameParams are those of the actions that only count as steps.
type nameParams struct {
	Name string `json:"name"`
}

// noOutputs is the outputs struct of actions that have none.
type noOutputs struct{}

func (w *World) mark() actions.Action {
	return actions.New(actions.Definition[markParams, markOutputs]{
		Name:    "test.mark",
		Summary: "record an effect once (idempotent)",
		PlanFunc: func(_ context.Context, env actions.Env, p *markParams) (actions.PlanOf[markOutputs], error) {
			w.mu.Lock()
			defer w.mu.Unlock()
			if w.effects[p.Name+"@"+env.RunID] > 0 {
				return actions.PlanOf[markOutputs]{Summary: p.Name + " is already marked", Settled: actions.Already}, nil
			}
			return actions.PlanOf[markOutputs]{Summary: "would mark " + p.Name, Calls: []actions.Call{{Service: "test", Operation: "Mark", Params: map[string]any{"name": p.Name}, Mutates: true, Effect: "mark " + p.Name, Irreversible: true}}}, nil
		},
		DoFunc: func(_ context.Context, env actions.Env, p *markParams) (actions.ResultOf[markOutputs], error) {
			w.mu.Lock()
			defer w.mu.Unlock()
			if p.Permanent != "" {
				return actions.ResultOf[markOutputs]{}, actions.Permanentf("mark %s: %s", p.Name, p.Permanent)
			}
			key := env.RunID + "/" + env.StepID
			if w.fails[key] < p.Fail {
				w.fails[key]++
				return actions.ResultOf[markOutputs]{}, actions.Retryable(fmt.Errorf("mark %s: throttled", p.Name))
			}
			w.calls[p.Name]++
			leak := ""
			if w.Leak != "" {
				leak = "; leaked " + w.Leak
			}
			out := &markOutputs{Name: p.Name, Count: w.effects[p.Name] + 1, Secret: Secret}
			if w.effects[p.Name+"@"+env.RunID] > 0 { // check: already done for this run
				return actions.ResultOf[markOutputs]{Outcome: actions.Already, Message: p.Name + " already marked" + leak, Outputs: out}, nil
			}
			w.effects[p.Name]++
			w.effects[p.Name+"@"+env.RunID]++
			return actions.ResultOf[markOutputs]{Outcome: actions.Done, Message: p.Name + " marked" + leak, Outputs: out}, nil
		},
	})
}

func (w *World) slow() actions.Action {
	return actions.New(actions.Definition[slowParams, noOutputs]{
		Name: "test.slow",
		Slow: true,
		PlanFunc: func(context.Context, actions.Env, *slowParams) (actions.PlanOf[noOutputs], error) {
			return actions.PlanOf[noOutputs]{Summary: "would wait"}, nil
		},
		DoFunc: func(ctx context.Context, _ actions.Env, p *slowParams) (actions.ResultOf[noOutputs], error) {
			until := w.gate
			if !p.Gated {
				done := make(chan struct{})
				time.AfterFunc(time.Duration(p.For), func() { close(done) })
				until = done
			}
			select {
			case <-ctx.Done():
				return actions.ResultOf[noOutputs]{}, actions.Retryable(ctx.Err())
			case <-until:
			}
			w.mu.Lock()
			w.effects["slow"]++
			w.mu.Unlock()
			return actions.ResultOf[noOutputs]{Outcome: actions.Done}, nil
		},
	})
}

func identify() actions.Action {
	return actions.New(actions.Definition[identifyParams, noOutputs]{
		Name: "test.identify",
		PlanFunc: func(_ context.Context, _ actions.Env, p *identifyParams) (actions.PlanOf[noOutputs], error) {
			return actions.PlanOf[noOutputs]{Summary: "would identify", Owner: &actions.Owner{Account: p.Account, User: p.User, Credential: p.Credential}}, nil
		},
		DoFunc: func(_ context.Context, _ actions.Env, p *identifyParams) (actions.ResultOf[noOutputs], error) {
			return actions.ResultOf[noOutputs]{Outcome: actions.Done, Message: p.Credential + " belongs to " + p.User,
				Owner: &actions.Owner{Account: p.Account, User: p.User, Credential: p.Credential}}, nil
		},
	})
}

func (w *World) touch() actions.Action {
	return actions.New(actions.Definition[touchParams, noOutputs]{
		Name: "test.touch",
		PlanFunc: func(_ context.Context, _ actions.Env, p *touchParams) (actions.PlanOf[noOutputs], error) {
			return actions.PlanOf[noOutputs]{Summary: "would touch " + p.User + " in " + p.Account, Calls: []actions.Call{{Service: "test", Operation: "Touch", Mutates: true, Account: p.Account,
				Effect: "touch " + p.Name + " of user " + p.User + " in account " + p.Account}}}, nil
		},
		DoFunc: func(_ context.Context, env actions.Env, p *touchParams) (actions.ResultOf[noOutputs], error) {
			w.mu.Lock()
			defer w.mu.Unlock()
			w.effects[p.Name+"@"+p.Account+"/"+p.User]++
			env.Record(actions.Effect{Description: "touched " + p.Name + " of user " + p.User + " in account " + p.Account})
			return actions.ResultOf[noOutputs]{Outcome: actions.Done, Message: "touched " + p.User + " in " + p.Account}, nil
		},
	})
}

func check() actions.Action {
	return actions.New(actions.Definition[nameParams, noOutputs]{
		Name: "test.check",
		PlanFunc: func(context.Context, actions.Env, *nameParams) (actions.PlanOf[noOutputs], error) {
			return actions.PlanOf[noOutputs]{Summary: "would check"}, nil
		},
		DoFunc: func(context.Context, actions.Env, *nameParams) (actions.ResultOf[noOutputs], error) {
			return actions.ResultOf[noOutputs]{Outcome: actions.Done}, nil
		},
	})
}

func contain() actions.Action {
	return actions.New(actions.Definition[nameParams, noOutputs]{
		Name:        "test.contain",
		Containment: true,
		PlanFunc: func(context.Context, actions.Env, *nameParams) (actions.PlanOf[noOutputs], error) {
			return actions.PlanOf[noOutputs]{Summary: "would contain"}, nil
		},
		DoFunc: func(context.Context, actions.Env, *nameParams) (actions.ResultOf[noOutputs], error) {
			return actions.ResultOf[noOutputs]{Outcome: actions.Done}, nil
		},
	})
}

func refused() actions.Action {
	return actions.New(actions.Definition[nameParams, noOutputs]{
		Name: "test.refused",
		PlanFunc: func(context.Context, actions.Env, *nameParams) (actions.PlanOf[noOutputs], error) {
			return actions.PlanOf[noOutputs]{Summary: "would be refused"}, nil
		},
		DoFunc: func(context.Context, actions.Env, *nameParams) (actions.ResultOf[noOutputs], error) {
			err := errors.New("update access key: api error AccessDenied: not authorized")
			return actions.ResultOf[noOutputs]{}, actions.Permanent(actions.WithAPIError(err, actions.APIError{Provider: "aws", Service: "iam", Code: "AccessDenied"}))
		},
	})
}
