// Package record is the incident record of one run, in the one schema that
// leaves stanch: `stanch runs show --json`, `stanch runs export`
// (docs/export.md, stanch.export/v1) and `stanch report` all read it. Every
// key is snake_case; the store's Go types are never marshalled as they are.
package record

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/runner"
)

// Schema names the version of the export's schema (docs/export.md).
const Schema = "stanch.export/v1"

// Run is one run's whole record: the run, the alert that started it and
// every alert that joined it, its steps, approvals, the provider API calls
// its actions made, its journal with the hashes that chain it, and the
// chain's final hash.
type Run struct {
	Schema      string              `json:"schema"`
	Run         RunInfo             `json:"run"`
	Alert       alert.Alert         `json:"alert"`
	Alerts      []Alert             `json:"alerts"`
	Steps       []Step              `json:"steps"`
	Approvals   []Approval          `json:"approvals"`
	Calls       []Call              `json:"calls"`
	Journal     []HashedEntry       `json:"journal"`
	FinalHash   string              `json:"final_hash"`
	ChainOK     bool                `json:"chain_ok"`
	ChainBreaks []runner.ChainBreak `json:"chain_breaks"`
}

// Show is `stanch runs show --json`: the run as people read it, without
// the hashes and calls the export carries.
type Show struct {
	Run       RunInfo     `json:"run"`
	Alert     alert.Alert `json:"alert"`
	Steps     []Step      `json:"steps"`
	Approvals []Approval  `json:"approvals"`
	Journal   []Entry     `json:"journal"`
}

