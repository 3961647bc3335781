package main

import (
	"sort"
	"time"

	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/runner"
)

// runShowJSON is stanch runs show --json. Every key is snake_case, as in
// the rest of stanch's JSON; the store's Go types are not marshalled as
// they are. alert.raw is the one exception: it is the document the alert
// came in, as its sender wrote it (redacted), keys and all.
type runShowJSON struct {
	Run       runJSON        `json:"run"`
	Alert     alert.Alert    `json:"alert"`
	Steps     []stepJSON     `json:"steps"`
	Approvals []approvalJSON `json:"approvals"`
	Journal   []entryJSON    `json:"journal"`
}

type stepJSON struct {
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

type approvalJSON struct {
	StepID      string          `json:"step_id"`
	Approvers   []string        `json:"approvers"`
	Message     string          `json:"message,omitempty"`
	RequestedAt time.Time       `json:"requested_at"`
	Deadline    time.Time       `json:"deadline"`
	Decision    string          `json:"decision,omitempty"`
	DecidedBy   string          `json:"decided_by,omitempty"`
	DecidedAt   time.Time       `json:"decided_at,omitzero"`
	Via         string          `json:"via,omitempty"`
	Channel     string          `json:"channel,omitempty"`
	Escalation  *escalationJSON `json:"escalation,omitempty"`
	EscalatedAt time.Time       `json:"escalated_at,omitzero"`
	// Effects are what the step changes if approved, from its plan.
	Effects    []effectJSON `json:"effects,omitempty"`
	Plan       string       `json:"plan,omitempty"`
	Generation int          `json:"generation,omitempty"`
}

type escalationJSON struct {
	Channel   string   `json:"channel,omitempty"`
	Approvers []string `json:"approvers"`
	Timeout   string   `json:"timeout"`
}

type effectJSON struct {
	Description  string `json:"description"`
	Irreversible bool   `json:"irreversible,omitempty"`
}

type entryJSON struct {
	Seq     int       `json:"seq"`
	At      time.Time `json:"at"`
	StepID  string    `json:"step_id,omitempty"`
	Attempt int       `json:"attempt,omitempty"`
	Event   string    `json:"event"`
	Detail  string    `json:"detail,omitempty"`
}

func runShow(run runner.Run, steps map[string]runner.StepRecord, approvals map[string]runner.Approval, journal []runner.Entry) runShowJSON {
	// Stored alerts were redacted when they came in; what leaves is
	// redacted again, by the rules of this build.
	a := run.Alert
	a.Redact()
	out := runShowJSON{Run: runsJSON([]runner.Run{run})[0], Alert: a, Steps: []stepJSON{}, Approvals: []approvalJSON{}, Journal: []entryJSON{}}
	for _, s := range steps {
		out.Steps = append(out.Steps, stepJSON{StepID: s.StepID, Seq: s.Seq, Action: s.Action, Status: string(s.Status), Outcome: s.Outcome, Message: s.Message,
			Attempts: s.Attempts, Outputs: s.Outputs, Error: s.Error, StartedAt: s.StartedAt, EndedAt: s.EndedAt})
	}
	sort.Slice(out.Steps, func(i, j int) bool { return out.Steps[i].Seq < out.Steps[j].Seq })
	for _, ap := range approvals {
		out.Approvals = append(out.Approvals, approvalOut(ap))
	}
	sort.Slice(out.Approvals, func(i, j int) bool { return out.Approvals[i].RequestedAt.Before(out.Approvals[j].RequestedAt) })
	for _, e := range journal {
		out.Journal = append(out.Journal, entryJSON{Seq: e.Seq, At: e.At, StepID: e.StepID, Attempt: e.Attempt, Event: e.Event, Detail: e.Detail})
	}
	return out
}

func approvalOut(a runner.Approval) approvalJSON {
	out := approvalJSON{StepID: a.StepID, Approvers: a.Approvers, Message: a.Message, RequestedAt: a.RequestedAt, Deadline: a.Deadline,
		Decision: a.Decision, DecidedBy: a.DecidedBy, DecidedAt: a.DecidedAt, Via: a.Via, Channel: a.Channel, EscalatedAt: a.EscalatedAt,
		Plan: a.Plan, Generation: a.Generation}
	if e := a.Escalation; e != nil {
		out.Escalation = &escalationJSON{Channel: e.Channel, Approvers: e.Approvers, Timeout: e.Timeout.String()}
	}
	for _, e := range a.Effects {
		out.Effects = append(out.Effects, effectJSON{Description: e.Description, Irreversible: e.Irreversible})
	}
	return out
}
