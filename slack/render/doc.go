// Package render builds stanch's Slack messages, all of them: the incident
// message of a run with its table of steps (posted by slack.notify and
// rebuilt from the run's report at every change), the approval request with
// its effects and buttons (or the decision, once taken), a finished step's
// line in the incident's thread, and the message about an alert that
// started no run. Every text from outside is escaped and redacted here, and
// the client redacts again before anything leaves. It reads the run's
// report (actions.Report), which is why it is apart from package slack:
// the interactions endpoint in triggers uses slack and must not depend on
// actions.
package render
