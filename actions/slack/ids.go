package slack

import "strings"

// Slack ids are an upper-case letter saying what they name, then upper-case
// letters and digits: U… and W… users, S… user groups, C…, G… and D…
// conversations. Approvers and channels in playbooks are ids or names; these
// tell them apart.

func hasIDShape(s, kinds string) bool {
	if len(s) < 2 || !strings.ContainsRune(kinds, rune(s[0])) {
		return false
	}
	for _, r := range s {
		if (r < 'A' || r > 'Z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}

// IsUserID reports whether s is a Slack user id.
func IsUserID(s string) bool { return hasIDShape(s, "UW") }

// IsGroupID reports whether s is a Slack user group id.
func IsGroupID(s string) bool { return hasIDShape(s, "S") }

func isChannelID(s string) bool { return len(s) >= 3 && hasIDShape(s, "CGD") }

// Mention renders an approver or decider for Slack: users and user groups
// as mentions, anything else (a name given to stanch approve) as text.
func Mention(id string) string {
	switch {
	case IsUserID(id):
		return "<@" + id + ">"
	case IsGroupID(id):
		return "<!subteam^" + id + ">"
	}
	return escape(id)
}
