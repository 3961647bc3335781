package triggers

import (
	"bytes"
	"encoding/json"
	"fmt"
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

// ParseEventBridge turns one EventBridge event, or a JSON array of them (a
// batch), into alerts: GuardDuty findings about access keys and AWS Health
// AWS_RISK_* events.
func ParseEventBridge(data []byte, now time.Time) ([]alert.Alert, error) {
	var events []json.RawMessage
	if trimmed := bytes.TrimSpace(data); len(trimmed) > 0 && trimmed[0] == '[' {
		if err := json.Unmarshal(data, &events); err != nil {
			return nil, fmt.Errorf("EventBridge batch: %w", err)
		}
	} else {
		events = []json.RawMessage{data}
	}
	var out []alert.Alert
	for i, raw := range events {
		var ev eventBridgeEvent
		if err := json.Unmarshal(raw, &ev); err != nil {
			return nil, fmt.Errorf("EventBridge event %d: %w", i, err)
		}
		var a alert.Alert
		var err error
		switch ev.Source {
		case "aws.guardduty":
			a, err = guardDutyAlert(ev, now)
		case "aws.health":
			a, err = healthAlert(ev, now)
		default:
			err = fmt.Errorf("%w: source %q (stanch takes aws.guardduty findings and aws.health events)", ErrUnsupportedFormat, ev.Source)
		}
		if err != nil {
			return nil, fmt.Errorf("EventBridge event %d (%s): %w", i, ev.ID, err)
		}
		a.Raw = alert.RedactJSON(raw)
		if err := finish(&a, now); err != nil {
			return nil, fmt.Errorf("EventBridge event %d (%s): %w", i, ev.ID, err)
		}
		out = append(out, a)
	}
	return out, nil
}

// finish fills defaults and validates an alert made by a trigger.
func finish(a *alert.Alert, now time.Time) error {
	a.Normalise(now)
	return a.Validate()
}
