package notify

import (
	"context"
	"log/slog"
	"time"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/playbooks"
	"github.com/stanchhq/stanch/runner"
	"github.com/stanchhq/stanch/slack"
)

// Slack is the runner's Notifier for Slack.
type Slack struct {
	client *slack.Client
	tokens *slack.Tokens
	log    *slog.Logger
	// recordLink makes the link to a run's incident record that the
	// incident message shows; nil shows none.
	recordLink LinkMaker
}

// LinkMaker makes the link to a run's incident record from its id and its
// creation time (the link's expiry is anchored on it, so that the message
// drawn again later carries the same link).
type LinkMaker func(runID string, created time.Time) string

// WithRecordLink makes the incident message show a link to the run's
// incident record, made by link (nil: none). It returns s.
func (s *Slack) WithRecordLink(link LinkMaker) *Slack {
	s.recordLink = link
	return s
}

var _ runner.Notifier = (*Slack)(nil)

// NewSlack returns a notifier posting through client, signing approval
// buttons with tokens (nil: no buttons, the messages say how to decide
// with stanch approve).
func NewSlack(client *slack.Client, tokens *slack.Tokens, log *slog.Logger) *Slack {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Slack{client: client, tokens: tokens, log: log}
}

// Wants is true for playbooks that post an incident message or ask for
// approval in Slack.
func (s *Slack) Wants(pb *playbooks.Playbook) bool {
	for _, st := range pb.Steps {
		if st.Action == "slack.notify" || (st.Approval != nil && st.Approval.Channel != "") {
			return true
		}
	}
	return false
}

// Sync brings every Slack message of a run up to date: posts what is
// missing (once, even across crashes) and updates what changed.
func (s *Slack) Sync(ctx context.Context, rep actions.Report, msgs runner.Messages) error {
	if !s.client.Configured() {
		return nil // nothing can be shown; stanch approve still works
	}
	return s.reconcile(ctx, rep.RunID, records{msgs}, wantedMessages(rep, s.tokens, s.recordLinkOf(rep)))
}

// recordLinkOf is the link to rep's run's incident record, "" without one.
func (s *Slack) recordLinkOf(rep actions.Report) string {
	if s.recordLink == nil {
		return ""
	}
	return s.recordLink(rep.RunID, rep.StartedAt)
}
