package slack

import (
	"encoding/json"
	"regexp"
	"strings"

	slackapi "github.com/slack-go/slack"
)

// PlainText renders a message's blocks as text for a terminal: what
// `stanch demo` prints instead of showing Slack.
func PlainText(m Message) string {
	var b strings.Builder
	for _, blk := range m.Blocks {
		switch blk := blk.(type) {
		case *slackapi.HeaderBlock:
			t := textOf(blk.Text)
			b.WriteString(t + "\n" + strings.Repeat("=", len([]rune(t))) + "\n")
		case *slackapi.SectionBlock:
			if blk.Text != nil {
				b.WriteString(textOf(blk.Text) + "\n")
			}
			for _, f := range blk.Fields {
				b.WriteString(strings.ReplaceAll(textOf(f), "\n", ": ") + "\n")
			}
		case *slackapi.ActionBlock:
			var buttons []string
			for _, e := range blk.Elements.ElementSet {
				if btn, ok := e.(*slackapi.ButtonBlockElement); ok {
					buttons = append(buttons, "[ "+textOf(btn.Text)+" ]")
				}
			}
			b.WriteString(strings.Join(buttons, " ") + "\n")
		case *slackapi.ContextBlock:
			for _, e := range blk.ContextElements.Elements {
				if t, ok := e.(*slackapi.TextBlockObject); ok {
					b.WriteString(textOf(t) + "\n")
				}
			}
		}
	}
	return b.String()
}

var (
	linkRe    = regexp.MustCompile(`<([^|<>]+)\|([^<>]+)>`)
	mentionRe = regexp.MustCompile(`<[@#]([A-Z0-9]+)>`)
	groupRe   = regexp.MustCompile(`<!subteam\^([A-Z0-9]+)>`)
)

func textOf(t *slackapi.TextBlockObject) string {
	if t == nil {
		return ""
	}
	s := linkRe.ReplaceAllString(t.Text, "$2 ($1)")
	s = mentionRe.ReplaceAllString(s, "@$1")
	s = groupRe.ReplaceAllString(s, "@$1")
	s = strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&").Replace(s)
	return s
}

// BlocksJSON is the blocks as Slack receives them.
func BlocksJSON(m Message) string {
	b, _ := json.Marshal(slackapi.Blocks{BlockSet: m.Blocks})
	return string(b)
}

// PlainTextJSON renders blocks as Slack stores them (JSON) as text.
func PlainTextJSON(blocks []byte) (string, error) {
	var bs slackapi.Blocks
	if err := json.Unmarshal(blocks, &bs); err != nil {
		return "", err
	}
	return PlainText(Message{Blocks: bs.BlockSet}), nil
}
