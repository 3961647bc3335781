package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/stretchr/testify/require"
)

const (
	slackToken  = "xoxb-1111-2222-sandboxtoken"
	incidents   = "C0SECINCID"
	slackSecret = "8f742231b10e8888abcd99yyyzzz85a5"
	alice       = "U0ALICE01"
	bob         = "U0BOB0001"
	leads       = "S0LEADS01"
)

const slackSeed = `
accounts:
  - id: "111122223333"
    users:
      - ` + ResponderSeedUser + `
slack:
  token: xoxb-1111-2222-sandboxtoken
  channels:
    - {id: C0SECINCID, name: sec-incidents}
    - {id: C0GENERAL1, name: general}
  users:
    - {id: U0ALICE01, name: alice, real_name: Alice Liddell, display_name: alice}
    - {id: U0BOB0001, name: bob, real_name: Bob}
  usergroups:
    - {id: S0LEADS01, handle: security-leads, users: [U0ALICE01, U0BOB0001]}
`

type slackFixture struct {
	sb  *Sandbox
	url string
	api *slack.Client
}

func setupSlack(t *testing.T) slackFixture {
	t.Helper()
	seed, err := ParseSeed("slack.yaml", []byte(slackSeed))
	require.NoError(t, err)
	sb, err := New(seed, Options{})
	require.NoError(t, err)
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	return slackFixture{sb: sb, url: srv.URL, api: slack.New(slackToken, slack.OptionAPIURL(srv.URL+"/slack/api/"))}
}

func approvalBlocks() []slack.Block {
	return []slack.Block{
		slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, "*Leaked key* AKIA…", false, false), nil, nil),
		slack.NewActionBlock("approval",
			slack.NewButtonBlockElement("approve", "tok-approve", slack.NewTextBlockObject(slack.PlainTextType, "Approve", false, false)).WithStyle(slack.StylePrimary),
			slack.NewButtonBlockElement("deny", "tok-deny", slack.NewTextBlockObject(slack.PlainTextType, "Deny", false, false)).WithStyle(slack.StyleDanger)),
	}
}

func TestSlackPostAndHistory(t *testing.T) {
	t.Parallel()
	f := setupSlack(t)
	ctx := context.Background()

	md := slack.SlackMetadata{EventType: "stanch_run", EventPayload: map[string]any{"run_id": "run-1", "key": "notify"}}
	channel, ts, err := f.api.PostMessageContext(ctx, "#sec-incidents",
		slack.MsgOptionText("Leaked key", false), slack.MsgOptionBlocks(approvalBlocks()...), slack.MsgOptionMetadata(md))
	require.NoError(t, err)
	require.Equal(t, incidents, channel)
	require.Regexp(t, `^\d{10}\.\d{6}$`, ts)

	hist, err := f.api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{ChannelID: incidents, IncludeAllMetadata: true})
	require.NoError(t, err)
	require.False(t, hist.HasMore)
	require.Len(t, hist.Messages, 1)
	m := hist.Messages[0]
	require.Equal(t, "message", m.Type)
	require.Equal(t, ts, m.Timestamp)
	require.Equal(t, "Leaked key", m.Text)
	require.Equal(t, slackBotID, m.BotID)
	require.Equal(t, "stanch_run", m.Metadata.EventType)
	require.Equal(t, "run-1", m.Metadata.EventPayload["run_id"])
	require.Len(t, m.Blocks.BlockSet, 2)
	actions, ok := m.Blocks.BlockSet[1].(*slack.ActionBlock)
	require.True(t, ok, "second block is %T", m.Blocks.BlockSet[1])
	require.Len(t, actions.Elements.ElementSet, 2)
	require.Equal(t, "tok-approve", actions.Elements.ElementSet[0].(*slack.ButtonBlockElement).Value)

	// Without include_all_metadata Slack leaves metadata out.
	hist, err = f.api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{ChannelID: incidents})
	require.NoError(t, err)
	require.Empty(t, hist.Messages[0].Metadata.EventType)

	stored := f.sb.SlackMessages("sec-incidents")
	require.Len(t, stored, 1)
	require.Equal(t, SlackMessage{Channel: incidents, TS: ts, Text: "Leaked key", Blocks: stored[0].Blocks,
		Metadata: &SlackMetadata{EventType: "stanch_run", EventPayload: map[string]any{"run_id": "run-1", "key": "notify"}},
		User:     slackBotUser, BotID: slackBotID, AppID: slackAppID}, stored[0])
	require.Contains(t, string(stored[0].Blocks), `"action_id":"approve"`)
	require.Equal(t, 1, f.sb.EffectiveCount("chat.postMessage"))
	require.Equal(t, 2, f.sb.Count("conversations.history"))
}

