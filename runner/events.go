package runner

import (
	"time"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/playbooks"
)

// EventKind names a progress event.
type EventKind string

const (
	EventRunStarted EventKind = "run_started"
	EventRunResumed EventKind = "run_resumed" // after the process working it stopped
	// EventRunContinued: a run goes on after a decision, a queue move or a
	// delay; nothing stopped.
	EventRunContinued  EventKind = "run_continued"
	EventRunRetried    EventKind = "run_retried"
	EventStepStarted   EventKind = "step_started"
	EventStepRetrying  EventKind = "step_retrying"
	EventStepSucceeded EventKind = "step_succeeded"
	EventStepFailed    EventKind = "step_failed"
	EventStepSkipped   EventKind = "step_skipped"
	EventStepWaiting   EventKind = "step_waiting_approval"
	EventStepEscalated EventKind = "step_escalated"
	EventStepDenied    EventKind = "step_denied"
	EventStepDelayed   EventKind = "step_delayed"
	EventStepProgress  EventKind = "step_progress"
	EventStepEffect    EventKind = "step_effect"
	EventRunFinished   EventKind = "run_finished"
	EventRunParked     EventKind = "run_parked"
	// EventRunContained: the run's first containment step (see
	// actions.Spec.Containment) succeeded; Duration is the time since the
	// run's alert was received.
	EventRunContained EventKind = "run_contained"
	// EventStepAPIError: an attempt of a step failed with an error a
	// provider's API answered (API says which).
	EventStepAPIError EventKind = "step_api_error"
	// EventCallsLost: the record of API calls an attempt made could not be
	// written (the store failed); Calls says how many are missing from the
	// run's record.
	EventCallsLost EventKind = "calls_lost"
	// EventAlertSubmitted: an alert was committed; Source is its source and
	// Outcome what it did (AlertStarted, AlertJoined, AlertDuplicate,
	// AlertUnmatched).
	EventAlertSubmitted EventKind = "alert_submitted"
	// EventAlertUnacted: an alert that cannot be acted on was recorded
	// (see Unacted); Source is where it came from.
	EventAlertUnacted EventKind = "alert_unacted"
)

// What a submitted alert did, in EventAlertSubmitted's Outcome.
const (
	AlertStarted   = "started"   // it started at least one run
	AlertJoined    = "joined"    // it joined an open run about the same credential
	AlertDuplicate = "duplicate" // its runs already existed (a redelivery)
	AlertUnmatched = "unmatched" // no playbook matched it
)

// Event is one moment of a run's progress (or of an alert's intake), for
// live output and metrics. It never holds a secret.
type Event struct {
	Kind     EventKind
	At       time.Time
	RunID    string
	StepID   string
	Action   string
	Attempt  int
	Outcome  string
	Status   RunStatus // run status for run events
	Message  string
	Error    string
	Duration time.Duration
	// Deadline is when a waiting approval times out, or when a delayed
	// step is due.
	Deadline time.Time
	// Effects are what a step waiting for approval would change.
	Effects []actions.Effect
	// Duration (above) is, for step_retrying, the wait before the next
	// attempt; for step_succeeded and step_failed, how long the step's
	// attempts took in this process, retries included (0 when no attempt
	// ran); for run_contained, the time since the alert was received.

	// Playbook is the run's playbook (run_finished, run_contained).
	Playbook string
	// Source is the alert's source (alert_submitted, alert_unacted,
	// run_contained).
	Source string
	// API is what a provider's API answered (step_api_error).
	API actions.APIError
	// Calls counts the API calls of calls_lost.
	Calls int
}

func (r *Runner) emit(e Event) {
	if r.cfg.Observer == nil {
		return
	}
	e.At = r.cfg.Now()
	e.Message, e.Error = alert.RedactText(e.Message), alert.RedactText(e.Error)
	r.cfg.Observer(e)
}

// submitted is the event of a committed alert: what it did, the first of
// started, joined, duplicate.
func (s Submission) submitted() Event {
	outcome := AlertUnmatched
	switch {
	case len(s.Started) > 0:
		outcome = AlertStarted
	case len(s.Joined) > 0:
		outcome = AlertJoined
	case len(s.Existing) > 0:
		outcome = AlertDuplicate
	}
	return Event{Kind: EventAlertSubmitted, Source: s.Alert.Source, Outcome: outcome}
}

// containedBy reports whether the step at seq, which just succeeded,
// contains the run's credential for the first time: its action is a
// containment action and no earlier step with one succeeded (in this
// process or before a restart: scope holds the journal's steps).
func (r *Runner) containedBy(pb *playbooks.Playbook, seq int, scope playbooks.Scope) bool {
	contains := func(step *playbooks.Step) bool {
		a, ok := r.cfg.Registry.Lookup(step.Action)
		return ok && a.Spec().Containment
	}
	if !contains(pb.Steps[seq]) {
		return false
	}
	for _, earlier := range pb.Steps[:seq] {
		if contains(earlier) && scope.Steps[earlier.ID].Status == string(StepSucceeded) {
			return false
		}
	}
	return true
}
