package actions

import (
	"context"
	"strconv"
	"time"

	"github.com/stanchhq/stanch/alert"
)

// Report is what an action that reports on its own run (an incident message
// in Slack, a resolution comment on GitHub) may read: the alert and every
// step of the playbook with its state so far. It never holds a secret:
// secret outputs are not in it, and text is redacted.
type Report struct {
	RunID     string
	Playbook  string
	Status    string // the run's status: pending, running, waiting_approval, succeeded, failed, cancelled
	StartedAt time.Time
	// FinishedAt is zero while the run is open.
	FinishedAt time.Time
	// Ended says why a failed or cancelled run ended ("cancelled by alice:
	// handled by hand").
	Ended string
	// Closed is set once people closed the incident.
	Closed *Closure
	// Generation counts the times people retried the run.
	Generation int
	// Owner is who the credential belongs to, once a step identified it.
	Owner Owner
	Alert alert.Alert
	// Steps are all of the playbook's steps, in order; those not reached
	// yet have the status "pending".
	Steps []StepReport // Journal is the run's journal's last entry when the report was read.
	// A copy of it kept elsewhere (the Slack message, the GitHub comment)
	// shows later that nothing up to it changed (stanch runs verify
	// --anchor).
	Journal JournalAnchor
}

// JournalAnchor names one journal entry by its number and hash.
type JournalAnchor struct {
	Seq  int
	Hash string
}

// String is the anchor as people copy it: SEQ:HASH.
func (a JournalAnchor) String() string {
	if a.Hash == "" {
		return ""
	}
	return strconv.Itoa(a.Seq) + ":" + a.Hash
}

// Closure is people's closing of an incident.
type Closure struct {
	By   string
	At   time.Time
	Note string
}

// StepReport is one step of a Report.
type StepReport struct {
	ID      string
	Action  string
	Status  string // pending, running, delayed, waiting_approval, succeeded, failed, skipped, denied
	Outcome string
	Message string
	Error   string
	Outputs map[string]any
	// Approval is set for a step that asked for one.
	Approval *ApprovalReport
}

// ApprovalReport is the state of a step's approval.
type ApprovalReport struct {
	Approvers []string
	Message   string
	Deadline  time.Time
	// OnTimeout is what happens at Deadline: deny, approve or escalate.
	OnTimeout string
	// Channel is where people were asked first; EscalatedTo is where they
	// were asked after the first timeout, if it came to that.
	Channel     string
	EscalatedTo string
	EscalatedAt time.Time
	Decision    string // "", approved, denied
	DecidedBy   string
	DecidedAt   time.Time
	Via         string // cli, slack, timeout
	// Effects are what the step will change if approved, from its plan
	// when people were asked; Plan is that plan's summary, or why there is
	// none.
	Effects []Effect
	Plan    string
	// OnDeny is what a denial means for the run: stop or skip.
	OnDeny string
	// Generation is the run's generation that asked: a step asked again
	// after a retry is a new request.
	Generation int
}

// Step returns the step with the given id.
func (r Report) Step(id string) (StepReport, bool) {
	for _, s := range r.Steps {
		if s.ID == id {
			return s, true
		}
	}
	return StepReport{}, false
}

// Reporter returns the current Report of a run.
type Reporter func(ctx context.Context) (Report, error)