func TestSlackHistoryPaging(t *testing.T) {
	t.Parallel()
	f := setupSlack(t)
	ctx := context.Background()

	const n = 130
	var posted []string
	for i := range n {
		_, ts, err := f.api.PostMessageContext(ctx, incidents, slack.MsgOptionText(fmt.Sprintf("message %d", i), false),
			slack.MsgOptionMetadata(slack.SlackMetadata{EventType: "stanch_run", EventPayload: map[string]any{"i": i}}))
		require.NoError(t, err)
		if len(posted) > 0 {
			require.Greater(t, ts, posted[len(posted)-1], "ts values increase")
		}
		posted = append(posted, ts)
	}

	// The default page is 100 messages, newest first.
	var seen []string
	var pages int
	cursor := ""
	for {
		resp, err := f.api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{ChannelID: incidents, Cursor: cursor, IncludeAllMetadata: true})
		require.NoError(t, err)
		pages++
		for _, m := range resp.Messages {
			seen = append(seen, m.Timestamp)
			require.Equal(t, "stanch_run", m.Metadata.EventType)
		}
		require.Equal(t, resp.HasMore, resp.ResponseMetaData.NextCursor != "")
		if !resp.HasMore {
			break
		}
		require.Len(t, resp.Messages, 100)
		cursor = resp.ResponseMetaData.NextCursor
	}
	require.Equal(t, 2, pages)
	require.Len(t, seen, n)
	for i, ts := range seen {
		require.Equal(t, posted[n-1-i], ts)
	}

	// oldest is exclusive and latest too, unless inclusive.
	resp, err := f.api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{ChannelID: incidents, Oldest: posted[119], Limit: 5})
	require.NoError(t, err)
	require.Len(t, resp.Messages, 5)
	require.Equal(t, posted[129], resp.Messages[0].Timestamp)
	require.True(t, resp.HasMore)
	resp, err = f.api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{ChannelID: incidents, Oldest: posted[119], Cursor: resp.ResponseMetaData.NextCursor, Limit: 5})
	require.NoError(t, err)
	require.Len(t, resp.Messages, 5)
	require.Equal(t, posted[120], resp.Messages[4].Timestamp)
	require.False(t, resp.HasMore)
	resp, err = f.api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{ChannelID: incidents,
		Oldest: posted[10], Latest: posted[12], Inclusive: true})
	require.NoError(t, err)
	require.Len(t, resp.Messages, 3)

	_, err = f.api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{ChannelID: incidents, Cursor: "bm90IGEgY3Vyc29y"})
	require.EqualError(t, err, "invalid_cursor")
}

func TestSlackUpdateAndEphemeral(t *testing.T) {
	t.Parallel()
	f := setupSlack(t)
	ctx := context.Background()

	_, ts, err := f.api.PostMessageContext(ctx, incidents, slack.MsgOptionText("Waiting for approval", false), slack.MsgOptionBlocks(approvalBlocks()...),
		slack.MsgOptionMetadata(slack.SlackMetadata{EventType: "stanch_run", EventPayload: map[string]any{"run_id": "run-2"}}))
	require.NoError(t, err)

	decided := slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, "Approved by <@U0ALICE01>", false, false), nil, nil)
	channel, uts, text, err := f.api.UpdateMessageContext(ctx, incidents, ts, slack.MsgOptionText("Approved", false), slack.MsgOptionBlocks(decided))
	require.NoError(t, err)
	require.Equal(t, []string{incidents, ts, "Approved"}, []string{channel, uts, text})

	msgs := f.sb.SlackMessages(incidents)
	require.Len(t, msgs, 1)
	require.Equal(t, "Approved", msgs[0].Text)
	require.NotContains(t, string(msgs[0].Blocks), "approve")
	require.Contains(t, string(msgs[0].Blocks), "Approved by")
	require.NotEmpty(t, msgs[0].EditedTS)
	require.Equal(t, "run-2", msgs[0].Metadata.EventPayload["run_id"], "metadata is kept when an update leaves it out")

	_, _, _, err = f.api.UpdateMessageContext(ctx, incidents, "1700000000.000001", slack.MsgOptionText("x", false))
	require.EqualError(t, err, "message_not_found")
	require.Equal(t, 1, f.sb.EffectiveCount("chat.update"))
	require.Equal(t, 2, f.sb.Count("chat.update"))

	ets, err := f.api.PostEphemeralContext(ctx, "sec-incidents", bob, slack.MsgOptionText("You are not an approver.", false))
	require.NoError(t, err)
	require.Regexp(t, `^\d{10}\.\d{6}$`, ets)
	require.Equal(t, []SlackEphemeral{{Channel: incidents, User: bob, TS: ets, Text: "You are not an approver."}}, f.sb.SlackEphemerals())
	_, err = f.api.PostEphemeralContext(ctx, incidents, "U0NOBODY1", slack.MsgOptionText("hello", false))
	require.EqualError(t, err, "user_not_in_channel")
	require.Equal(t, 1, f.sb.EffectiveCount("chat.postEphemeral"))
	require.Len(t, f.sb.SlackMessages(incidents), 1, "ephemeral messages are not in the channel")
}

