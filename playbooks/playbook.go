package playbooks

import (
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/alert"
)

// Defaults for the optional step fields.
const (
	DefaultTimeout         = 5 * time.Minute
	DefaultAttempts        = 3
	DefaultBackoff         = time.Second
	DefaultMaxBackoff      = 30 * time.Second
	DefaultApprovalTimeout = 24 * time.Hour
	MaxAttempts            = 20
)

// Values of Step.OnError and Approval.OnTimeout.
const (
	OnErrorStop       = "stop"
	OnErrorContinue   = "continue"
	OnTimeoutDeny     = "deny"
	OnTimeoutApprove  = "approve"
	OnTimeoutEscalate = "escalate"
	OnDenyStop        = "stop"
	OnDenySkip        = "skip"
	TargetOwner       = "owner"
	TargetExplicit    = "explicit"
)

// Playbook is a validated playbook: every action exists, every parameter
// fits its action and every expression compiled against the typed scope.
type Playbook struct {
	Name        string
	Description string
	// File is the path the playbook was loaded from, as given.
	File string
	// Source is the file's content, kept so that a run can be resumed with
	// exactly the playbook it started with.
	Source []byte
	On     On
	// Correlate (the default) makes an alert about a credential that
	// already has an open run of this playbook join that run instead of
	// starting a second containment.
	Correlate bool
	Vars      map[string]any
	Steps     []*Step
	when      *expression
}

// On selects the alerts that start a playbook. An empty list matches
// anything.
type On struct {
	Sources         []string
	Kinds           []string
	Providers       []string
	CredentialKinds []string
}

// Step is one action of a playbook.
type Step struct {
	ID     string
	Action string
	// Delay makes the step wait this long after the steps before it
	// finished; the run sleeps without holding a worker. Used to repeat a
	// CloudTrail query once late events have been delivered.
	Delay time.Duration
	// Timeout bounds each attempt.
	Timeout time.Duration
	Retry   Retry
	// OnError is OnErrorStop or OnErrorContinue.
	OnError string
	// Target is TargetOwner (the default: once the run has identified who
	// owns the credential, the step acts on that owner, and naming another
	// account, principal or credential is refused) or TargetExplicit (the
	// step acts on what its `with:` names, on purpose).
	Target string
	// Approval, when set, makes the step wait for a person's decision.
	Approval *Approval
	// Line is where the step starts in the file.
	Line int
	cond *expression
	with map[string]value
}

// Retry bounds the attempts of a step.
type Retry struct {
	Attempts   int
	Backoff    time.Duration
	MaxBackoff time.Duration
}

// Approval says who decides whether a step runs and what happens when
// nobody decides in time.
type Approval struct {
	// Approvers are Slack user or group ids, or names used with
	// `stanch approve --by`.
	Approvers []string
	Timeout   time.Duration
	// OnTimeout is OnTimeoutDeny, OnTimeoutApprove or OnTimeoutEscalate.
	OnTimeout string
	// OnDeny is what a denial (by a person, or by the timeout policy) means
	// for the run: OnDenyStop (the default) ends it cancelled, OnDenySkip
	// records the step denied and goes on with the next one.
	OnDeny string
	// Channel, when set, is the Slack channel where approvers are asked,
	// with Approve and Deny buttons.
	Channel string
	// Escalate is who is asked next when nobody decides in time (set
	// exactly when OnTimeout is OnTimeoutEscalate). An escalated approval
	// that times out again is denied.
	Escalate *Escalation
	message  value // nil: a default message
}

// Escalation is the second round of an approval: another channel, more
// approvers, a new timeout.
type Escalation struct {
	Channel string
	// Approvers join the approval's own approvers.
	Approvers []string
	Timeout   time.Duration
}

// Scope is everything an expression can see while a run executes. Its expr
// tags are the names playbooks use.
type Scope struct {
	Alert alert.Alert          `expr:"alert"`
	Vars  map[string]any       `expr:"vars"`
	Steps map[string]StepState `expr:"steps"`
	Run   RunInfo              `expr:"run"`
}

// StepState is what later steps can see of a finished step.
type StepState struct {
	Status  string         `expr:"status"`
	Outcome string         `expr:"outcome"` // done, already, noop, skipped, failed, denied
	Outputs map[string]any `expr:"outputs"`
}

// RunInfo describes the run a step belongs to.
type RunInfo struct {
	ID        string    `expr:"id"`
	Playbook  string    `expr:"playbook"`
	StartedAt time.Time `expr:"started_at"`
}

