package github

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	gh "github.com/google/go-github/v60/github"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/actions/tokens"
	"github.com/stanchhq/stanch/apicall"
	"github.com/stanchhq/stanch/internal/crashpoint"
)

// RevokeTokenParams are the parameters of github.revoke_token. The token
// is named by its fingerprint, never by its value.
type RevokeTokenParams struct {
	Credential  string `json:"credential" required:"true" doc:"the token's fingerprint (sha256:…), usually ${{ alert.credential.id }}; never the token itself"`
	Repository  string `json:"repository" doc:"owner/name of the secret-scanning alert that reported the token, usually ${{ alert.location.repo }}: when this process has not seen the token, stanch reads it again from the alert"`
	AlertNumber int    `json:"alert_number" doc:"that alert's number, usually ${{ alert.location.alert_number }}"`
}

// RevokeTokenOutputs are the outputs of github.revoke_token.
type RevokeTokenOutputs struct {
	Credential string   `json:"credential" doc:"the token's fingerprint"`
	TokenType  string   `json:"token_type" doc:"from its prefix: personal_access_token (ghp_), fine_grained_personal_access_token (github_pat_), oauth (gho_), user_to_server (ghu_), refresh (ghr_)"`
	Login      string   `json:"login" doc:"the user the token acted as (GET /user with the token); empty when GitHub refused it already"`
	UserID     int64    `json:"user_id" doc:"that user's id"`
	Scopes     []string `json:"scopes" doc:"a classic token's OAuth scopes (X-OAuth-Scopes); fine-grained and App tokens have none"`
	Expires    string   `json:"expires" doc:"when the token would have expired (RFC 3339), if GitHub said"`
	Revoked    bool     `json:"revoked" doc:"GitHub now refuses the token"`
	BatchSize  int      `json:"batch_size" doc:"how many tokens the revocation request carried (tokens revoked together share one request)"`
}

// tokenTypes maps the prefixes POST /credentials/revoke accepts.
var tokenTypes = []struct{ prefix, kind, name string }{
	{"github_pat_", "fine_grained_personal_access_token", "fine-grained personal access token"},
	{"ghp_", "personal_access_token", "classic personal access token"},
	{"gho_", "oauth", "OAuth token"},
	{"ghu_", "user_to_server", "GitHub App user token"},
	{"ghr_", "refresh", "GitHub App refresh token"},
}

// revokeByHand says how a person revokes a GitHub token.
const revokeByHand = "its owner deletes it at https://github.com/settings/tokens (or the App's authorisation at https://github.com/settings/applications), or anyone submits it at https://docs.github.com/en/rest/credentials/revoke"

// verifyWait is how long Do waits for GitHub to refuse a revoked token:
// revocation is asynchronous.
const verifyWait = 30 * time.Second

// TokenActions returns the GitHub actions on leaked GitHub tokens, sharing
// p: github.revoke_token.
func TokenActions(p *Provider) []actions.Action {
	return []actions.Action{revokeToken(p)}
}

