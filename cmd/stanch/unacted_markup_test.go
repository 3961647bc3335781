package main

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	slackact "github.com/stanchhq/stanch/actions/slack"
	"github.com/stanchhq/stanch/runner"
)

// The post about an alert that started no run shows what the alert said
// as text: a repository name or a reason carrying Slack markup neither
// mentions everyone nor becomes a link.
func TestUnactedPostShowsMarkupAsText(t *testing.T) {
	t.Parallel()
	e := newE2EWithSeed(t, slackSeed(t))
	client := slackact.NewClient(slackact.Options{Token: slackToken, APIURL: e.url + "/slack/api/"})
	poster := &unactedSlack{client: client, channel: slackChannel}
	_, _, err := poster.Post(context.Background(), runner.Unacted{DedupKey: "github:acme/x#1<!channel>", Source: "github",
		Reference: "acme/<!here>#1", Reason: "GitHub answered 404 <https://evil.example/approve|Click here to approve>"})
	require.NoError(t, err)
	msgs := e.sb.SlackMessages(slackChannel)
	require.Len(t, msgs, 1)
	require.Empty(t, msgs[0].Blocks, "the post is text alone")
	for _, bad := range []string{"<!channel>", "<!here>", "<https://evil.example", "|Click here to approve>"} {
		require.NotContains(t, msgs[0].Text, bad)
	}
	require.True(t, strings.Contains(msgs[0].Text, "&lt;!channel&gt;"), msgs[0].Text)
}
