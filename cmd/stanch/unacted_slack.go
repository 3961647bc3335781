package main

import (
	"os"

	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/playbooks"
)

// envSlackAlertsChannel names the channel where alerts that started no run
// are posted (by notify.Unacted); by default, the channel of the first
// slack.notify step of the loaded playbooks (the incident channel).
const envSlackAlertsChannel = "STANCH_SLACK_ALERTS_CHANNEL"

// slackAlertsChannel is $STANCH_SLACK_ALERTS_CHANNEL, else the
// configuration file's slack.alerts_channel.
func (g *globals) slackAlertsChannel() string {
	if ch := os.Getenv(envSlackAlertsChannel); ch != "" {
		return ch
	}
	return g.cfg.Slack.AlertsChannel
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
