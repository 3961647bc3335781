package render

import (
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/internal/planted"
	"github.com/stanchhq/stanch/internal/slackfixture"
	"github.com/stanchhq/stanch/slack"
)

// Whatever a report carries, however careless the code that made it, no
// message rendered from it shows a planted secret: the incident message
// (with a channel title of its own), each step's line in the thread, the
// approval request as first asked and as escalated, a decided one, and the
// message about an alert that started no run.
func TestRenderedMessagesShowNoPlantedSecret(t *testing.T) {
	t.Parallel()
	tokens, err := slack.NewTokens([]byte("0123456789abcdef0123"))
	require.NoError(t, err)
	rep := slackfixture.LeakyReport()
	messages := map[string]slack.Message{
		"the incident message":                  Incident(rep, ""),
		"the incident message with a title":     Incident(rep, "Leak of "+planted.InTitle),
		"the unacted alert's message":           UnactedAlert("github:acme/api#"+planted.NoDigit, "github", "acme/"+planted.InPath+"#7", "GitHub answered 404 (token "+planted.Random+")"),
		"the unacted alert's message (encoded)": UnactedAlert("manual", "manual", "https://ci.example.com/?token="+url.QueryEscape(planted.InURL), planted.AfterKeyID),
	}
	approvals := 0
	for _, st := range rep.Steps {
		messages["the thread line of "+st.ID] = StepDetail(st)
		if st.Approval != nil {
			messages["the approval of "+st.ID] = Approval(rep, st, tokens, false)
			messages["the escalated approval of "+st.ID] = Approval(rep, st, tokens, true)
			approvals++
		}
	}
	require.Equal(t, 2, approvals, "one waiting, one decided")
	for where, m := range messages {
		require.NotEmpty(t, m.Text, where)
		planted.RequireNone(t, where, m.Text, slack.BlocksJSON(m), slack.PlainText(m))
	}
}
