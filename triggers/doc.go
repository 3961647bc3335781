// Package triggers turns what arrives from outside into Alerts: webhooks
// (GitHub secret scanning, EventBridge, SNS), Slack's approval clicks,
// pollers (SQS, the GitHub backstop), and files given to the CLI (a stanch
// Alert, an EventBridge event, truffleHog or gitleaks output). Each
// endpoint authenticates before it reads, limits what it accepts, and
// hands alerts to a Sink that commits them before the sender is answered.
// It imports the Alert type and nothing of the runner or the actions: the
// runner is reached through the Sink and Decider interfaces it defines.
package triggers
