// Package slack is the slack.notify action: it posts a run's incident
// message to a channel, once, even when an attempt died after posting.
// Everything else about Slack (the client, the messages, posting once,
// approval buttons) is the Slack integration in package
// github.com/stanchhq/stanch/slack, which this action shares with the
// notifier that keeps the message up to date and with the interactions
// endpoint.
package slack
