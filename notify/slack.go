package notify

import (
	"context"
	"log/slog"

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
	return s.reconcile(ctx, rep.RunID, records{msgs}, wantedMessages(rep, s.tokens))
}
