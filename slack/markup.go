package slack

import (
	"strings"

	"github.com/stanchhq/stanch/alert"
)

// Escape makes text safe for Slack (it reads &, < and > as markup, in
// mrkdwn and plain_text alike: <!channel>, <https://…|Click here>) and
// redacts anything secret-looking. Every text that comes from outside goes
// through it, in every field: fallback text, headers, sections, context,
// confirmation dialogs, thread replies, ephemeral answers.
func Escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(alert.RedactText(s))
}

// Mention renders an approver or decider for Slack: users and user groups
// as mentions, anything else (a name given to stanch approve) as text.
func Mention(id string) string {
	switch {
	case IsUserID(id):
		return "<@" + id + ">"
	case IsGroupID(id):
		return "<!subteam^" + id + ">"
	}
	return Escape(id)
}
