package slack

import (
	"context"
	"errors"
	"fmt"

	slackapi "github.com/slack-go/slack"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/internal/crashpoint"
)

// NotifyParams are slack.notify's parameters.
type NotifyParams struct {
	Channel string `json:"channel" required:"true" doc:"the channel to post in: an id (C…) or a name (#sec-incidents)"`
	Title   string `json:"title" doc:"the message's header (default: what leaked, its id and the severity)"`
}

// NotifyKey is the key under which a notify step's message is known, in
// its metadata and in the run's records.
func NotifyKey(stepID string) string { return "notify/" + stepID }

// Actions returns the Slack actions, posting through c.
func Actions(c *Client) []actions.Action {
	return []actions.Action{notify(c)}
}

func notify(c *Client) actions.Action {
	return actions.New(actions.Definition[NotifyParams]{
		Name: "slack.notify",
		Summary: "Post the run's incident message to a Slack channel, once; stanch then keeps it up to date as the run " +
			"goes on (each step's status, the impact, who approved what) and puts step details in its thread.",
		Outputs: []actions.Output{
			{Name: "channel", Type: "string", Doc: "the channel id of the message"},
			{Name: "ts", Type: "string", Doc: "the message's timestamp (its id in the channel)"},
			{Name: "title", Type: "string", Doc: "the title parameter, kept so that updates show the same header"},
		},
		Permissions: []actions.Permission{
			{Name: "chat:write", Why: "post and update the incident message"},
			{Name: "channels:history", Why: "find a message an interrupted attempt posted, instead of posting twice (groups:history for private channels)"},
			{Name: "channels:read", Why: "find a channel's id from its name (groups:read for private channels)"},
		},
		Example: `- id: tell
  action: slack.notify
  with:
    channel: "#sec-incidents"`,
		PlanFunc: func(ctx context.Context, env actions.Env, in *NotifyParams) (actions.Plan, error) {
			return actions.Plan{
				Summary: fmt.Sprintf("would post the incident message to %s and keep it up to date", in.Channel),
				Calls:   []actions.Call{{Service: "slack", Operation: "chat.postMessage", Params: map[string]any{"channel": in.Channel}, Mutates: true}},
			}, nil
		},
		DoFunc: func(ctx context.Context, env actions.Env, in *NotifyParams) (actions.Result, error) {
			return c.notify(ctx, env, in)
		},
	})
}

func (c *Client) notify(ctx context.Context, env actions.Env, in *NotifyParams) (actions.Result, error) {
	if !c.Configured() {
		// Containment must not stop for want of a chat token; the outcome
		// says nothing was posted, and stanch serve warns at startup.
		env.Log().Warn("slack.notify skipped: Slack is not configured")
		return actions.Result{Outcome: actions.NoOp, Message: "nothing posted: " + ErrNotConfigured.Error()}, nil
	}
	if env.Report == nil {
		return actions.Result{}, actions.Permanentf("slack.notify reports on a run and has no run to report on")
	}
	rep, err := env.Report(ctx)
	if err != nil {
		return actions.Result{}, actions.Retryable(fmt.Errorf("read the run to report: %w", err))
	}
	m := Incident(rep, in.Title)
	m.Channel = in.Channel
	key := NotifyKey(env.StepID)
	done := func(outcome actions.Outcome, channel, ts, how string) (actions.Result, error) {
		return actions.Result{Outcome: outcome, Message: fmt.Sprintf("incident message %s in %s", how, in.Channel),
			Outputs: map[string]any{"channel": channel, "ts": ts, "title": in.Title}}, nil
	}
	// An earlier attempt of this step may have posted and died before the
	// journal learnt of it: look before posting again.
	if env.Attempt > 1 {
		channel, ts, err := c.Find(ctx, in.Channel, "", env.RunID, key, rep.StartedAt)
		if err != nil {
			return actions.Result{}, classify(err)
		}
		if ts != "" {
			if err := c.Update(ctx, channel, ts, m); err != nil {
				return actions.Result{}, classify(err)
			}
			return done(actions.Already, channel, ts, "found (posted by an earlier attempt) and updated")
		}
	}
	channel, ts, err := c.Post(ctx, env.RunID, key, m)
	if err != nil {
		return actions.Result{}, classify(err)
	}
	crashpoint.Hit("slack:notify-posted")
	return done(actions.Done, channel, ts, "posted")
}

// classify sorts Slack's errors: a wrong channel, token or scope will not
// fix itself; rate limits and outages will.
func classify(err error) error {
	err = withAPIError(err)
	var rl *RateLimited
	if errors.As(err, &rl) {
		return actions.Retryable(err)
	}
	var se slackapi.SlackErrorResponse
	if errors.As(err, &se) {
		switch se.Err {
		case "channel_not_found", "not_in_channel", "is_archived", "invalid_auth", "not_authed", "account_inactive",
			"token_revoked", "missing_scope", "no_permission", "invalid_blocks", "msg_too_long", "restricted_action":
			return actions.Permanent(fmt.Errorf("%w (check the channel, the bot's membership in it and its token scopes)", err))
		}
	}
	if errors.Is(err, ErrNotConfigured) {
		return actions.Permanent(err)
	}
	return actions.Retryable(err)
}

// withAPIError attaches Slack's error code to err (for metrics), when
// Slack answered.
func withAPIError(err error) error {
	api := actions.APIError{Provider: "slack", Service: "web"}
	var rl *RateLimited
	var se slackapi.SlackErrorResponse
	var sc slackapi.StatusCodeError
	switch {
	case errors.As(err, &rl):
		api.Code = "ratelimited"
	case errors.As(err, &se):
		api.Code = se.Err
	case errors.As(err, &sc):
		api.Code = fmt.Sprintf("http_%d", sc.Code)
	default:
		return err
	}
	return actions.WithAPIError(err, api)
}
