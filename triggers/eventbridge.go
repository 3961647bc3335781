package triggers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/stanchhq/stanch/alert"
)

// eventBridgeEvent is the envelope EventBridge puts around every event.
type eventBridgeEvent struct {
	ID         string          `json:"id"`
	DetailType string          `json:"detail-type"`
	Source     string          `json:"source"`
	Account    string          `json:"account"`
	Time       string          `json:"time"`
	Region     string          `json:"region"`
	Resources  []string        `json:"resources"`
	Detail     json.RawMessage `json:"detail"`
}

// ErrNotEventBridge is returned when nothing in a document is an
// EventBridge event: the sender sent something else entirely.
var ErrNotEventBridge = errors.New("not an EventBridge event")

// ParseEventBridge turns one EventBridge event, or a JSON array of them (a
// batch), into alerts: GuardDuty findings that name an access key and AWS
// Health AWS_RISK_* events. Every event it can act on becomes an alert;
// the others are skipped with a reason, so one unsupported event never
// costs the rest of its batch. It fails only when nothing in data is an
// EventBridge event. Reasons name fields, never their values.
func ParseEventBridge(data []byte, now time.Time) (Report, error) {
	var events []json.RawMessage
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		if err := json.Unmarshal(trimmed, &events); err != nil {
			return Report{}, fmt.Errorf("%w: the body starts like a batch but is not a JSON array", ErrNotEventBridge)
		}
	} else {
		if !json.Valid(trimmed) {
			return Report{}, fmt.Errorf("%w: the body is not JSON", ErrNotEventBridge)
		}
		events = []json.RawMessage{trimmed}
	}
	var rep Report
	readable := 0
	for i, raw := range events {
		var ev eventBridgeEvent
		if json.Unmarshal(raw, &ev) != nil || ev.Source == "" || ev.DetailType == "" {
			rep.Skipped = append(rep.Skipped, Skipped{Where: fmt.Sprintf("event %d", i+1), Reason: "not an EventBridge event (an object with source, detail-type and detail)"})
			continue
		}
		readable++
		id := safeEventID(ev.ID)
		where := "event " + id
		if id == "" {
			where = fmt.Sprintf("event %d", i+1)
		}
		a, err := eventAlert(ev, now)
		if err != nil {
			rep.Skipped = append(rep.Skipped, Skipped{Where: where, Reason: err.Error(), Event: id, Refused: !errors.Is(err, ErrUnsupportedFormat)})
			continue
		}
		a.Raw = alert.RedactJSON(raw)
		rep.Alerts = append(rep.Alerts, a)
	}
	if readable == 0 {
		return Report{}, fmt.Errorf("%w: no object with source, detail-type and detail", ErrNotEventBridge)
	}
	return rep.redacted(), nil
}

// eventAlert makes the alert of one event, or says why it cannot.
func eventAlert(ev eventBridgeEvent, now time.Time) (alert.Alert, error) {
	var a alert.Alert
	var err error
	switch ev.Source {
	case "aws.guardduty":
		a, err = guardDutyAlert(ev, now)
	case "aws.health":
		a, err = healthAlert(ev, now)
	default:
		return a, fmt.Errorf("%w: source is neither aws.guardduty nor aws.health (stanch takes GuardDuty findings and AWS Health AWS_RISK_* events)", ErrUnsupportedFormat)
	}
	if err != nil {
		return a, err
	}
	if a.Credential.Account != "" && !awsAccountID.MatchString(a.Credential.Account) {
		return a, errors.New("the account id (detail.accountId, or account) is not a 12-digit AWS account id")
	}
	if err := finish(&a, now); err != nil {
		// Validation errors quote values; the sender's body stays out of
		// the answer.
		return a, errors.New("the event does not make a valid alert")
	}
	return a, nil
}

var awsAccountID = regexp.MustCompile(`^[0-9]{12}$`)

// finish redacts, fills defaults and validates an alert made by a
// trigger. Redaction comes first, so that neither the alert nor an error
// about it carries a secret.
func finish(a *alert.Alert, now time.Time) error {
	a.Redact()
	a.Normalise(now)
	return alert.RedactError(a.Validate())
}
