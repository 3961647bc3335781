package slack_test

import (
	"context"
	"encoding/json"
	"net/url"
	"testing"
	"time"

	slackapi "github.com/slack-go/slack"
	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/alert"
	plant "github.com/stanchhq/stanch/internal/planted"
	"github.com/stanchhq/stanch/internal/slackfixture"
	"github.com/stanchhq/stanch/slack"
	"github.com/stanchhq/stanch/slack/render"
)

func mrkdwn(s string) *slackapi.TextBlockObject {
	return slackapi.NewTextBlockObject(slackapi.MarkdownType, s, false, false)
}

func plain(s string) *slackapi.TextBlockObject {
	return slackapi.NewTextBlockObject(slackapi.PlainTextType, s, false, false)
}

// Whatever rendered a message, the client redacts it before it leaves:
// text, every text in the blocks (a link's URL too), and the ephemeral
// text; button values, which are stanch's signed tokens, stay.
func TestClientRedactsWhatLeaves(t *testing.T) {
	rc := &slackfixture.Recorder{}
	c := slack.NewClient(slack.Options{Token: "xoxb-test", APIURL: rc.Start(t)})
	secret := plant.NoDigit
	link := "https://ci.example.com/job/7?AWS_SECRET_ACCESS_KEY=" + url.QueryEscape(secret)
	tokens, err := slack.NewTokens([]byte("0123456789abcdef0123"))
	require.NoError(t, err)
	value := tokens.Sign(slack.ButtonValue{RunID: "run_01TEST", StepID: "delete", Decision: "approved"})
	m := slack.Message{Channel: "#sec-incidents", Text: "leaked " + secret, Blocks: []slackapi.Block{
		slackapi.NewHeaderBlock(plain("header " + secret)),
		slackapi.NewSectionBlock(mrkdwn("<"+link+"|where>"), []*slackapi.TextBlockObject{mrkdwn("*Field*\n" + secret)}, nil),
		slackapi.NewActionBlock("stanch_approval", slackapi.NewButtonBlockElement(slack.ActionApprove, value, plain("Approve "+secret))),
		slackapi.NewContextBlock("", mrkdwn("context "+secret)),
	}}
	_, _, err = c.Post(context.Background(), "run_01TEST", "test", m)
	require.NoError(t, err)
	require.NoError(t, c.Update(context.Background(), "C0SECINCIDENTS", "1764300000.000001", m))
	require.Len(t, rc.Posts, 1)
	post := rc.Posts[0]
	for _, field := range []string{"text", "blocks"} {
		plant.RequireNone(t, "the post's "+field, post.Get(field))
		require.Contains(t, post.Get(field), alert.Redacted, field)
	}
	var blocks slackapi.Blocks
	require.NoError(t, json.Unmarshal([]byte(post.Get("blocks")), &blocks))
	require.Len(t, blocks.BlockSet, 4)
	btn := blocks.BlockSet[2].(*slackapi.ActionBlock).Elements.ElementSet[0].(*slackapi.ButtonBlockElement)
	require.Equal(t, value, btn.Value, "the button's signed value is left as it is")
	got, err := tokens.Verify(btn.Value)
	require.NoError(t, err)
	require.Equal(t, "delete", got.StepID)
}

// A message with nothing to redact goes as it was rendered.
func TestClientLeavesCleanMessagesAlone(t *testing.T) {
	tokens, err := slack.NewTokens([]byte("0123456789abcdef0123"))
	require.NoError(t, err)
	rep := slackfixture.Report()
	rep.Steps[1].Message = "AKIAIOSFODNN7EXAMPLE deactivated"
	step := rep.Steps[4]
	step.Approval = &actions.ApprovalReport{Approvers: []string{"U0ALICE"}, Message: "Delete it?", Deadline: time.Now().Add(time.Hour), OnTimeout: "deny"}
	for _, m := range []slack.Message{render.Incident(rep, ""), render.Approval(rep, step, tokens, false)} {
		require.Equal(t, m, slack.Redacted(m))
	}
}
