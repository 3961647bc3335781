package actions

import (
	"context"
	"log/slog"
	"reflect"
	"time"
)

// Action is one typed, idempotent unit of response, such as
// aws.deactivate_key. Implementations are built with New.
type Action interface {
	// Spec describes the action: name, parameters, outputs, permissions.
	Spec() Spec
	// Decode turns a step's `with:` values (after templates are expanded)
	// into the action's parameter struct, strictly.
	Decode(with map[string]any) (any, error)
	// Check reports every problem with a step's `with:` at once (unknown,
	// missing or mistyped parameters), as *ParamError values. Parameters
	// named in deferred hold templates and are only checked for presence.
	Check(with map[string]any, deferred map[string]bool) []error
	// Plan says what Do would do, running every read-only check Do runs and
	// changing nothing. Outputs that reads alone determine are filled in, so
	// later steps can be planned too.
	Plan(ctx context.Context, env Env, params any) (Plan, error)
	// Do performs the action: check the current state, act only if needed,
	// verify the effect. Calling it again after success changes nothing.
	Do(ctx context.Context, env Env, params any) (Result, error)
}

// Env is what the runner tells an action about the step it runs in.
type Env struct {
	RunID   string
	StepID  string
	Attempt int // 1 for the first attempt of this step
	// IdempotencyKey is stable across retries and resumes of this step in
	// this run; actions pass it to APIs that take a client token.
	IdempotencyKey string
	// StepStartedAt is when the first attempt of this step started, stable
	// across retries and resumes: anything an action finds created after it
	// may be the action's own work from an attempt that died.
	StepStartedAt time.Time
	Logger        *slog.Logger
	// Progress, when set, receives short human-readable progress lines for
	// long actions. Never a secret.
	Progress func(msg string)
	// Report, when set, reads the run's current state for actions that
	// report on it. Plan and tests may leave it nil.
	Report Reporter
	// Owner is who the run's credential belongs to, when a step before this
	// one identified it; the runner has already filled and checked the
	// step's target parameters against it.
	Owner Owner
	// Effect, when set, records a change the action has just made, at once:
	// the journal shows every effect even if the step then fails or its
	// process dies.
	Effect func(e Effect)
	// Checkpoint, when set, durably saves how far a long step has got (a
	// page token, what it found so far) before it returns, so that an
	// attempt resumed after this process died, here or on another replica,
	// goes on from there instead of from the start. The state is the
	// action's own JSON; it must never hold a secret. An error means the
	// step no longer belongs to this process (or the store is down): stop.
	Checkpoint func(ctx context.Context, state []byte) error
	// Resumed is the state this step's last Checkpoint saved, nil when no
	// earlier attempt saved one.
	Resumed []byte
}

// Effect is one change an action made (or, in a plan, would make), for
// people: what, to what, where.
type Effect struct {
	// Description is one line: "deleted access key AKIA… of user ci-bot in
	// account 444455556666".
	Description string
	// Irreversible marks changes that cannot be undone (a deleted key).
	Irreversible bool
}

// String renders the effect, marking irreversible ones.
func (e Effect) String() string {
	if e.Irreversible {
		return e.Description + " (irreversible)"
	}
	return e.Description
}

// Record passes e to the run's journal, if anyone listens.
func (e Env) Record(effect Effect) {
	if e.Effect != nil {
		e.Effect(effect)
	}
}

// Log returns the step's logger, or a discarding one.
func (e Env) Log() *slog.Logger {
	if e.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.Logger
}

// Spec is an action's public description, printed by `stanch actions` and
// used by the playbook validator.
type Spec struct {
	Name        string
	Summary     string
	Params      []Param
	Outputs     []Output
	Permissions []Permission
	// Example is a playbook step using the action, in YAML.
	Example string
	// Slow actions (minutes, such as CloudTrail queries) run on workers of
	// their own, so that they never delay another alert's containment.
	Slow bool
	// Containment marks actions that take a leaked credential's power
	// away (deactivate or delete the key, revoke its sessions, quarantine
	// its owner): the first such step of a run that succeeds is when the
	// credential is contained (the time-to-contain metric).
	Containment bool
}

