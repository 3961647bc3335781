package notify

import (
	"context"
	"log/slog"

	"github.com/stanchhq/stanch/runner"
	"github.com/stanchhq/stanch/slack"
	"github.com/stanchhq/stanch/slack/render"
)

// unactedOwner stands in the messages' metadata where a run's id would:
// these messages belong to no run. Their key is the alert's dedup key.
const unactedOwner = "unacted"

// Unacted is the runner's UnactedPoster for Slack: it posts each alert
// that started no run to one channel, once.
type Unacted struct {
	client  *slack.Client
	channel string
	log     *slog.Logger
}

var _ runner.UnactedPoster = (*Unacted)(nil)

// NewUnacted returns a poster to channel through client.
func NewUnacted(client *slack.Client, channel string, log *slog.Logger) *Unacted {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Unacted{client: client, channel: channel, log: log}
}

// Message is what Post posts about u.
func (p *Unacted) Message(u runner.Unacted) slack.Message {
	m := render.UnactedAlert(u.DedupKey, u.Source, u.Reference, u.Reason)
	m.Channel = p.channel
	return m
}

// Post posts the message about u once, keeping its record in notice.
func (p *Unacted) Post(ctx context.Context, u runner.Unacted, notice runner.Messages) error {
	rec, how, err := p.client.PostOnce(ctx, records{notice}, slack.Once{RunID: unactedOwner, Key: u.DedupKey, Message: p.Message(u), CrashPoint: "unacted:posted"})
	if err != nil {
		return err
	}
	if how == slack.Found {
		p.log.Info("found the message an interrupted attempt posted", "dedup_key", u.DedupKey, "ts", rec.TS)
	}
	return nil
}
