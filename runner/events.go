package runner

import (
	"time"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/alert"
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
)

// Event is one moment of a run's progress, for live output. It never holds
// a secret.
type Event struct {
	Kind     EventKind
	At       time.Time
	RunID    string
	StepID   string
	Action   string
	Attempt  int
	Outcome  string
	Status   string // run status for run events
	Message  string
	Error    string
	Duration time.Duration
	// Deadline is when a waiting approval times out, or when a delayed
	// step is due.
	Deadline time.Time
	// Effects are what a step waiting for approval would change.
	Effects []actions.Effect
}

func (r *Runner) emit(e Event) {
	if r.cfg.Observer == nil {
		return
	}
	e.At = r.cfg.Now()
	e.Message, e.Error = alert.RedactText(e.Message), alert.RedactText(e.Error)
	r.cfg.Observer(e)
}