func TestSlackThreads(t *testing.T) {
	t.Parallel()
	f := setupSlack(t)
	ctx := context.Background()

	_, parent, err := f.api.PostMessageContext(ctx, incidents, slack.MsgOptionText("Incident", false))
	require.NoError(t, err)
	_, r1, err := f.api.PostMessageContext(ctx, incidents, slack.MsgOptionText("step 1 done", false), slack.MsgOptionTS(parent),
		slack.MsgOptionMetadata(slack.SlackMetadata{EventType: "stanch_run", EventPayload: map[string]any{"key": "step-1"}}))
	require.NoError(t, err)
	_, r2, err := f.api.PostMessageContext(ctx, incidents, slack.MsgOptionText("step 2 done", false), slack.MsgOptionTS(r1))
	require.NoError(t, err)

	hist, err := f.api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{ChannelID: incidents})
	require.NoError(t, err)
	require.Len(t, hist.Messages, 1, "replies are not top-level messages")
	require.Equal(t, parent, hist.Messages[0].ThreadTimestamp)
	require.Equal(t, 2, hist.Messages[0].ReplyCount)
	require.Equal(t, r2, hist.Messages[0].LatestReply)

	msgs, more, _, err := f.api.GetConversationRepliesContext(ctx, &slack.GetConversationRepliesParameters{ChannelID: incidents, Timestamp: parent, IncludeAllMetadata: true})
	require.NoError(t, err)
	require.False(t, more)
	require.Len(t, msgs, 3)
	require.Equal(t, []string{parent, r1, r2}, []string{msgs[0].Timestamp, msgs[1].Timestamp, msgs[2].Timestamp})
	require.Equal(t, parent, msgs[2].ThreadTimestamp, "a reply to a reply joins the thread")
	require.Equal(t, "step-1", msgs[1].Metadata.EventPayload["key"])

	msgs, more, next, err := f.api.GetConversationRepliesContext(ctx, &slack.GetConversationRepliesParameters{ChannelID: incidents, Timestamp: parent, Limit: 2})
	require.NoError(t, err)
	require.True(t, more)
	require.Len(t, msgs, 2)
	msgs, more, _, err = f.api.GetConversationRepliesContext(ctx, &slack.GetConversationRepliesParameters{ChannelID: incidents, Timestamp: parent, Limit: 2, Cursor: next})
	require.NoError(t, err)
	require.False(t, more)
	require.Equal(t, r2, msgs[0].Timestamp)

	all := f.sb.SlackMessages("#sec-incidents")
	require.Len(t, all, 3)
	require.Equal(t, []string{"", parent, parent}, []string{all[0].ThreadTS, all[1].ThreadTS, all[2].ThreadTS})

	_, _, err = f.api.PostMessageContext(ctx, incidents, slack.MsgOptionText("x", false), slack.MsgOptionTS("1700000000.000001"))
	require.EqualError(t, err, "thread_not_found")
}

