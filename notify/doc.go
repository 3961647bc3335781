// Package notify shows runs to people in Slack, for the runner. Slack is
// the runner's Notifier: it keeps a run's messages in step with the run
// (the incident message a slack.notify step posted, updated as steps
// finish, with each finished step's line in its thread; the approval
// requests, replaced by the decision once someone decides). Unacted is the
// runner's UnactedPoster: it posts each alert that started no run.
//
// A sync is two stages composed in order: the messages the run's report
// wants (wanted.go, pure), then reconciling them with Slack (reconcile.go),
// where each message is posted once by slack.PostOnce and updated when what
// it shows changed. The runner hands in the report and the run's message
// records; this package imports the runner only for those interfaces and
// types, and renders nothing itself (slack/render does).
package notify
