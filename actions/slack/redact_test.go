package slack

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
)

// Whatever rendered a message, the client redacts it before it leaves:
// text, every text in the blocks (a link's URL too), and the ephemeral
// text; button values, which are stanch's signed tokens, stay.
func TestClientRedactsWhatLeaves(t *testing.T) {
	rc := &recorder{}
	c := slacktestClient(t, rc)
	secret := plant.NoDigit
	link := "https://ci.example.com/job/7?AWS_SECRET_ACCESS_KEY=" + url.QueryEscape(secret)
	tokens, err := NewTokens([]byte("0123456789abcdef0123"))
	require.NoError(t, err)
	value := tokens.Sign(ButtonValue{RunID: "run_01TEST", StepID: "delete", Decision: "approved"})
	m := Message{Channel: "#sec-incidents", Text: "leaked " + secret, Blocks: []slackapi.Block{
		slackapi.NewHeaderBlock(plain("header " + secret)),
		slackapi.NewSectionBlock(mrkdwn("<"+link+"|where>"), []*slackapi.TextBlockObject{mrkdwn("*Field*\n" + secret)}, nil),
		slackapi.NewActionBlock("stanch_approval", slackapi.NewButtonBlockElement(ActionApprove, value, plain("Approve "+secret))),
		slackapi.NewContextBlock("", mrkdwn("context "+secret)),
	}}
	_, _, err = c.Post(context.Background(), "run_01TEST", "test", m)
	require.NoError(t, err)
	require.NoError(t, c.Update(context.Background(), "C0SECINCIDENTS", "1764300000.000001", m))
	require.Len(t, rc.posts, 1)
	post := rc.posts[0]
	for _, field := range []string{"text", "blocks"} {
		require.NotContains(t, post.Get(field), secret[:16], field)
		require.NotContains(t, post.Get(field), url.QueryEscape(secret)[:16], field)
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
	tokens, err := NewTokens([]byte("0123456789abcdef0123"))
	require.NoError(t, err)
	rep := report()
	rep.Steps[1].Message = "AKIAIOSFODNN7EXAMPLE deactivated"
	step := rep.Steps[4]
	step.Approval = &actions.ApprovalReport{Approvers: []string{"U0ALICE"}, Message: "Delete it?", Deadline: time.Now().Add(time.Hour), OnTimeout: "deny"}
	for _, m := range []Message{Incident(rep, ""), Approval(rep, step, tokens, false)} {
		require.Equal(t, m, redacted(m))
	}
}