func revokeToken(p *Provider) actions.Action {
	return actions.New(actions.Definition[RevokeTokenParams, RevokeTokenOutputs]{
		Name:        "github.revoke_token",
		Summary:     "Revoke a leaked GitHub token (ghp_, github_pat_, gho_, ghu_, ghr_) through GitHub's credential revocation API: identify its owner and scopes with the token, revoke it (tokens leaked together share one request), verify that GitHub refuses it.",
		Containment: true,
		Permissions: []actions.Permission{
			{Name: "none", Why: "POST /credentials/revoke is called unauthenticated (60 requests an hour, 1,000 tokens a request); GET /user uses the leaked token itself"},
			{Name: "secret_scanning_alerts:read", Why: "only when this process has not seen the token: read it again from the secret-scanning alert that reported it (a classic token needs repo or security_events)"},
		},
		Example: `- id: revoke_github_token
  action: github.revoke_token
  with:
    credential: ${{ alert.credential.id }}
    repository: ${{ alert.location.repo }}
    alert_number: ${{ alert.location.alert_number }}
`,
		Validate: func(in RevokeTokenParams) error {
			if err := tokens.ValidateFingerprint(in.Credential); err != nil {
				return err
			}
			if in.Repository != "" {
				if _, _, err := splitRepo(in.Repository); err != nil {
					return err
				}
			}
			if in.AlertNumber < 0 {
				return fmt.Errorf("alert_number %d: GitHub numbers alerts from 1", in.AlertNumber)
			}
			return nil
		},
		PlanFunc: func(ctx context.Context, env actions.Env, in *RevokeTokenParams) (actions.PlanOf[RevokeTokenOutputs], error) {
			type plan = actions.PlanOf[RevokeTokenOutputs]
			t, err := p.token(ctx, in)
			if err != nil {
				return plan{}, err
			}
			var id identity
			var calls []actions.Call
			if t.kind != "refresh" {
				if id, err = t.identify(ctx); err != nil {
					return plan{}, err
				}
				calls = append(calls, actions.Call{Service: "github", Operation: "GET /user", Params: map[string]any{"authorization": "the leaked token " + in.Credential}, Made: true})
			}
			if id.refused {
				out := t.outputs(id, false)
				out.Revoked = true
				return plan{Summary: fmt.Sprintf("GitHub already refuses %s: nothing to revoke", t.describe(id)), Calls: calls, Outputs: out, Settled: actions.Already}, nil
			}
			calls = append(calls,
				actions.Call{Service: "github", Operation: "POST /credentials/revoke", Params: map[string]any{"credentials": []string{in.Credential}, "authorization": "none"}, Mutates: true, Irreversible: true,
					Effect: "revoke " + t.describe(id)},
			)
			if t.kind != "refresh" {
				calls = append(calls, actions.Call{Service: "github", Operation: "GET /user", Params: map[string]any{"authorization": "the leaked token " + in.Credential, "expect": "401"}})
			}
			out := t.outputs(id, true)
			return plan{Summary: fmt.Sprintf("would revoke %s through POST /credentials/revoke (unauthenticated, shared with tokens revoked at the same time), then check that GET /user refuses it", t.describe(id)),
				Calls: calls, Outputs: out, Undetermined: []string{"batch_size"}}, nil
		},
		DoFunc: func(ctx context.Context, env actions.Env, in *RevokeTokenParams) (actions.ResultOf[RevokeTokenOutputs], error) {
			t, err := p.token(ctx, in)
			if err != nil {
				return actions.ResultOf[RevokeTokenOutputs]{}, err
			}
			return t.revoke(ctx, env)
		},
	})
}

// leakedToken is a GitHub token being revoked.
type leakedToken struct {
	p     *Provider
	fp    string
	value string
	kind  string // token_type output
	name  string // for people
}

func (p *Provider) token(ctx context.Context, in *RevokeTokenParams) (*leakedToken, error) {
	value, err := LeakedValue(ctx, in.Credential, in.Repository, in.AlertNumber, p.AlertSecret(), "GitHub token", revokeByHand)
	if err != nil {
		return nil, err
	}
	t := &leakedToken{p: p, fp: in.Credential, value: value}
	for _, tt := range tokenTypes {
		if strings.HasPrefix(value, tt.prefix) {
			t.kind, t.name = tt.kind, tt.name
			break
		}
	}
	switch {
	case t.kind != "":
	case strings.HasPrefix(value, "ghs_"):
		return nil, actions.Permanentf("GitHub token %s is an App installation token (ghs_), which the credential revocation API does not take; it expires within an hour of its creation, and the App can revoke it earlier with DELETE /installation/token", t.fp)
	default:
		return nil, actions.Permanentf("%s is not a GitHub token (ghp_, github_pat_, gho_, ghu_ or ghr_): check the playbook's match", t.fp)
	}
	return t, nil
}

func (t *leakedToken) describe(id identity) string {
	s := fmt.Sprintf("GitHub %s %s", t.name, t.fp)
	if id.login != "" {
		s += " of " + id.login
	}
	return s
}

func (t *leakedToken) outputs(id identity, revoked bool) *RevokeTokenOutputs {
	return &RevokeTokenOutputs{Credential: t.fp, TokenType: t.kind, Login: id.login, UserID: id.userID, Scopes: id.scopes, Expires: id.expires, Revoked: revoked}
}

// identity is what GET /user with the token said.
type identity struct {
	refused bool // 401: revoked, expired or never valid
	login   string
	userID  int64
	scopes  []string
	expires string
}

// client is a go-github client that authenticates with the leaked token.
func (t *leakedToken) client() (*gh.Client, error) {
	transport := t.p.opts.Transport
	if transport == nil {
		transport = http.DefaultTransport
	}
	c := gh.NewClient(&http.Client{Transport: apicall.Transport("github", transport)}).WithAuthToken(t.value)
	if api := t.p.opts.APIURL; api != "" {
		var err error
		if c, err = c.WithEnterpriseURLs(api, api); err != nil {
			return nil, actions.Permanent(fmt.Errorf("GitHub API URL %q: %w", api, err))
		}
	}
	return c, nil
}