// Load reads and validates the playbook at path. When it is invalid the
// error is Errors, listing every problem.
func Load(path string, reg *actions.Registry) (*Playbook, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read playbook: %w", err)
	}
	defer f.Close()
	// One byte past the limit is enough to refuse a file, however large.
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read playbook: %w", err)
	}
	return Parse(path, data, reg)
}

// Parse validates the playbook in data; file names it in errors. When it is
// invalid the error is Errors, listing every problem.
func Parse(file string, data []byte, reg *actions.Registry) (*Playbook, error) {
	l := &loader{problems: problems{File: file}, reg: reg}
	pb := l.load(data)
	if len(l.Problems) > 0 {
		return nil, l.Sorted()
	}
	pb.File, pb.Source = file, data
	return pb, nil
}

// When returns the playbook's `when` expression, or "" if it has none.
func (p *Playbook) When() string {
	if p.when == nil {
		return ""
	}
	return p.when.src
}

// Match reports whether a starts this playbook: every non-empty `on` list
// holds the alert's value and `when` is true. reason says why, for people.
func (p *Playbook) Match(a alert.Alert) (ok bool, reason string, err error) {
	filters := []struct {
		field, value string
		want         []string
	}{
		{"sources", a.Source, p.On.Sources},
		{"kinds", a.Kind, p.On.Kinds},
		{"providers", a.Credential.Provider, p.On.Providers},
		{"credential_kinds", a.Credential.Kind, p.On.CredentialKinds},
	}
	for _, f := range filters {
		if len(f.want) > 0 && !slices.Contains(f.want, f.value) {
			return false, fmt.Sprintf("%q is not in on.%s [%s]", f.value, f.field, strings.Join(f.want, ", ")), nil
		}
	}
	if p.when == nil {
		return true, "the alert matches its `on:` filters", nil
	}
	v, err := p.when.eval(p.Scope(a, RunInfo{Playbook: p.Name}))
	if err != nil {
		return false, "", fmt.Errorf("playbook %s: when: %w", p.Name, err)
	}
	b, ok := v.(bool)
	if !ok {
		return false, "", fmt.Errorf("playbook %s: when: `%s` is %T, not true or false", p.Name, p.when.src, v)
	}
	if !b {
		return false, fmt.Sprintf("when: %s was false", p.when.src), nil
	}
	return true, fmt.Sprintf("the alert matches its `on:` filters and `when: %s`", p.when.src), nil
}

// Scope returns the scope a run of this playbook starts with: the alert,
// the playbook's vars and no finished steps.
func (p *Playbook) Scope(a alert.Alert, run RunInfo) Scope {
	return Scope{Alert: a, Vars: maps.Clone(p.Vars), Steps: map[string]StepState{}, Run: run}
}

// Condition returns the step's `if` expression, or "" if it has none.
func (s *Step) Condition() string {
	if s.cond == nil {
		return ""
	}
	return s.cond.src
}

// Enabled evaluates the step's `if`. A step without one is enabled. When it
// is not, reason quotes the condition.
func (s *Step) Enabled(sc Scope) (ok bool, reason string, err error) {
	if s.cond == nil {
		return true, "", nil
	}
	v, err := s.cond.eval(sc)
	if err != nil {
		return false, "", fmt.Errorf("step %s: if: %w", s.ID, err)
	}
	b, isBool := v.(bool)
	if !isBool {
		return false, "", fmt.Errorf("step %s: if: `%s` is %T, not true or false", s.ID, s.cond.src, v)
	}
	if !b {
		return false, fmt.Sprintf("if: %s was false", s.cond.src), nil
	}
	return true, "", nil
}

// Params returns the step's `with:` values with every template expanded.
// A value that is exactly one ${{ … }} keeps the expression's type; text
// mixed with templates becomes a string.
func (s *Step) Params(sc Scope) (map[string]any, error) {
	out := make(map[string]any, len(s.with))
	for _, name := range slices.Sorted(maps.Keys(s.with)) {
		v, err := s.with[name].eval(sc)
		if err != nil {
			return nil, fmt.Errorf("step %s: parameter %s: %w", s.ID, name, err)
		}
		out[name] = v
	}
	return out, nil
}

// ApprovalMessage returns the text people see when asked to approve the
// step, with templates expanded.
func (s *Step) ApprovalMessage(sc Scope) (string, error) {
	if s.Approval == nil {
		return "", fmt.Errorf("step %s: has no approval", s.ID)
	}
	if s.Approval.message == nil {
		return fmt.Sprintf("Approve step %s (%s) of playbook %s?", s.ID, s.Action, sc.Run.Playbook), nil
	}
	v, err := s.Approval.message.eval(sc)
	if err != nil {
		return "", fmt.Errorf("step %s: approval message: %w", s.ID, err)
	}
	return text(v), nil
}