// Param describes one parameter, derived from the parameter struct.
type Param struct {
	Name     string
	Type     string // string, int, bool, duration, list, map
	Required bool
	Doc      string
	Kind     reflect.Kind
	// Target is what the parameter names of the credential's owner
	// (TargetAccount, TargetUser, TargetRole, TargetCredential), from its
	// `target:"…"` tag; empty for other parameters. See ApplyOwner.
	Target string
}

// Output describes one output value, derived from a field of the action's
// outputs struct (see Definition).
type Output struct {
	Name string
	Type string
	Doc  string
	// Secret outputs are handed to later steps in memory only: never
	// written to the store, the logs or any report.
	Secret bool
}

// Permission is one permission the action needs, such as iam:UpdateAccessKey.
type Permission struct {
	Name string // e.g. "iam:UpdateAccessKey", "chat:write", "secret_scanning_alerts:write"
	Why  string
	// Resource, for an IAM permission whose resource a playbook can make
	// known, is its ARN with {param} standing for a step parameter, such
	// as "arn:aws:secretsmanager:*:*:secret:{secret_id}*". Empty means any
	// resource: it acts on whatever leaked.
	Resource string
	// Provider, when set, is whose permission it is when that is not the
	// action's own provider: aws.rotate_key writes to Vault, whose policy
	// `stanch permissions` lists beside the IAM policy, not in it.
	Provider string
}

// Outcome says what Do did.
type Outcome string

const (
	// Done: the action made its change and verified it.
	Done Outcome = "done"
	// Already: the state was already as wanted; nothing was changed.
	Already Outcome = "already"
	// NoOp: there was nothing to do for other reasons (reported in Message).
	NoOp Outcome = "noop"
)

// Result is what Do returns on success.
type Result struct {
	Outcome Outcome
	// Message is one line for people: "AKIA… deactivated (was Active)".
	Message string
	Outputs map[string]any
	// Owner, set by actions that identify a credential's owner, tells the
	// runner who every later step acts on.
	Owner *Owner
}

// Plan is what Plan returns.
type Plan struct {
	// Summary is one line: what would happen.
	Summary string
	// Calls are the API calls Do would make, reads and writes, in order.
	Calls []Call
	// Outputs are those outputs that the reads determine.
	Outputs map[string]any
	// Owner is what Result.Owner would be, for actions that identify one.
	Owner *Owner
	// Settled is set (Already or NoOp) when the reads found the state as
	// the step wants it, so that Do would change nothing: such a step asks
	// nobody for approval and is recorded with this outcome.
	Settled Outcome
}

// Effects returns the changes the plan would make, in order: one per call
// that mutates.
func (p Plan) Effects() []Effect {
	var out []Effect
	for _, c := range p.Calls {
		if !c.Mutates {
			continue
		}
		d := c.Effect
		if d == "" {
			d = c.Service + ":" + c.Operation
			if c.Account != "" {
				d += " in account " + c.Account
			}
		}
		out = append(out, Effect{Description: d, Irreversible: c.Irreversible})
	}
	return out
}

// Call is one API call, with its parameters.
type Call struct {
	Service   string         // "iam", "sts", "slack", …
	Operation string         // "UpdateAccessKey"
	Params    map[string]any // exact parameters; never secrets
	// Mutates is true for calls that change state; Plan never makes those.
	Mutates bool
	// Made is true when Plan actually made this (read-only) call.
	Made bool
	// Account is the account the call acts in, when the provider has them.
	Account string
	// Effect says, for a mutating call, what it changes in words people
	// approve: "delete access key AKIA… of user ci-bot in account …".
	Effect string
	// Irreversible marks mutating calls whose change cannot be undone.
	Irreversible bool
}
