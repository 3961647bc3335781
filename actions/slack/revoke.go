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
	"github.com/stanchhq/stanch/actions/tokens"
	"github.com/stanchhq/stanch/apicall"
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
type RevokeTokenParams = tokens.Params

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
var noHistory = tokens.NoHistory("Slack", "; what the token did cannot be listed (Enterprise Grid's audit logs record some actions by user, not by token)")

const slackRevokeByHand = "a workspace admin removes the app or the user's token at https://api.slack.com/apps (or the token's owner calls auth.revoke with it)"

// refusedCodes are the errors of a token Slack no longer takes.
var refusedCodes = map[string]bool{"token_revoked": true, "invalid_auth": true, "account_inactive": true, "not_authed": true, "token_expired": true}

// TokenActions returns the Slack actions on leaked Slack tokens:
// slack.revoke_token.
func TokenActions(opts TokenOptions) []actions.Action {
	return []actions.Action{revokeToken(opts)}
}

func revokeToken(opts TokenOptions) actions.Action {
	return tokens.Action(tokens.Spec{
		Name:     "slack.revoke_token",
		Summary:  "Revoke a leaked Slack token (xoxb-, xoxp-, …) with the token itself: identify it (auth.test), revoke it (auth.revoke), verify that Slack refuses it.",
		Uses:     "auth.test and auth.revoke are called with the leaked token itself, and need no scope",
		Validate: validateFingerprint,
	}, openToken(opts))
}

func validateFingerprint(in RevokeTokenParams) error {
	if err := tokens.ValidateFingerprint(in.Credential); err != nil {
		return err
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
	o = append(o, slackapi.OptionHTTPClient(apicall.Client("slack", opts.HTTPClient)))
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

// openToken reads the leaked token and returns its revocation.
func openToken(opts TokenOptions) func(context.Context, *RevokeTokenParams) (*tokens.Revocation[*slackapi.AuthTestResponse, RevokeTokenOutputs], error) {
	return func(ctx context.Context, in *RevokeTokenParams) (*tokens.Revocation[*slackapi.AuthTestResponse, RevokeTokenOutputs], error) {
		t, err := newLeakedToken(ctx, opts, in)
		if err != nil {
			return nil, err
		}
		return t.revocation(), nil
	}
}

func (t *leakedToken) revocation() *tokens.Revocation[*slackapi.AuthTestResponse, RevokeTokenOutputs] {
	type who = *slackapi.AuthTestResponse
	return &tokens.Revocation[who, RevokeTokenOutputs]{
		Provider:     "slack",
		Identify:     t.identify,
		IdentifyCall: actions.Call{Service: "slack", Operation: "auth.test", Params: map[string]any{"token": "the leaked token " + t.fp}, Made: true},
		PlanAlready: func(w who) (string, *RevokeTokenOutputs) {
			return fmt.Sprintf("Slack already refuses %s: nothing to revoke", t.describe(w)), t.outputs(w, true)
		},
		PlanRevoke: func(w who) (string, []actions.Call, *RevokeTokenOutputs) {
			return fmt.Sprintf("would revoke %s with auth.revoke, then check that auth.test refuses it", t.describe(w)), []actions.Call{
				{Service: "slack", Operation: "auth.revoke", Params: map[string]any{"token": "the leaked token " + t.fp}, Mutates: true, Irreversible: true, Effect: "revoke " + t.describe(w)},
				{Service: "slack", Operation: "auth.test", Params: map[string]any{"token": "the leaked token " + t.fp, "expect": "token_revoked or invalid_auth"}},
			}, t.outputs(w, true)
		},
		Already: func(who) (string, *RevokeTokenOutputs) {
			return fmt.Sprintf("Slack already refuses %s (auth.test fails): nothing revoked", t.describe(nil)), t.outputs(nil, true)
		},
		Revoke: func(ctx context.Context, w who) error {
			res, err := t.api.SendAuthRevokeContext(ctx, "")
			if err != nil {
				var se slackapi.SlackErrorResponse
				if !(errors.As(err, &se) && refusedCodes[se.Err]) { // refused: revoked meanwhile
					return classifyToken(fmt.Errorf("revoke %s with auth.revoke: %w", t.describe(w), err))
				}
			} else if !res.Revoked {
				return actions.Retryable(fmt.Errorf("auth.revoke answered ok but not revoked for %s", t.describe(w)))
			}
			return nil
		},
		Effect: func(w who) string { return "revoked " + t.describe(w) },
		Log: func(w who) (string, []any) {
			return "Slack token revoked", []any{"credential", t.fp, "team_id", w.TeamID, "user_id", w.UserID}
		},
		StillAccepted: func(who) error {
			return actions.Retryable(fmt.Errorf("auth.test still accepts %s after auth.revoke; the step checks again", t.fp))
		},
		Done: func(w who) (string, *RevokeTokenOutputs) {
			return fmt.Sprintf("revoked %s; auth.test now refuses it. %s", t.describe(w), noHistory), t.outputs(w, true)
		},
	}
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
		return tokens.ByStatus(err, api, status.Code)
	}
	return actions.Retryable(err)
}
