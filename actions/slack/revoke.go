package slack

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	slackapi "github.com/slack-go/slack"

	"github.com/stanchhq/stanch/actions"
	ghactions "github.com/stanchhq/stanch/actions/github"
	"github.com/stanchhq/stanch/internal/crashpoint"
)

// TokenOptions say how slack.revoke_token reaches Slack. It needs no
// credentials of stanch's: it identifies and revokes a leaked token with
// the token itself.
type TokenOptions struct {
	// APIURL is the Web API base, ending in "/"; empty means Slack's own.
	// The sandbox serves one at <sandbox>/slack/api/.
	APIURL     string
	HTTPClient *http.Client
	// AlertSecret, when set, reads a token this process has not seen from
	// the GitHub secret-scanning alert that reported it.
	AlertSecret ghactions.AlertSecret
}

// RevokeTokenParams are the parameters of slack.revoke_token.
type RevokeTokenParams struct {
	Credential  string `json:"credential" required:"true" doc:"the token's fingerprint (sha256:…), usually ${{ alert.credential.id }}; never the token itself"`
	Repository  string `json:"repository" doc:"owner/name of the GitHub secret-scanning alert that reported the token, usually ${{ alert.location.repo }}: read again when this process has not seen the token"`
	AlertNumber int    `json:"alert_number" doc:"that alert's number, usually ${{ alert.location.alert_number }}"`
}

// RevokeTokenOutputs are the outputs of slack.revoke_token.
type RevokeTokenOutputs struct {
	Credential   string `json:"credential" doc:"the token's fingerprint"`
	Team         string `json:"team" doc:"the workspace the token belongs to (auth.test); empty when Slack refused it already"`
	TeamID       string `json:"team_id" doc:"the workspace's id"`
	User         string `json:"user" doc:"the user (or bot user) the token acts as"`
	UserID       string `json:"user_id" doc:"that user's id"`
	BotID        string `json:"bot_id" doc:"the bot's id, for a bot token (revoking it deactivates the bot user; the app stays installed)"`
	EnterpriseID string `json:"enterprise_id" doc:"the Enterprise Grid organisation, if any"`
	Scopes       string `json:"scopes" doc:"the token's scopes (the x-oauth-scopes header of auth.test)"`
	Revoked      bool   `json:"revoked" doc:"Slack now refuses the token"`
	Impact       string `json:"impact" doc:"what Slack can tell about the token's use: no usage history"`
}

// noHistory is what Slack can say about what a token did.
const noHistory = "Slack offers no usage history by token; what the token did cannot be listed (Enterprise Grid's audit logs record some actions by user, not by token)"

const slackRevokeByHand = "a workspace admin removes the app or the user's token at https://api.slack.com/apps (or the token's owner calls auth.revoke with it)"

// refusedCodes are the errors of a token Slack no longer takes.
var refusedCodes = map[string]bool{"token_revoked": true, "invalid_auth": true, "account_inactive": true, "not_authed": true, "token_expired": true}

// TokenActions returns the Slack actions on leaked Slack tokens:
// slack.revoke_token.
func TokenActions(opts TokenOptions) []actions.Action {
	return []actions.Action{revokeToken(opts)}
}

func revokeToken(opts TokenOptions) actions.Action {
	return actions.New(actions.Definition[RevokeTokenParams, RevokeTokenOutputs]{
		Name:        "slack.revoke_token",
		Summary:     "Revoke a leaked Slack token (xoxb-, xoxp-, …) with the token itself: identify it (auth.test), revoke it (auth.revoke), verify that Slack refuses it.",
		Containment: true,
		Permissions: []actions.Permission{
			{Name: "none", Why: "auth.test and auth.revoke are called with the leaked token itself, and need no scope"},
			{Name: "secret_scanning_alerts:read", Why: "GitHub, only when this process has not seen the token: read it again from the secret-scanning alert that reported it"},
		},
		Example: `- id: revoke_slack_token
  action: slack.revoke_token
  with:
    credential: ${{ alert.credential.id }}
`,
		Validate: validateFingerprint,
		PlanFunc: func(ctx context.Context, env actions.Env, in *RevokeTokenParams) (actions.PlanOf[RevokeTokenOutputs], error) {
			type plan = actions.PlanOf[RevokeTokenOutputs]
			t, err := newLeakedToken(ctx, opts, in)
			if err != nil {
				return plan{}, err
			}
			who, refused, err := t.identify(ctx)
			if err != nil {
				return plan{}, err
			}
			calls := []actions.Call{{Service: "slack", Operation: "auth.test", Params: map[string]any{"token": "the leaked token " + t.fp}, Made: true}}
			if refused {
				return plan{Summary: fmt.Sprintf("Slack already refuses %s: nothing to revoke", t.describe(who)), Calls: calls, Outputs: t.outputs(who, true), Settled: actions.Already}, nil
			}
			calls = append(calls,
				actions.Call{Service: "slack", Operation: "auth.revoke", Params: map[string]any{"token": "the leaked token " + t.fp}, Mutates: true, Irreversible: true, Effect: "revoke " + t.describe(who)},
				actions.Call{Service: "slack", Operation: "auth.test", Params: map[string]any{"token": "the leaked token " + t.fp, "expect": "token_revoked or invalid_auth"}})
			return plan{Summary: fmt.Sprintf("would revoke %s with auth.revoke, then check that auth.test refuses it", t.describe(who)), Calls: calls, Outputs: t.outputs(who, true)}, nil
		},
		DoFunc: func(ctx context.Context, env actions.Env, in *RevokeTokenParams) (actions.ResultOf[RevokeTokenOutputs], error) {
			t, err := newLeakedToken(ctx, opts, in)
			if err != nil {
				return actions.ResultOf[RevokeTokenOutputs]{}, err
			}
			return t.revoke(ctx, env)
		},
	})
}

