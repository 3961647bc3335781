package render

import (
	"fmt"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/slack"
)

// StepDetail is a finished step's line in the incident message's thread:
// how it ended, its message or error, and who decided its approval.
func StepDetail(st actions.StepReport) slack.Message {
	text := fmt.Sprintf("%s %s (%s): %s", mark(st.Status), st.ID, st.Action, st.Status)
	switch {
	case st.Error != "":
		text += " — " + st.Error
	case st.Message != "":
		text += " — " + st.Message
	}
	if ap := st.Approval; ap != nil && ap.Decision != "" {
		text += fmt.Sprintf(" (%s by %s via %s)", ap.Decision, ap.DecidedBy, ap.Via)
	}
	return slack.Message{Text: slack.Escape(text)}
}

// UnactedAlert is the message about an alert that started no run: which
// alert, why stanch could not act on it, and where to see all such alerts.
// It is text alone, escaped, so that what the alert said shows as text.
func UnactedAlert(dedupKey, source, reference, reason string) slack.Message {
	text := fmt.Sprintf(":warning: stanch could not act on alert %s (%s %s), so it started no run.\n%s\nAll such alerts: stanch alerts list", dedupKey, source, reference, reason)
	return slack.Message{Text: slack.Escape(alert.RedactText(text))}
}
