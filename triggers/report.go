package triggers

import (
	"fmt"
	"regexp"

	"github.com/stanchhq/stanch/alert"
)

// Report is what a parser read from a document: the alerts it could make,
// and every entry it could not act on with the reason. One unreadable entry
// never costs the others: a sender that is answered 400, or a report that
// is refused whole, loses the findings that were fine.
type Report struct {
	Alerts  []alert.Alert
	Skipped []Skipped
}

// Skipped is one entry of a document that became no alert.
type Skipped struct {
	// Where names the entry for people: "line 3", "finding 2
	// (deploy/settings.py:4, aws-access-token)", "event <id>".
	Where string
	// Reason says why, naming fields rather than quoting their values: a
	// value may be a secret.
	Reason string
	// NotAFinding marks entries that never were findings, such as the log
	// lines truffleHog writes when its stderr is mixed into its output.
	// Only the others are findings stanch could not act on.
	NotAFinding bool
	// Event is the EventBridge event's id, when it has a readable one.
	Event string
	// Refused marks an event of a kind stanch acts on that it cannot act
	// on as sent (a key id field that holds no key id, or more than one):
	// unlike an event of another kind, that is an error the sender must
	// see, or the credential stays active while it thinks it delivered.
	Refused bool
}

// refusedOnly reports whether nothing in r became an alert and something
// in it was refused: such a document is answered as a client error.
func (r Report) refusedOnly() bool {
	if len(r.Alerts) > 0 {
		return false
	}
	for _, s := range r.Skipped {
		if s.Refused {
			return true
		}
	}
	return false
}

// redacted returns the report with its alerts redacted (again: each was as
// it was made) and the text of its skipped entries too: where an entry is
// names a file, and a file name can hold a secret.
func (r Report) redacted() Report {
	for i := range r.Alerts {
		r.Alerts[i].Redact()
	}
	for i := range r.Skipped {
		s := &r.Skipped[i]
		s.Where, s.Reason, s.Event = alert.RedactText(s.Where), alert.RedactText(s.Reason), alert.RedactText(s.Event)
	}
	return r
}

// Unactionable returns the skipped entries that were findings.
func (r Report) Unactionable() []Skipped {
	var out []Skipped
	for _, s := range r.Skipped {
		if !s.NotAFinding {
			out = append(out, s)
		}
	}
	return out
}

func (r *Report) skip(where, format string, args ...any) {
	r.Skipped = append(r.Skipped, Skipped{Where: where, Reason: alert.RedactText(fmt.Sprintf(format, args...))})
}

// eventID is a readable EventBridge event id: the UUIDs EventBridge assigns,
// or ids of the same alphabet. Anything else is not echoed back, because
// the body is the sender's and reasons must not quote it.
var eventID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,79}$`)

// safeEventID returns id if it is readable, or "" so that the caller names
// the event by its position instead.
func safeEventID(id string) string {
	if !eventID.MatchString(id) || alert.RedactText(id) != id {
		return ""
	}
	return id
}
