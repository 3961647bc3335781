package triggers

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/stanchhq/stanch/alert"
)

// ErrUnsupportedFormat is returned for a payload stanch recognises but this
// build does not turn into an Alert yet.
var ErrUnsupportedFormat = errors.New("payload format not supported")

// ParseDocument reads what a person hands to `stanch run --alert`: a stanch
// Alert JSON document (docs/alerts.md). Payloads of other sources are
// recognised so that the error can say what was given and what to do.
func ParseDocument(data []byte, now time.Time) (alert.Alert, error) {
	format := Recognise(data)
	if format != FormatAlert {
		return alert.Alert{}, fmt.Errorf("%w: this looks like %s; give a stanch Alert JSON document instead (docs/alerts.md)", ErrUnsupportedFormat, format)
	}
	return alert.Parse(data, now)
}

// Formats Recognise tells apart.
const (
	FormatAlert       = "a stanch Alert"
	FormatGitHub      = "a GitHub secret_scanning_alert webhook"
	FormatEventBridge = "an EventBridge event (GuardDuty or AWS Health)"
	FormatSNS         = "an SNS message"
	FormatTruffleHog  = "truffleHog JSON output"
	FormatGitleaks    = "a gitleaks JSON report"
	FormatUnknown     = "an unrecognised document"
)

// Recognise names the format of a payload by its distinctive top-level
// fields, without trusting or fully decoding it.
func Recognise(data []byte) string {
	trimmed := strings.TrimSpace(string(data))
	if strings.HasPrefix(trimmed, "[") {
		var arr []map[string]json.RawMessage
		if json.Unmarshal(data, &arr) == nil && len(arr) > 0 && has(arr[0], "RuleID") {
			return FormatGitleaks
		}
		return FormatUnknown
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		// truffleHog writes one JSON object per line.
		first, _, _ := strings.Cut(trimmed, "\n")
		if json.Unmarshal([]byte(first), &obj) == nil && has(obj, "DetectorName") {
			return FormatTruffleHog
		}
		return FormatUnknown
	}
	switch {
	case has(obj, "credential"):
		return FormatAlert
	case has(obj, "alert") && has(obj, "repository"):
		return FormatGitHub
	case has(obj, "detail-type") && has(obj, "source"):
		return FormatEventBridge
	case has(obj, "TopicArn") && has(obj, "Type"):
		return FormatSNS
	case has(obj, "DetectorName") && has(obj, "SourceMetadata"):
		return FormatTruffleHog
	}
	return FormatUnknown
}

func has(m map[string]json.RawMessage, key string) bool {
	_, ok := m[key]
	return ok
}
