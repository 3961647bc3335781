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

// IsChannelID reports whether s is a Slack conversation id rather than a
// channel's name.
func IsChannelID(s string) bool { return len(s) >= 3 && hasIDShape(s, "CGD") }
