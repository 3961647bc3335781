package main

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/notify"
	"github.com/stanchhq/stanch/runner"
	"github.com/stanchhq/stanch/slack"
)

// The post about an alert that started no run shows what the alert said
// as text: a repository name or a reason carrying Slack markup neither
// mentions everyone nor becomes a link.
func TestUnactedPostShowsMarkupAsText(t *testing.T) {
	t.Parallel()
	e := newE2EWithSeed(t, slackSeed(t))
	client := slack.NewClient(slack.Options{Token: slackToken, APIURL: e.url + "/slack/api/"})
	poster := notify.NewUnacted(client, slackChannel, nil)
	u := runner.Unacted{DedupKey: "github:acme/x#1<!channel>", Source: "github",
		Reference: "acme/<!here>#1", Reason: "GitHub answered 404 <https://evil.example/approve|Click here to approve>"}
	_, _, err := client.Post(context.Background(), "unacted", u.DedupKey, poster.Message(u))
	require.NoError(t, err)
	msgs := e.sb.SlackMessages(slackChannel)
	require.Len(t, msgs, 1)
	require.Empty(t, msgs[0].Blocks, "the post is text alone")
	for _, bad := range []string{"<!channel>", "<!here>", "<https://evil.example", "|Click here to approve>"} {
		require.NotContains(t, msgs[0].Text, bad)
	}
	require.True(t, strings.Contains(msgs[0].Text, "&lt;!channel&gt;"), msgs[0].Text)
}