func TestSlackDirectory(t *testing.T) {
	t.Parallel()
	f := setupSlack(t)
	ctx := context.Background()

	members, err := f.api.GetUserGroupMembersContext(ctx, leads)
	require.NoError(t, err)
	require.Equal(t, []string{alice, bob}, members)
	_, err = f.api.GetUserGroupMembersContext(ctx, "S0NOSUCH1")
	require.EqualError(t, err, "no_such_subteam")

	u, err := f.api.GetUserInfoContext(ctx, alice)
	require.NoError(t, err)
	require.Equal(t, alice, u.ID)
	require.Equal(t, "alice", u.Name)
	require.Equal(t, "Alice Liddell", u.RealName)
	require.Equal(t, "Alice Liddell", u.Profile.RealName)
	require.Equal(t, "alice", u.Profile.DisplayName)
	_, err = f.api.GetUserInfoContext(ctx, "U0NOBODY1")
	require.EqualError(t, err, "user_not_found")
	users, err := f.api.GetUsersInfoContext(ctx, alice, bob)
	require.NoError(t, err)
	require.Len(t, *users, 2)

	chans, next, err := f.api.GetConversationsContext(ctx, &slack.GetConversationsParameters{Limit: 1})
	require.NoError(t, err)
	require.Equal(t, "sec-incidents", chans[0].Name)
	require.NotEmpty(t, next)
	chans, next, err = f.api.GetConversationsContext(ctx, &slack.GetConversationsParameters{Limit: 1, Cursor: next})
	require.NoError(t, err)
	require.Equal(t, "C0GENERAL1", chans[0].ID)
	require.Empty(t, next)

	auth, err := f.api.AuthTestContext(ctx)
	require.NoError(t, err)
	require.Equal(t, slackBotUser, auth.UserID)
}

func TestSlackErrors(t *testing.T) {
	t.Parallel()
	f := setupSlack(t)
	ctx := context.Background()

	wrong := slack.New("xoxb-wrong", slack.OptionAPIURL(f.url+"/slack/api/"))
	_, _, err := wrong.PostMessageContext(ctx, incidents, slack.MsgOptionText("hi", false))
	require.EqualError(t, err, "invalid_auth")
	var se slack.SlackErrorResponse
	require.True(t, errors.As(err, &se))
	_, err = slack.New("", slack.OptionAPIURL(f.url+"/slack/api/")).GetUserInfoContext(ctx, alice)
	require.EqualError(t, err, "invalid_auth")

	_, _, err = f.api.PostMessageContext(ctx, "#no-such-channel", slack.MsgOptionText("hi", false))
	require.EqualError(t, err, "channel_not_found")
	// conversations.* take ids only, as Slack's do.
	_, err = f.api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{ChannelID: "sec-incidents"})
	require.EqualError(t, err, "channel_not_found")
	_, _, err = f.api.PostMessageContext(ctx, incidents)
	require.EqualError(t, err, "no_text")
	_, _, err = f.api.PostMessageContext(ctx, incidents, slack.MsgOptionText("hi", false),
		slack.MsgOptionWorkObjectMetadata(slack.WorkObjectMetadata{}))
	require.EqualError(t, err, "invalid_metadata_format")
	require.Zero(t, f.sb.EffectiveCount("chat.postMessage"))
	require.Equal(t, 4, f.sb.Count("chat.postMessage"))

	var out struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	resp, err := http.Post(f.url+"/slack/api/chat.unknownMethod", "application/x-www-form-urlencoded", strings.NewReader("token="+slackToken))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	require.Equal(t, "unknown_method", out.Error)

	for _, c := range f.sb.Calls() {
		require.NotContains(t, c.Params, "token", "the call log never holds the token")
	}
}

