package slack

import (
	"encoding/json"

	slackapi "github.com/slack-go/slack"

	"github.com/stanchhq/stanch/alert"
)

// redacted is m as it may leave stanch: its fallback text and every text in
// its blocks redacted. The renderers redact what they put in; this is the
// last place before Slack, whatever rendered the message. Button values
// and ids are stanch's own and stay as they are.
func redacted(m Message) Message {
	m.Text = alert.RedactText(m.Text)
	if len(m.Blocks) == 0 {
		return m
	}
	data, err := json.Marshal(slackapi.Blocks{BlockSet: m.Blocks})
	if err != nil {
		return m
	}
	var doc any
	if json.Unmarshal(data, &doc) != nil {
		return m
	}
	changed := false
	var walk func(key string, v any) any
	walk = func(key string, v any) any {
		switch t := v.(type) {
		case string:
			switch key {
			case "value", "action_id", "block_id", "type":
				return t
			}
			if r := alert.RedactText(t); r != t {
				changed = true
				return r
			}
		case []any:
			for i := range t {
				t[i] = walk(key, t[i])
			}
		case map[string]any:
			for k, c := range t {
				t[k] = walk(k, c)
			}
		}
		return v
	}
	doc = walk("", doc)
	if !changed {
		return m
	}
	if data, err = json.Marshal(doc); err != nil {
		return Message{Channel: m.Channel, ThreadTS: m.ThreadTS, Text: m.Text}
	}
	var blocks slackapi.Blocks
	if err := json.Unmarshal(data, &blocks); err != nil {
		// Better no blocks than blocks that may hold a secret.
		return Message{Channel: m.Channel, ThreadTS: m.ThreadTS, Text: m.Text}
	}
	m.Blocks = blocks.BlockSet
	return m
}
