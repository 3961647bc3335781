package slack

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	slackapi "github.com/slack-go/slack"
	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/internal/planted"
	"github.com/stanchhq/stanch/internal/slackfixture"
	"github.com/stanchhq/stanch/internal/testkit"
	"github.com/stanchhq/stanch/slack"
)

// slacktestClient is a client of slack-go's own test server, recording
// posts in rc.
func slacktestClient(t *testing.T, rc *slackfixture.Recorder) *slack.Client {
	t.Helper()
	return slack.NewClient(slack.Options{Token: "xoxb-test", APIURL: rc.Start(t)})
}

func doNotify(t *testing.T, c *slack.Client, attempt int) actions.Result {
	t.Helper()
	return doNotifyWith(t, c, Options{}, attempt)
}

func doNotifyWith(t *testing.T, c *slack.Client, o Options, attempt int) actions.Result {
	t.Helper()
	env := actions.Env{RunID: "run_01TEST", StepID: "tell", Attempt: attempt, Report: func(context.Context) (actions.Report, error) { return slackfixture.Report(), nil }}
	res, err := testkit.RunAction(t, Actions(c, o)[0], env, map[string]any{"channel": "#sec-incidents"})
	require.NoError(t, err)
	return res
}

// The posting path against slack-go's own test server: one message, with
// the run in its metadata, the incident in its blocks, no secret anywhere.
func TestNotifyPostsAgainstSlacktest(t *testing.T) {
	rc := &slackfixture.Recorder{}
	c := slacktestClient(t, rc)
	res := doNotify(t, c, 1)
	require.Equal(t, actions.Done, res.Outcome)
	require.Len(t, rc.Posts, 1)
	post := rc.Posts[0]
	require.Equal(t, "#sec-incidents", post.Get("channel"))
	require.Equal(t, "1764300000.000001", res.Outputs["ts"])
	require.Equal(t, "C0SECINCIDENTS", res.Outputs["channel"])

	var md slackapi.SlackMetadata
	require.NoError(t, json.Unmarshal([]byte(post.Get("metadata")), &md))
	require.Equal(t, slack.MetadataType, md.EventType)
	require.Equal(t, "run_01TEST", md.EventPayload["run_id"])
	require.Equal(t, "notify/tell", md.EventPayload["key"])

	blocks := post.Get("blocks")
	for _, want := range []string{"AKIAIOSFODNN7EXAMPLE", "ci-bot", "acme/payments/config/prod.env:12", "128 event(s) in 2 region(s)", "AKIABACKDOORKEY00001",
		"✅ *deactivate*", "⚪ *delete*", "Findings: persistence 3", "[REDACTED]"} {
		require.Contains(t, blocks, want)
	}
	planted.RequireNone(t, "the post", post.Get("text"), blocks)
	var parsed slackapi.Blocks
	require.NoError(t, json.Unmarshal([]byte(blocks), &parsed), "the blocks are valid Block Kit JSON")
	require.NotEmpty(t, parsed.BlockSet)
}

// A second attempt (the first died after posting) finds the message by its
// metadata and updates it instead of posting again.
func TestNotifyRetryFindsTheFirstPost(t *testing.T) {
	rc := &slackfixture.Recorder{}
	c := slacktestClient(t, rc)
	doNotify(t, c, 1)
	res := doNotify(t, c, 2)
	require.Equal(t, actions.Already, res.Outcome)
	require.Len(t, rc.Posts, 1, "exactly one message")
	require.Equal(t, "1764300000.000001", res.Outputs["ts"])
}

// A 429 is waited out for its Retry-After, then the post goes through.
func TestNotifyHonoursRetryAfter(t *testing.T) {
	rc := &slackfixture.Recorder{Limited: 1}
	api := rc.Start(t)
	c := slack.NewClient(slack.Options{Token: "xoxb-test", APIURL: api})
	start := time.Now()
	res := doNotify(t, c, 1)
	require.Equal(t, actions.Done, res.Outcome)
	require.Len(t, rc.Posts, 1)
	require.GreaterOrEqual(t, time.Since(start), time.Second, "waited for Retry-After")

	// A Retry-After longer than the client waits in place is handed back,
	// so the caller can sleep without holding a worker.
	rc.Limited = 1
	c = slack.NewClient(slack.Options{Token: "xoxb-test", APIURL: api, MaxRetryAfter: 500 * time.Millisecond})
	_, _, err := c.Post(context.Background(), "run_01TEST", "x", slack.Message{Channel: "#sec-incidents", Text: "x"})
	var rl *slack.RateLimited
	require.ErrorAs(t, err, &rl)
	require.Equal(t, time.Second, rl.RetryAfter())
}

func TestNotifyWithoutSlackDoesNothing(t *testing.T) {
	res, err := testkit.RunAction(t, Actions(slack.NewClient(slack.Options{}), Options{})[0], actions.Env{RunID: "r", StepID: "tell", Attempt: 1}, map[string]any{"channel": "#sec-incidents"})
	require.NoError(t, err, "a missing chat token must not stop the response")
	require.Equal(t, actions.NoOp, res.Outcome)
	require.Contains(t, res.Message, "STANCH_SLACK_TOKEN")
}

// The first post already carries the link to the run's incident record,
// made from the run's id and creation time, as the notifier's updates do.
func TestNotifyLinksTheIncidentRecord(t *testing.T) {
	rc := &slackfixture.Recorder{}
	c := slacktestClient(t, rc)
	var asked []string
	link := func(runID string, created time.Time) string {
		asked = append(asked, runID+" "+created.UTC().Format(time.RFC3339))
		return "https://stanch.example.com/reports/./" + runID + "?expires=1767225600&mac=0a1b2c"
	}
	doNotifyWith(t, c, Options{RecordLink: link}, 1)
	require.Len(t, rc.Posts, 1)
	require.Equal(t, []string{"run_01TEST " + slackfixture.Report().StartedAt.UTC().Format(time.RFC3339)}, asked)
	// As Slack's mrkdwn wants it: <url|text>, & as &amp; (JSON-escaped).
	require.Contains(t, rc.Posts[0].Get("blocks"), `\u003chttps://stanch.example.com/reports/./run_01TEST?expires=1767225600\u0026amp;mac=0a1b2c|Incident record\u003e`)
}