func TestSlackJSONBody(t *testing.T) {
	t.Parallel()
	f := setupSlack(t)
	body := `{"channel":"C0SECINCID","text":"from JSON","blocks":[{"type":"divider"}],"metadata":{"event_type":"e","event_payload":{"a":1}}}`
	req, err := http.NewRequest(http.MethodPost, f.url+"/slack/api/chat.postMessage", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("Authorization", "Bearer "+slackToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out struct {
		OK      bool   `json:"ok"`
		Channel string `json:"channel"`
		TS      string `json:"ts"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	require.True(t, out.OK)
	msgs := f.sb.SlackMessages(incidents)
	require.Len(t, msgs, 1)
	require.JSONEq(t, `[{"type":"divider"}]`, string(msgs[0].Blocks))
	require.Equal(t, float64(1), msgs[0].Metadata.EventPayload["a"])

	// /_sandbox/state shows the workspace, never the token.
	st, err := http.Get(f.url + "/_sandbox/state")
	require.NoError(t, err)
	defer st.Body.Close()
	raw, err := io.ReadAll(st.Body)
	require.NoError(t, err)
	require.NotContains(t, string(raw), slackToken)
	var view StateView
	require.NoError(t, json.Unmarshal(raw, &view))
	require.NotNil(t, view.Slack)
	require.Equal(t, "sec-incidents", view.Slack.Channels[0].Name)
	require.Equal(t, "from JSON", view.Slack.Channels[0].Messages[0].Text)
}

func TestSlackRateLimits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("knob", func(t *testing.T) {
		t.Parallel()
		f := setupSlack(t)
		f.sb.SlackRateLimit("chat.postMessage", 2, time.Second)
		for range 2 {
			_, _, err := f.api.PostMessageContext(ctx, incidents, slack.MsgOptionText("hi", false))
			var rl *slack.RateLimitedError
			require.True(t, errors.As(err, &rl), "got %v", err)
			require.Equal(t, time.Second, rl.RetryAfter)
		}
		// Other methods are not limited.
		_, err := f.api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{ChannelID: incidents})
		require.NoError(t, err)
		_, _, err = f.api.PostMessageContext(ctx, incidents, slack.MsgOptionText("hi", false))
		require.NoError(t, err)
		require.Equal(t, 3, f.sb.Count("chat.postMessage"))
		require.Equal(t, 1, f.sb.EffectiveCount("chat.postMessage"))
		statuses := []int{}
		for _, c := range f.sb.Calls() {
			if c.Action == "chat.postMessage" {
				statuses = append(statuses, c.Status)
			}
		}
		require.Equal(t, []int{429, 429, 200}, statuses)
	})

	t.Run("slack-go retries after Retry-After", func(t *testing.T) {
		t.Parallel()
		f := setupSlack(t)
		f.sb.SlackRateLimit("chat.postMessage", 1, time.Second)
		api := slack.New(slackToken, slack.OptionAPIURL(f.url+"/slack/api/"), slack.OptionRetry(1))
		start := time.Now()
		_, _, err := api.PostMessageContext(ctx, incidents, slack.MsgOptionText("hi", false))
		require.NoError(t, err)
		require.GreaterOrEqual(t, time.Since(start), time.Second)
		require.Len(t, f.sb.SlackMessages(incidents), 1)
	})

	t.Run("faults", func(t *testing.T) {
		t.Parallel()
		f := setupSlack(t)
		f.sb.SetFault("slack", Fault{ThrottleRate: 1})
		_, err := f.api.GetUserGroupMembersContext(ctx, leads)
		var rl *slack.RateLimitedError
		require.True(t, errors.As(err, &rl), "got %v", err)
		require.Equal(t, time.Second, rl.RetryAfter)

		f.sb.SetFault("slack", Fault{ErrorRate: 1})
		_, _, err = f.api.PostMessageContext(ctx, incidents, slack.MsgOptionText("hi", false))
		var sc slack.StatusCodeError
		require.True(t, errors.As(err, &sc), "got %v", err)
		require.Equal(t, http.StatusServiceUnavailable, sc.Code)

		f.sb.SetFault("slack", Fault{})
		_, _, err = f.api.PostMessageContext(ctx, incidents, slack.MsgOptionText("hi", false))
		require.NoError(t, err)
	})
}

func TestSignSlack(t *testing.T) {
	t.Parallel()
	// The example of Slack's "Verifying requests from Slack" guide.
	body := "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
	ts, sig := SignSlack(slackSecret, time.Unix(1531420618, 0), []byte(body))
	require.Equal(t, "1531420618", ts)
	require.Equal(t, "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503", sig)
}

func TestSlackClick(t *testing.T) {
	t.Parallel()
	type got struct {
		cb        slack.InteractionCallback
		verifyErr error
		ct        string
	}
	gotc := make(chan got, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var g got
		g.ct = r.Header.Get("Content-Type")
		body, _ := io.ReadAll(r.Body)
		sv, err := slack.NewSecretsVerifier(r.Header, slackSecret)
		if err == nil {
			_, _ = sv.Write(body)
			err = sv.Ensure()
		}
		g.verifyErr = err
		r.Body = io.NopCloser(bytes.NewReader(body))
		g.cb, err = slack.InteractionCallbackParse(r)
		if g.verifyErr == nil {
			g.verifyErr = err
		}
		gotc <- g
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	ctx := context.Background()

	click := SlackClick{URL: srv.URL, SigningSecret: slackSecret, User: alice, UserName: "alice", Channel: incidents, ChannelName: "sec-incidents",
		MessageTS: "1732838400.000100", ActionID: "approve", BlockID: "approval", Value: "tok-approve", ButtonText: "Approve"}
	resp, err := click.Send(ctx, nil)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	g := <-gotc
	require.NoError(t, g.verifyErr)
	require.Equal(t, "application/x-www-form-urlencoded", g.ct)
	cb := g.cb
	require.Equal(t, slack.InteractionTypeBlockActions, cb.Type)
	require.Equal(t, alice, cb.User.ID)
	require.Equal(t, "alice", cb.User.Name)
	require.Equal(t, incidents, cb.Channel.ID)
	require.Equal(t, "1732838400.000100", cb.Container.MessageTs)
	require.Equal(t, incidents, cb.Container.ChannelID)
	require.Equal(t, "message", cb.Container.Type)
	require.Equal(t, "1732838400.000100", cb.Message.Timestamp)
	require.Equal(t, slackDefaultTeam, cb.Team.ID)
	require.NotEmpty(t, cb.TriggerID)
	require.True(t, strings.HasPrefix(cb.ResponseURL, "https://hooks.slack.com/actions/"))
	require.Len(t, cb.ActionCallback.BlockActions, 1)
	a := cb.ActionCallback.BlockActions[0]
	require.Equal(t, "approve", a.ActionID)
	require.Equal(t, "approval", a.BlockID)
	require.Equal(t, "tok-approve", a.Value)
	require.Equal(t, "Approve", a.Text.Text)

	// A wrong secret or a stale click does not verify.
	wrong := click
	wrong.SigningSecret = "another-secret"
	resp, err = wrong.Send(ctx, srv.Client())
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.ErrorIs(t, (<-gotc).verifyErr, slack.ErrInvalidSignature)
	stale := click
	stale.At = time.Now().Add(-10 * time.Minute)
	resp, err = stale.Send(ctx, nil)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.ErrorIs(t, (<-gotc).verifyErr, slack.ErrExpiredTimestamp)

	_, err = SlackClick{URL: srv.URL, SigningSecret: slackSecret}.Request(ctx)
	require.Error(t, err)
}

func TestSlackSeedValidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, slack, want string }{
		{"no token", "slack: {channels: [{id: C0AAAA, name: a}]}", "slack: token is empty"},
		{"channel id", "slack: {token: t, channels: [{id: X0AAAA, name: a}]}", `slack: channel id "X0AAAA" is not C… or G… (capital letters and digits)`},
		{"hash in name", "slack: {token: t, channels: [{id: C0AAAA, name: '#a'}]}", `slack: channel C0AAAA: name "#a" must be given without '#' or spaces`},
		{"unknown member", "slack: {token: t, usergroups: [{id: S0AAAA, handle: h, users: [U0NOBODY]}]}", `slack: usergroup S0AAAA (h): member "U0NOBODY" is not a seeded user`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			accounts := slackSeed[:strings.Index(slackSeed, "slack:")]
			_, err := ParseSeed("slack.yaml", []byte(accounts+tc.slack))
			require.EqualError(t, err, "seed slack.yaml: "+tc.want)
		})
	}
}

func TestServePrintsSlackEnvironment(t *testing.T) {
	t.Parallel()
	seed, err := ParseSeed("seed.yaml", []byte(slackSeed))
	require.NoError(t, err)
	url, out := serveOutput(t, seed)
	require.Contains(t, out, "export STANCH_SLACK_API_URL="+url+"/slack/api/\n")
	require.Contains(t, out, "export STANCH_SLACK_TOKEN="+seed.Slack.Token+"\n")
}

// SlackDelay slows one method only; a caller that gives up is logged as
// having gone away.
func TestSlackDelayOneMethod(t *testing.T) {
	t.Parallel()
	f := setupSlack(t)
	f.sb.SlackDelay("users.info", time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := f.api.GetUserInfoContext(ctx, alice)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	_, err = f.api.AuthTestContext(context.Background())
	require.NoError(t, err, "other methods answer at once")
	require.Eventually(t, func() bool {
		for _, c := range f.sb.Calls() {
			if c.Action == "users.info" {
				return c.Status == 499
			}
		}
		return false
	}, 5*time.Second, 10*time.Millisecond, "the abandoned call is logged")

	f.sb.SlackDelay("users.info", 0)
	u, err := f.api.GetUserInfoContext(context.Background(), alice)
	require.NoError(t, err)
	require.Equal(t, "alice", u.Profile.DisplayName)
}
