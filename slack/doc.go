// Package slack is stanch's Slack integration: a client of the Web API
// (through slack-go) that redacts every message before it leaves, waits out
// short rate limits and finds stanch's own messages again by their
// metadata; PostOnce, the one way stanch posts a message exactly once;
// signed approval button values; Slack ids, mentions and escaping; and
// plain-text views of messages for terminals. Sub-package render builds
// stanch's messages from a run's report. The slack.notify action
// (actions/slack), the notifier (notify) and the interactions endpoint
// (triggers) all use it; it imports neither actions nor the runner.
package slack
