package main

import (
	"context"
	"fmt"
	"os"
	"time"

	slackact "github.com/stanchhq/stanch/actions/slack"
	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/playbooks"
	"github.com/stanchhq/stanch/runner"
)

// envSlackAlertsChannel names the channel where alerts that started no run
// are posted; by default, the channel of the first slack.notify step of the
// loaded playbooks (the incident channel).
const envSlackAlertsChannel = "STANCH_SLACK_ALERTS_CHANNEL"

// unactedRunID stands in the messages' metadata where a run's id would:
// these messages belong to no run. Their key is the alert's dedup key.
const unactedRunID = "unacted"

// unactedSlack posts each alert that started no run to a Slack channel; the
// runner calls it once per alert (see runner.UnactedPoster).
type unactedSlack struct {
	client  *slackact.Client
	channel string
}

var _ runner.UnactedPoster = (*unactedSlack)(nil)

func (s *unactedSlack) message(u runner.Unacted) slackact.Message {
	text := fmt.Sprintf(":warning: stanch could not act on alert %s (%s %s), so it started no run.\n%s\nAll such alerts: stanch alerts list", u.DedupKey, u.Source, u.Reference, u.Reason)
	return slackact.Message{Channel: s.channel, Text: slackact.Escape(alert.RedactText(text))}
}

// slackAlertsChannel is $STANCH_SLACK_ALERTS_CHANNEL, else the
// configuration file's slack.alerts_channel.
func (g *globals) slackAlertsChannel() string {
	if ch := os.Getenv(envSlackAlertsChannel); ch != "" {
		return ch
	}
	return g.cfg.Slack.AlertsChannel
}

func (s *unactedSlack) Post(ctx context.Context, u runner.Unacted) (string, string, error) {
	return s.client.Post(ctx, unactedRunID, u.DedupKey, s.message(u))
}

func (s *unactedSlack) Find(ctx context.Context, u runner.Unacted, since time.Time) (string, string, error) {
	return s.client.Find(ctx, s.channel, "", unactedRunID, u.DedupKey, since)
}

// unactedChannel is where alerts that started no run are posted: the
// channel configured (the alerts channel), else that of the first
// slack.notify step among books, else nowhere ("").
func unactedChannel(configured string, books []*playbooks.Playbook) string {
	if configured != "" {
		return configured
	}
	for _, pb := range books {
		for _, st := range pb.Steps {
			if st.Action != "slack.notify" {
				continue
			}
			params, err := st.Params(pb.Scope(alert.Alert{}, playbooks.RunInfo{Playbook: pb.Name}))
			if err != nil {
				continue // a channel that depends on the alert
			}
			if ch, _ := params["channel"].(string); ch != "" {
				return ch
			}
		}
	}
	return ""
}
