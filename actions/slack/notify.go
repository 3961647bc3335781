package slack

import (
	"context"
	"errors"
	"fmt"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/slack"
	"github.com/stanchhq/stanch/slack/render"
)

// NotifyParams are slack.notify's parameters.
type NotifyParams struct {
	Channel string `json:"channel" required:"true" doc:"the channel to post in: an id (C…) or a name (#sec-incidents)"`
	Title   string `json:"title" doc:"the message's header (default: what leaked, its id and the severity)"`
}

// NotifyOutputs are slack.notify's outputs: where the incident message is,
// which stanch's updates of it read back.
type NotifyOutputs struct {
	Channel string `json:"channel" doc:"the channel id of the message"`
	TS      string `json:"ts" doc:"the message's timestamp (its id in the channel)"`
	Title   string `json:"title" doc:"the title parameter, kept so that updates show the same header"`
}

// Options say what the incident message shows beyond the run's report.
type Options struct {
	// RecordLink makes the link to a run's incident record (stanch serve's
	// signed report) from the run's id and creation time; nil shows none.
	// The notifier draws later versions of the message with the same.
	RecordLink func(runID string, created time.Time) string
}

// Actions returns the Slack actions, posting through c.
func Actions(c *slack.Client, o Options) []actions.Action {
	return []actions.Action{notify(c, o)}
}

func notify(c *slack.Client, o Options) actions.Action {
	return actions.New(actions.Definition[NotifyParams, NotifyOutputs]{
		Name: "slack.notify",
		Summary: "Post the run's incident message to a Slack channel, once; stanch then keeps it up to date as the run " +
			"goes on (each step's status, the impact, who approved what) and puts step details in its thread.",
		Permissions: []actions.Permission{
			{Name: "chat:write", Why: "post and update the incident message"},
			{Name: "channels:history", Why: "find a message an interrupted attempt posted, instead of posting twice (groups:history for private channels)"},
			{Name: "channels:read", Why: "find a channel's id from its name (groups:read for private channels)"},
		},
		Example: `- id: tell
  action: slack.notify
  with:
    channel: "#sec-incidents"`,
		PlanFunc: func(ctx context.Context, env actions.Env, in *NotifyParams) (actions.PlanOf[NotifyOutputs], error) {
			return actions.PlanOf[NotifyOutputs]{
				Summary: fmt.Sprintf("would post the incident message to %s and keep it up to date", in.Channel),
				Calls:   []actions.Call{{Service: "slack", Operation: "chat.postMessage", Params: map[string]any{"channel": in.Channel}, Mutates: true}},
			}, nil
		},
		DoFunc: func(ctx context.Context, env actions.Env, in *NotifyParams) (actions.ResultOf[NotifyOutputs], error) {
			return post(ctx, c, o, env, in)
		},
	})
}

func post(ctx context.Context, c *slack.Client, o Options, env actions.Env, in *NotifyParams) (actions.ResultOf[NotifyOutputs], error) {
	type result = actions.ResultOf[NotifyOutputs]
	if !c.Configured() {
		// Containment must not stop for want of a chat token; the outcome
		// says nothing was posted, and stanch serve warns at startup.
		env.Log().Warn("slack.notify skipped: Slack is not configured")
		return result{Outcome: actions.NoOp, Message: "nothing posted: " + slack.ErrNotConfigured.Error()}, nil
	}
	if env.Report == nil {
		return result{}, actions.Permanentf("slack.notify reports on a run and has no run to report on")
	}
	rep, err := env.Report(ctx)
	if err != nil {
		return result{}, actions.Retryable(fmt.Errorf("read the run to report: %w", err))
	}
	var io render.IncidentOptions
	if o.RecordLink != nil {
		io.RecordLink = o.RecordLink(rep.RunID, rep.StartedAt)
	}
	m := render.IncidentWith(rep, in.Title, io)
	m.Channel = in.Channel
	done := func(outcome actions.Outcome, rec slack.Record, how string) (result, error) {
		return result{Outcome: outcome, Message: fmt.Sprintf("incident message %s in %s", how, in.Channel),
			Outputs: &NotifyOutputs{Channel: rec.Channel, TS: rec.TS, Title: in.Title}}, nil
	}
	rec, how, err := c.PostOnce(ctx, attempts{env.Attempt, rep.StartedAt}, slack.Once{
		RunID: env.RunID, Key: slack.NotifyKey(env.StepID), Message: m, CrashPoint: "slack:notify-posted"})
	if err != nil {
		return result{}, classify(err)
	}
	if how == slack.Posted {
		return done(actions.Done, rec, "posted")
	}
	if err := c.Update(ctx, rec.Channel, rec.TS, m); err != nil {
		return result{}, classify(err)
	}
	return done(actions.Already, rec, "found (posted by an earlier attempt) and updated")
}

// attempts are the records PostOnce keeps for a notify step. The journal
// records the step's outcome, with the message in its outputs, only once
// the step ends: all an attempt knows is whether an earlier one began, and
// so may have posted and died before the journal learnt of it. Then the
// intent dates from the start of the run.
type attempts struct {
	attempt  int
	runStart time.Time
}

func (a attempts) Record(_ context.Context, key string) (slack.Record, bool, error) {
	if a.attempt <= 1 {
		return slack.Record{}, false, nil
	}
	return slack.Record{Key: key, IntentAt: a.runStart}, true, nil
}

// Save keeps nothing: the step's outputs are the record.
func (attempts) Save(context.Context, slack.Record) error { return nil }

// classify sorts Slack's errors: a wrong channel, token or scope will not
// fix itself; rate limits and outages will.
func classify(err error) error {
	err = withAPIError(err)
	var rl *slack.RateLimited
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
	if errors.Is(err, slack.ErrNotConfigured) {
		return actions.Permanent(err)
	}
	return actions.Retryable(err)
}

// withAPIError attaches Slack's error code to err (for metrics), when
// Slack answered.
func withAPIError(err error) error {
	api := actions.APIError{Provider: "slack", Service: "web"}
	var rl *slack.RateLimited
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
