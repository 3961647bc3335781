package render

import (
	"encoding/json"
	"sort"

	slackapi "github.com/slack-go/slack"

	"github.com/stanchhq/stanch/slack"
)

// statusMarks are how step and run statuses look in Slack.
var statusMarks = map[string]string{
	"pending":          "⚪",
	"running":          "🔄",
	"delayed":          "⏲️",
	"waiting_approval": "✋",
	"succeeded":        "✅",
	"failed":           "❌",
	"skipped":          "⏭️",
	"denied":           "🚫",
	"cancelled":        "🚫",
}

func mark(status string) string {
	if m, ok := statusMarks[status]; ok {
		return m
	}
	return "•"
}

// Slack's limits: header text 150 characters, section text 3,000, a
// field 2,000; fallback text is kept short.
const (
	maxHeader  = 150
	maxSection = 3000
	maxField   = 2000
)

func clip(s string, n int) string {
	if len([]rune(s)) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

// escape is slack.Escape: every text from outside goes through it.
func escape(s string) string { return slack.Escape(s) }

func mrkdwn(s string) *slackapi.TextBlockObject {
	return slackapi.NewTextBlockObject(slackapi.MarkdownType, s, false, false)
}

func plain(s string) *slackapi.TextBlockObject {
	return slackapi.NewTextBlockObject(slackapi.PlainTextType, s, false, false)
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func str(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return ""
}

func num(v any) any {
	if f, ok := v.(float64); ok && f == float64(int64(f)) {
		return int64(f)
	}
	if v == nil {
		return 0
	}
	return v
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

// normalise gives outputs the JSON shapes they have after the store, so
// fresh and stored outputs render alike.
func normalise(m map[string]any) map[string]any {
	b, err := json.Marshal(m)
	if err != nil {
		return m
	}
	var out map[string]any
	if json.Unmarshal(b, &out) != nil {
		return m
	}
	return out
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
