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

// ParseDocument reads what is handed to `stanch run --alert` or
// `stanch ingest`: a stanch Alert, an EventBridge event or batch (GuardDuty,
// AWS Health), truffleHog JSON lines, a gitleaks JSON report or the output
// of git-secrets. It returns
// one alert per finding it can act on and, for the others, why not; it
// fails only when the document as a whole cannot be read. files says where
// the scanned files are, for reports that hide their secrets.
func ParseDocument(data []byte, now time.Time, files SourceFiles) (Report, error) {
	switch format := Recognise(data); format {
	case FormatAlert:
		a, err := alert.Parse(data, now)
		if err != nil {
			return Report{}, err
		}
		return Report{Alerts: []alert.Alert{a}}, nil
	case FormatEventBridge:
		return ParseEventBridge(data, now)
	case FormatTruffleHog:
		return ParseTruffleHog(data, now)
	case FormatGitleaks:
		return ParseGitleaks(data, now, files)
	case FormatGitSecrets:
		return ParseGitSecrets(data, now)
	default:
		return Report{}, fmt.Errorf("%w: this looks like %s; give a stanch Alert (docs/alerts.md), an EventBridge event from GuardDuty or AWS Health, truffleHog JSON lines, a gitleaks JSON report or git-secrets' output", ErrUnsupportedFormat, format)
	}
}

// Formats Recognise tells apart.
const (
	FormatAlert       = "a stanch Alert"
	FormatGitHub      = "a GitHub secret_scanning_alert webhook"
	FormatEventBridge = "an EventBridge event (GuardDuty or AWS Health)"
	FormatSNS         = "an SNS message"
	FormatTruffleHog  = "truffleHog JSON output"
	FormatGitleaks    = "a gitleaks JSON report"
	FormatGitSecrets  = "git-secrets output"
	FormatUnknown     = "an unrecognised document"
)

// Recognise names the format of a payload by its distinctive top-level
// fields, without trusting or fully decoding it.
func Recognise(data []byte) string {
	trimmed := strings.TrimSpace(string(data))
	if strings.HasPrefix(trimmed, "[") {
		var arr []map[string]json.RawMessage
		switch {
		case json.Unmarshal(data, &arr) != nil || len(arr) == 0:
		case has(arr[0], "RuleID"):
			return FormatGitleaks
		case has(arr[0], "detail-type"):
			return FormatEventBridge
		}
		return FormatUnknown
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		// truffleHog writes one JSON object per line, and its own log
		// lines are often mixed in (2>&1).
		if looksLikeTruffleHog(trimmed) {
			return FormatTruffleHog
		}
		if looksLikeGitSecrets(trimmed) {
			return FormatGitSecrets
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
	case has(obj, "DetectorName") && has(obj, "SourceMetadata"), isTruffleHogLog(obj):
		return FormatTruffleHog
	}
	return FormatUnknown
}

func has(m map[string]json.RawMessage, key string) bool {
	_, ok := m[key]
	return ok
}

// looksLikeTruffleHog reports whether some line of text is a truffleHog
// finding or one of its JSON log lines.
func looksLikeTruffleHog(text string) bool {
	for line := range strings.Lines(text) {
		var obj map[string]json.RawMessage
		if json.Unmarshal([]byte(line), &obj) != nil {
			continue
		}
		if has(obj, "DetectorName") || isTruffleHogLog(obj) {
			return true
		}
	}
	return false
}

// isTruffleHogLog reports whether obj is one of truffleHog's JSON log
// lines: {"level":"info-0","ts":…,"logger":"trufflehog","msg":…}.
func isTruffleHogLog(obj map[string]json.RawMessage) bool {
	var logger string
	return has(obj, "msg") && has(obj, "level") && json.Unmarshal(obj["logger"], &logger) == nil && strings.HasPrefix(logger, "trufflehog")
}
