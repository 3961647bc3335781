package slack

import "fmt"

// Every message stanch posts carries, in its metadata, the run it belongs
// to and its key within the run; messages that belong to no run (an alert
// that started none) carry another owner in place of the run. With them, a
// post whose answer was lost can be found again instead of posted twice,
// and the run's records name each message by the same key.

// MetadataType marks stanch's messages in Slack's message metadata.
const MetadataType = "stanch_message"

// NotifyKey is the key of the incident message a slack.notify step posts.
func NotifyKey(stepID string) string { return "notify/" + stepID }

// ThreadKey is the key of a step's detail line in the incident's thread.
func ThreadKey(stepID string) string { return "thread/" + stepID }

// ApprovalKey names a step's approval message of one round (0 the first
// request, 1 the escalation); a request asked again after a retry (a later
// generation of the run) gets messages of its own.
func ApprovalKey(stepID string, generation, round int) string {
	if generation > 0 {
		return fmt.Sprintf("approval/%s/g%d/%d", stepID, generation, round)
	}
	return fmt.Sprintf("approval/%s/%d", stepID, round)
}