func validateFingerprint(in RevokeTokenParams) error {
	if !strings.HasPrefix(in.Credential, "sha256:") {
		return errors.New("credential is not a token fingerprint (sha256:…): name the token by ${{ alert.credential.id }}, never by its value")
	}
	if in.AlertNumber < 0 {
		return fmt.Errorf("alert_number %d: GitHub numbers alerts from 1", in.AlertNumber)
	}
	return nil
}

type leakedToken struct {
	fp  string
	api *slackapi.Client
}

func newLeakedToken(ctx context.Context, opts TokenOptions, in *RevokeTokenParams) (*leakedToken, error) {
	value, err := ghactions.LeakedValue(ctx, in.Credential, in.Repository, in.AlertNumber, opts.AlertSecret, "Slack token", slackRevokeByHand)
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(value, "xox") {
		return nil, actions.Permanentf("%s is not a Slack token (xoxb-, xoxp-, …): check the playbook's match", in.Credential)
	}
	o := []slackapi.Option{}
	if opts.APIURL != "" {
		o = append(o, slackapi.OptionAPIURL(opts.APIURL))
	}
	if opts.HTTPClient != nil {
		o = append(o, slackapi.OptionHTTPClient(opts.HTTPClient))
	}
	return &leakedToken{fp: in.Credential, api: slackapi.New(value, o...)}, nil
}

func (t *leakedToken) describe(who *slackapi.AuthTestResponse) string {
	s := "Slack token " + t.fp
	if who != nil && who.User != "" {
		s += fmt.Sprintf(" of %s in %s (%s)", who.User, who.Team, who.TeamID)
	}
	return s
}

func (t *leakedToken) outputs(who *slackapi.AuthTestResponse, revoked bool) *RevokeTokenOutputs {
	out := &RevokeTokenOutputs{Credential: t.fp, Revoked: revoked, Impact: noHistory}
	if who != nil {
		out.Team, out.TeamID, out.User, out.UserID, out.BotID, out.EnterpriseID = who.Team, who.TeamID, who.User, who.UserID, who.BotID, who.EnterpriseID
		if who.Header != nil {
			out.Scopes = who.Header.Get("X-Oauth-Scopes")
		}
	}
	return out
}

// identify calls auth.test with the token; refused says Slack no longer
// takes it.
func (t *leakedToken) identify(ctx context.Context) (*slackapi.AuthTestResponse, bool, error) {
	who, err := t.api.AuthTestContext(ctx)
	if err == nil {
		return who, false, nil
	}
	var se slackapi.SlackErrorResponse
	if errors.As(err, &se) && refusedCodes[se.Err] {
		return nil, true, nil
	}
	return nil, false, classifyToken(fmt.Errorf("identify Slack token %s with auth.test: %w", t.fp, err))
}

func (t *leakedToken) revoke(ctx context.Context, env actions.Env) (actions.ResultOf[RevokeTokenOutputs], error) {
	type result = actions.ResultOf[RevokeTokenOutputs]
	who, refused, err := t.identify(ctx)
	if err != nil {
		return result{}, err
	}
	if refused {
		return result{Outcome: actions.Already, Message: fmt.Sprintf("Slack already refuses %s (auth.test fails): nothing revoked", t.describe(nil)), Outputs: t.outputs(nil, true)}, nil
	}
	res, err := t.api.SendAuthRevokeContext(ctx, "")
	if err != nil {
		var se slackapi.SlackErrorResponse
		if !(errors.As(err, &se) && refusedCodes[se.Err]) { // refused: revoked meanwhile
			return result{}, classifyToken(fmt.Errorf("revoke %s with auth.revoke: %w", t.describe(who), err))
		}
	} else if !res.Revoked {
		return result{}, actions.Retryable(fmt.Errorf("auth.revoke answered ok but not revoked for %s", t.describe(who)))
	}
	crashpoint.Hit("slack:token_revoked")
	env.Record(actions.Effect{Description: "revoked " + t.describe(who), Irreversible: true})
	env.Log().Info("Slack token revoked", "credential", t.fp, "team_id", who.TeamID, "user_id", who.UserID)
	if _, refused, err := t.identify(ctx); err != nil {
		return result{}, fmt.Errorf("verify: %w", err)
	} else if !refused {
		return result{}, actions.Retryable(fmt.Errorf("auth.test still accepts %s after auth.revoke; the step checks again", t.fp))
	}
	return result{Outcome: actions.Done, Message: fmt.Sprintf("revoked %s; auth.test now refuses it. %s", t.describe(who), noHistory), Outputs: t.outputs(who, true)}, nil
}

// classifyToken marks a Slack error retryable (rate limits, server errors,
// network) or permanent (Slack's refusals).
func classifyToken(err error) error {
	api := actions.APIError{Provider: "slack", Service: "web"}
	var rl *slackapi.RateLimitedError
	var se slackapi.SlackErrorResponse
	var status slackapi.StatusCodeError
	switch {
	case errors.As(err, &rl):
		api.Code = "ratelimited"
		return actions.Retryable(actions.WithAPIError(err, api))
	case errors.As(err, &se):
		api.Code = se.Err
		return actions.Permanent(actions.WithAPIError(err, api))
	case errors.As(err, &status):
		api.Code = fmt.Sprintf("http_%d", status.Code)
		if status.Code >= 500 || status.Code == http.StatusTooManyRequests {
			return actions.Retryable(actions.WithAPIError(err, api))
		}
		return actions.Permanent(actions.WithAPIError(err, api))
	}
	return actions.Retryable(err)
}