// RunInfo is a run's own fields, as `runs list --json` prints them.
type RunInfo struct {
	ID          string    `json:"id"`
	Playbook    string    `json:"playbook"`
	Status      string    `json:"status"`
	DedupKey    string    `json:"dedup_key"`
	Credential  string    `json:"credential"`
	WaitingStep string    `json:"waiting_step,omitempty"`
	FailedStep  string    `json:"failed_step,omitempty"`
	Error       string    `json:"error,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	FinishedAt  time.Time `json:"finished_at,omitzero"`
	// Owner is who the credential belongs to, once a step identified it.
	Owner      *actions.Owner `json:"owner,omitempty"`
	Generation int            `json:"generation,omitempty"`
	ClosedAt   time.Time      `json:"closed_at,omitzero"`
	ClosedBy   string         `json:"closed_by,omitempty"`
	CloseNote  string         `json:"close_note,omitempty"`
}

// Alert is one alert that started or joined the run, redacted, as it was
// received.
type Alert struct {
	// Relation is "started" for the alert that started the run and
	// "joined" for one about the same credential that joined it later.
	Relation   string      `json:"relation"`
	ReceivedAt time.Time   `json:"received_at"`
	Alert      alert.Alert `json:"alert"`
}

// Step is one step of the run.
type Step struct {
	StepID    string         `json:"step_id"`
	Seq       int            `json:"seq"`
	Action    string         `json:"action"`
	Status    string         `json:"status"`
	Outcome   string         `json:"outcome,omitempty"`
	Message   string         `json:"message,omitempty"`
	Attempts  int            `json:"attempts"`
	Outputs   map[string]any `json:"outputs,omitempty"`
	Error     string         `json:"error,omitempty"`
	StartedAt time.Time      `json:"started_at,omitzero"`
	EndedAt   time.Time      `json:"ended_at,omitzero"`
}

// Approval is one approval a step asked for, and who decided it.
type Approval struct {
	StepID      string    `json:"step_id"`
	Approvers   []string  `json:"approvers"`
	Message     string    `json:"message,omitempty"`
	RequestedAt time.Time `json:"requested_at"`
	Deadline    time.Time `json:"deadline"`
	Decision    string    `json:"decision,omitempty"`
	// DecidedBy is the approver's id (a Slack user id, or the name given
	// to stanch approve); DecidedByName their display name, when known.
	DecidedBy     string      `json:"decided_by,omitempty"`
	DecidedByName string      `json:"decided_by_name,omitempty"`
	DecidedAt     time.Time   `json:"decided_at,omitzero"`
	Via           string      `json:"via,omitempty"`
	Channel       string      `json:"channel,omitempty"`
	Escalation    *Escalation `json:"escalation,omitempty"`
	EscalatedAt   time.Time   `json:"escalated_at,omitzero"`
	// Effects are what the step changes if approved, from its plan.
	Effects    []Effect `json:"effects,omitempty"`
	Plan       string   `json:"plan,omitempty"`
	Generation int      `json:"generation,omitempty"`
}

// Escalation is an approval's second round.
type Escalation struct {
	Channel   string   `json:"channel,omitempty"`
	Approvers []string `json:"approvers"`
	Timeout   string   `json:"timeout"`
}

// Effect is one change a step makes.
type Effect struct {
	Description  string `json:"description"`
	Irreversible bool   `json:"irreversible,omitempty"`
}

// Entry is one journal entry.
type Entry struct {
	Seq     int       `json:"seq"`
	At      time.Time `json:"at"`
	StepID  string    `json:"step_id,omitempty"`
	Attempt int       `json:"attempt,omitempty"`
	Event   string    `json:"event"`
	Detail  string    `json:"detail,omitempty"`
}

// HashedEntry is a journal entry with the hashes that chain it.
type HashedEntry struct {
	Entry
	PrevHash           string `json:"prev_hash"`
	Hash               string `json:"hash"`
	ChainedAtMigration bool   `json:"chained_at_migration,omitempty"`
}

// Call is one API call an action made to a provider: what and where, never
// its parameters.
type Call struct {
	StepID    string    `json:"step_id"`
	Attempt   int       `json:"attempt"`
	Service   string    `json:"service"`
	Operation string    `json:"operation"`
	Account   string    `json:"account,omitempty"`
	Region    string    `json:"region,omitempty"`
	RequestID string    `json:"request_id,omitempty"`
	Outcome   string    `json:"outcome"`
	Error     string    `json:"error,omitempty"`
	At        time.Time `json:"at"`
	Duration  string    `json:"duration"`
}

// Runs is runs as `runs list --json` prints them.
func Runs(runs []runner.Run) []RunInfo {
	out := make([]RunInfo, len(runs))
	for i, r := range runs {
		out[i] = runInfo(r)
	}
	return out
}

func runInfo(r runner.Run) RunInfo {
	out := RunInfo{ID: r.ID, Playbook: r.Playbook, Status: string(r.Status), DedupKey: r.DedupKey, Credential: r.Alert.Credential.ID,
		WaitingStep: r.WaitingStep, FailedStep: r.FailedStep, Error: r.Error, CreatedAt: r.CreatedAt, FinishedAt: r.FinishedAt,
		Generation: r.Generation, ClosedAt: r.ClosedAt, ClosedBy: r.ClosedBy, CloseNote: r.CloseNote}
	if r.Owner.Known() {
		owner := r.Owner
		out.Owner = &owner
	}
	return out
}

// ShowRun is `runs show --json` of a run read from the store.
func ShowRun(run runner.Run, steps map[string]runner.StepRecord, approvals map[string]runner.Approval, journal []runner.Entry) Show {
	out := Show{Run: runInfo(run), Alert: redacted(run.Alert), Steps: stepsOf(steps), Approvals: approvalsOf(approvals), Journal: []Entry{}}
	for _, e := range journal {
		out.Journal = append(out.Journal, entryOf(e))
	}
	return out
}

// Load reads run's whole record from the store.
func Load(ctx context.Context, store *runner.Store, run runner.Run) (Run, error) {
	steps, err := store.Steps(ctx, run.ID)
	if err != nil {
		return Run{}, err
	}
	approvals, err := store.Approvals(ctx, run.ID)
	if err != nil {
		return Run{}, err
	}
	journal, check, err := store.HashedJournal(ctx, run.ID)
	if err != nil {
		return Run{}, err
	}
	alerts, err := store.RunAlerts(ctx, run.ID)
	if err != nil {
		return Run{}, err
	}
	calls, err := store.Calls(ctx, run.ID)
	if err != nil {
		return Run{}, err
	}
	out := Run{Schema: Schema, Run: runInfo(run), Alert: redacted(run.Alert), Alerts: make([]Alert, 0, len(alerts)),
		Steps: stepsOf(steps), Approvals: approvalsOf(approvals), Calls: make([]Call, 0, len(calls)),
		Journal: make([]HashedEntry, len(journal)), FinalHash: check.FinalHash, ChainOK: check.OK(), ChainBreaks: check.Breaks}
	if out.ChainBreaks == nil {
		out.ChainBreaks = []runner.ChainBreak{}
	}
	for _, a := range alerts {
		out.Alerts = append(out.Alerts, Alert{Relation: a.Relation, ReceivedAt: a.ReceivedAt, Alert: redacted(a.Alert)})
	}
	for _, c := range calls {
		out.Calls = append(out.Calls, Call{StepID: c.StepID, Attempt: c.Attempt, Service: c.Service, Operation: c.Operation,
			Account: c.Account, Region: c.Region, RequestID: c.RequestID, Outcome: c.Outcome, Error: alert.RedactText(c.Error),
			At: c.At, Duration: c.Duration.String()})
	}
	for i, e := range journal {
		out.Journal[i] = HashedEntry{Entry: entryOf(e.Entry), PrevHash: e.PrevHash, Hash: e.Hash, ChainedAtMigration: e.ChainedAtMigration}
	}
	return out, nil
}

// LoadID reads the record of the run with this id.
func LoadID(ctx context.Context, store *runner.Store, id string) (Run, error) {
	run, err := store.Run(ctx, id)
	if err != nil {
		return Run{}, fmt.Errorf("run %s: %w", id, err)
	}
	return Load(ctx, store, run)
}

// redacted is a stored alert as it may leave: stored alerts were redacted
// when they came in, and what leaves is redacted again by the rules of
// this build.
func redacted(a alert.Alert) alert.Alert {
	a.Redact()
	return a
}

func stepsOf(steps map[string]runner.StepRecord) []Step {
	out := []Step{}
	for _, s := range steps {
		out = append(out, Step{StepID: s.StepID, Seq: s.Seq, Action: s.Action, Status: string(s.Status), Outcome: s.Outcome, Message: s.Message,
			Attempts: s.Attempts, Outputs: s.Outputs, Error: s.Error, StartedAt: s.StartedAt, EndedAt: s.EndedAt})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out
}

func approvalsOf(approvals map[string]runner.Approval) []Approval {
	out := []Approval{}
	for _, a := range approvals {
		out = append(out, approvalOf(a))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].RequestedAt.Before(out[j].RequestedAt) })
	return out
}

func approvalOf(a runner.Approval) Approval {
	out := Approval{StepID: a.StepID, Approvers: a.Approvers, Message: a.Message, RequestedAt: a.RequestedAt, Deadline: a.Deadline,
		Decision: a.Decision, DecidedBy: a.DecidedBy, DecidedByName: a.DecidedByName, DecidedAt: a.DecidedAt, Via: a.Via, Channel: a.Channel,
		EscalatedAt: a.EscalatedAt, Plan: a.Plan, Generation: a.Generation}
	if e := a.Escalation; e != nil {
		out.Escalation = &Escalation{Channel: e.Channel, Approvers: e.Approvers, Timeout: e.Timeout.String()}
	}
	for _, e := range a.Effects {
		out.Effects = append(out.Effects, Effect{Description: e.Description, Irreversible: e.Irreversible})
	}
	return out
}

func entryOf(e runner.Entry) Entry {
	return Entry{Seq: e.Seq, At: e.At, StepID: e.StepID, Attempt: e.Attempt, Event: e.Event, Detail: e.Detail}
}