// identify asks GitHub who the token is, with the token.
func (t *leakedToken) identify(ctx context.Context) (identity, error) {
	c, err := t.client()
	if err != nil {
		return identity{}, err
	}
	user, res, err := c.Users.Get(ctx, "")
	if err != nil {
		var er *gh.ErrorResponse
		if errors.As(err, &er) && er.Response != nil && er.Response.StatusCode == http.StatusUnauthorized {
			return identity{refused: true}, nil
		}
		return identity{}, classify(fmt.Errorf("identify GitHub token %s with GET /user: %w", t.fp, err), "nothing: the call uses the leaked token")
	}
	id := identity{login: user.GetLogin(), userID: user.GetID(), scopes: []string{}}
	for _, s := range strings.Split(res.Header.Get("X-OAuth-Scopes"), ",") {
		if s = strings.TrimSpace(s); s != "" {
			id.scopes = append(id.scopes, s)
		}
	}
	if !res.TokenExpiration.IsZero() {
		id.expires = res.TokenExpiration.UTC().Format(time.RFC3339)
	}
	return id, nil
}

// revoke is check, act, verify: a token GitHub refuses already is left
// alone, without spending a request of the hour's budget.
func (t *leakedToken) revoke(ctx context.Context, env actions.Env) (actions.ResultOf[RevokeTokenOutputs], error) {
	type result = actions.ResultOf[RevokeTokenOutputs]
	r := revokerFor(revokeEndpoint(t.p.opts.APIURL), t.p.opts.Transport)
	if rv, ok := r.queued(t.fp); ok {
		// An earlier attempt queued the token: collect the answer.
		select {
		case <-rv.done:
			apicall.Record(ctx, rv.calls...)
			return t.revoked(ctx, env, rv.id, rv.batch, rv.err)
		default:
			return result{}, actions.Retryable(&BatchWait{Due: r.dueTime()})
		}
	}
	id := identity{}
	if t.kind != "refresh" { // a refresh token is no API token: GET /user refuses it, revoked or not
		var err error
		if id, err = t.identify(ctx); err != nil {
			return result{}, err
		}
	}
	if id.refused {
		out := t.outputs(id, true)
		return result{Outcome: actions.Already, Message: fmt.Sprintf("GitHub already refuses %s (GET /user answers 401): nothing revoked", t.describe(id)), Outputs: out}, nil
	}
	due, budget := r.queue(t.fp, t.value, id)
	if budget != nil {
		env.Log().Warn("GitHub revocation budget spent", "credential", t.fp, "reset", budget.Reset)
		return result{}, actions.Retryable(budget)
	}
	return result{}, actions.Retryable(&BatchWait{Due: due})
}

// revoked reports the answer to the request that carried the token: check
// that GitHub now refuses it, and record the effect.
func (t *leakedToken) revoked(ctx context.Context, env actions.Env, id identity, batch int, err error) (actions.ResultOf[RevokeTokenOutputs], error) {
	type result = actions.ResultOf[RevokeTokenOutputs]
	if err != nil {
		var budget *BudgetError
		if errors.As(err, &budget) {
			env.Log().Warn("GitHub revocation budget spent", "credential", t.fp, "reset", budget.Reset)
			return result{}, actions.Retryable(err)
		}
		return result{}, fmt.Errorf("revoke %s: %w", t.describe(id), err)
	}
	crashpoint.Hit("github:token_revoked") // GitHub took the revocation; the journal does not know yet
	env.Record(actions.Effect{Description: "revoked " + t.describe(id), Irreversible: true})
	env.Log().Info("GitHub token revocation accepted", "credential", t.fp, "login", id.login, "batch", batch)
	out := t.outputs(id, true)
	out.BatchSize = batch
	if t.kind == "refresh" {
		return result{Outcome: actions.Done, Message: fmt.Sprintf("GitHub accepted the revocation of %s (one request for %d token(s)); a refresh token cannot be checked with GET /user, so the revocation is not verified", t.describe(id), batch), Outputs: out}, nil
	}
	if err := t.waitRefused(ctx); err != nil {
		return result{}, err
	}
	return result{Outcome: actions.Done, Message: fmt.Sprintf("revoked %s (scopes: %s; one request for %d token(s)); GET /user now answers 401", t.describe(id), scopeList(id.scopes), batch), Outputs: out}, nil
}

// waitRefused polls GET /user until GitHub refuses the token.
func (t *leakedToken) waitRefused(ctx context.Context) error {
	deadline := time.Now().Add(verifyWait)
	wait := 200 * time.Millisecond
	for {
		id, err := t.identify(ctx)
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		if id.refused {
			return nil
		}
		if time.Now().Add(wait).After(deadline) {
			return actions.Retryable(fmt.Errorf("GitHub accepted the revocation of %s but still accepts the token after %s; the step checks again", t.fp, verifyWait))
		}
		select {
		case <-ctx.Done():
			return actions.Retryable(ctx.Err())
		case <-time.After(wait):
		}
		wait = min(wait*2, 5*time.Second)
	}
}

func scopeList(scopes []string) string {
	if len(scopes) == 0 {
		return "none (fine-grained or App token)"
	}
	return strings.Join(scopes, ", ")
}
