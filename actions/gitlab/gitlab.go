// Package gitlab is the gitlab.revoke_token action: it identifies a leaked
// GitLab personal, project or group access token (glpat-) with the token
// itself (GET /personal_access_tokens/self), revokes it (DELETE
// /personal_access_tokens/self, GitLab 15.4 and later for every token) and
// verifies that GitLab refuses it. No official GitLab Go client is served
// to this build, so it speaks the documented REST API with net/http.
package gitlab

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/stanchhq/stanch/actions"
	ghactions "github.com/stanchhq/stanch/actions/github"
	"github.com/stanchhq/stanch/actions/tokens"
	"github.com/stanchhq/stanch/apicall"
)

// Options say how stanch reaches GitLab.
type Options struct {
	// BaseURL is the REST API base of GitLab: https://gitlab.com/api/v4
	// (the default) or a self-managed instance's
	// https://gitlab.example.com/api/v4 (the sandbox: <sandbox>/gitlab/api/v4).
	BaseURL    string
	HTTPClient *http.Client
	// AlertSecret, when set, reads a token this process has not seen from
	// the GitHub secret-scanning alert that reported it.
	AlertSecret ghactions.AlertSecret
}

// DefaultBaseURL is GitLab.com's REST API.
const DefaultBaseURL = "https://gitlab.com/api/v4"

// RevokeTokenParams are the parameters of gitlab.revoke_token.
type RevokeTokenParams = tokens.Params

// RevokeTokenOutputs are the outputs of gitlab.revoke_token.
type RevokeTokenOutputs struct {
	Credential string   `json:"credential" doc:"the token's fingerprint"`
	TokenID    int64    `json:"token_id" doc:"GitLab's id of the token; 0 when GitLab refused it already"`
	Name       string   `json:"name" doc:"the token's name"`
	UserID     int64    `json:"user_id" doc:"the user it acts as (for a project or group token, that project's or group's bot user)"`
	Scopes     []string `json:"scopes" doc:"its scopes (api, read_repository, …)"`
	CreatedAt  string   `json:"created_at" doc:"when it was created"`
	LastUsedAt string   `json:"last_used_at" doc:"when GitLab last saw it used, if it says"`
	ExpiresAt  string   `json:"expires_at" doc:"when it would have expired"`
	Revoked    bool     `json:"revoked" doc:"GitLab now refuses the token"`
	Impact     string   `json:"impact" doc:"what GitLab can tell of the token's use"`
}

const (
	revokeByHand = "its owner revokes it under User settings → Access tokens (a project's or group's token under its Settings → Access tokens), or an administrator in the Admin area"
)

var noHistory = tokens.NoHistory("GitLab", " through its API: last_used_at is all it says (audit events on Premium record some actions by user, not by token)")

// Actions returns the GitLab actions: gitlab.revoke_token.
func Actions(opts Options) []actions.Action {
	return []actions.Action{revokeToken(opts)}
}

func revokeToken(opts Options) actions.Action {
	return tokens.Action(tokens.Spec{
		Name:    "gitlab.revoke_token",
		Summary: "Revoke a leaked GitLab access token (glpat-) with the token itself: identify it (GET /personal_access_tokens/self), revoke it (DELETE the same), verify that GitLab refuses it.",
		Uses:    "the self endpoints are called with the leaked token itself (GitLab 15.4 and later: any scope; 15.0–15.3: only api-scoped tokens)",
	}, open(opts))
}

type leakedToken struct {
	fp     string
	value  string
	base   string
	client *http.Client
}

func newLeakedToken(ctx context.Context, opts Options, in *RevokeTokenParams) (*leakedToken, error) {
	value, err := ghactions.LeakedValue(ctx, in.Credential, in.Repository, in.AlertNumber, opts.AlertSecret, "GitLab token", revokeByHand)
	if err != nil {
		return nil, err
	}
	t := &leakedToken{fp: in.Credential, value: value, base: strings.TrimSuffix(opts.BaseURL, "/"), client: opts.HTTPClient}
	if t.base == "" {
		t.base = DefaultBaseURL
	}
	t.client = apicall.Client("gitlab", t.client)
	return t, nil
}

// selfToken is GET /personal_access_tokens/self's answer.
type selfToken struct {
	ID         int64    `json:"id"`
	Name       string   `json:"name"`
	Revoked    bool     `json:"revoked"`
	Active     bool     `json:"active"`
	UserID     int64    `json:"user_id"`
	Scopes     []string `json:"scopes"`
	CreatedAt  string   `json:"created_at"`
	LastUsedAt string   `json:"last_used_at"`
	ExpiresAt  string   `json:"expires_at"`
}

// call makes one request with the token in PRIVATE-TOKEN and returns the
// status and GitLab's message; out receives a 2xx body.
func (t *leakedToken) call(ctx context.Context, method string, out any) (int, string, error) {
	const path = "/personal_access_tokens/self"
	req, err := http.NewRequestWithContext(ctx, method, t.base+path, nil)
	if err != nil {
		return 0, "", actions.Permanent(fmt.Errorf("GitLab URL %q: %w", t.base, err))
	}
	req.Header.Set("PRIVATE-TOKEN", t.value)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "stanch")
	res, err := t.client.Do(req)
	if err != nil {
		return 0, "", actions.Retryable(actions.WithAPIError(fmt.Errorf("%s %s: %w", method, path, err), actions.APIError{Provider: "gitlab", Service: "rest", Code: "network"}))
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if res.StatusCode >= 200 && res.StatusCode <= 299 {
		if out != nil && len(data) > 0 {
			if err := json.Unmarshal(data, out); err != nil {
				return res.StatusCode, "", actions.Retryable(fmt.Errorf("%s %s: GitLab's answer is not JSON: %w", method, path, err))
			}
		}
		return res.StatusCode, "", nil
	}
	var e struct {
		Message any    `json:"message"`
		Error   string `json:"error"`
	}
	_ = json.Unmarshal(data, &e)
	msg := e.Error
	if e.Message != nil {
		msg = fmt.Sprint(e.Message)
	}
	return res.StatusCode, msg, nil
}

func fail(method string, status int, msg string) error {
	err := fmt.Errorf("%s /personal_access_tokens/self: %d %s", method, status, msg)
	switch status {
	case http.StatusForbidden:
		err = fmt.Errorf("%w (GitLab before 15.4 lets only api-scoped tokens revoke themselves; revoke it by hand)", err)
	case http.StatusNotFound:
		err = fmt.Errorf("%w (this GitLab has no self endpoint: it needs GitLab 15.5 to look a token up, 15.0 to revoke it)", err)
	}
	return tokens.ByStatus(err, actions.APIError{Provider: "gitlab", Service: "rest"}, status)
}

// self looks the token up; refused says GitLab no longer takes it.
func (t *leakedToken) self(ctx context.Context) (*selfToken, bool, error) {
	var s selfToken
	status, msg, err := t.call(ctx, http.MethodGet, &s)
	switch {
	case err != nil:
		return nil, false, err
	case status == http.StatusUnauthorized:
		return nil, true, nil
	case status < 200 || status > 299:
		return nil, false, fail(http.MethodGet, status, msg)
	case s.Revoked || (!s.Active && s.ID != 0):
		return &s, true, nil
	}
	return &s, false, nil
}

func (t *leakedToken) describe(s *selfToken) string {
	d := "GitLab token " + t.fp
	if s != nil {
		d += fmt.Sprintf(" (%q, id %d, user %d, scopes %s)", s.Name, s.ID, s.UserID, strings.Join(s.Scopes, ", "))
	}
	return d
}

func (t *leakedToken) outputs(s *selfToken, revoked bool) *RevokeTokenOutputs {
	out := &RevokeTokenOutputs{Credential: t.fp, Revoked: revoked, Scopes: []string{}, Impact: noHistory}
	if s == nil {
		return out
	}
	out.TokenID, out.Name, out.UserID, out.CreatedAt, out.LastUsedAt, out.ExpiresAt = s.ID, s.Name, s.UserID, s.CreatedAt, s.LastUsedAt, s.ExpiresAt
	if s.Scopes != nil {
		out.Scopes = s.Scopes
	}
	if s.LastUsedAt != "" {
		out.Impact = "last used at " + s.LastUsedAt + "; " + noHistory
	}
	return out
}

// open reads the leaked token and returns its revocation.
func open(opts Options) func(context.Context, *RevokeTokenParams) (*tokens.Revocation[*selfToken, RevokeTokenOutputs], error) {
	return func(ctx context.Context, in *RevokeTokenParams) (*tokens.Revocation[*selfToken, RevokeTokenOutputs], error) {
		t, err := newLeakedToken(ctx, opts, in)
		if err != nil {
			return nil, err
		}
		return t.revocation(), nil
	}
}

func (t *leakedToken) revocation() *tokens.Revocation[*selfToken, RevokeTokenOutputs] {
	return &tokens.Revocation[*selfToken, RevokeTokenOutputs]{
		Provider:     "gitlab",
		Identify:     t.self,
		IdentifyCall: actions.Call{Service: "gitlab", Operation: "GET /personal_access_tokens/self", Params: map[string]any{"token": "the leaked token " + t.fp}, Made: true},
		PlanAlready: func(*selfToken) (string, *RevokeTokenOutputs) {
			return fmt.Sprintf("GitLab already refuses %s: nothing to revoke", t.fp), t.outputs(nil, true)
		},
		PlanRevoke: func(s *selfToken) (string, []actions.Call, *RevokeTokenOutputs) {
			return fmt.Sprintf("would revoke %s, then check that GitLab refuses it", t.describe(s)), []actions.Call{
				{Service: "gitlab", Operation: "DELETE /personal_access_tokens/self", Params: map[string]any{"token": "the leaked token " + t.fp}, Mutates: true, Irreversible: true, Effect: "revoke " + t.describe(s)},
				{Service: "gitlab", Operation: "GET /personal_access_tokens/self", Params: map[string]any{"token": "the leaked token " + t.fp, "expect": "401"}},
			}, t.outputs(s, true)
		},
		Already: func(s *selfToken) (string, *RevokeTokenOutputs) {
			return fmt.Sprintf("GitLab already refuses %s: nothing revoked", t.describe(s)), t.outputs(s, true)
		},
		Revoke: func(ctx context.Context, _ *selfToken) error {
			status, msg, err := t.call(ctx, http.MethodDelete, nil)
			switch {
			case err != nil:
				return err
			case status == http.StatusUnauthorized: // revoked meanwhile
			case status < 200 || status > 299:
				return fail(http.MethodDelete, status, msg)
			}
			return nil
		},
		Effect: func(s *selfToken) string { return "revoked " + t.describe(s) },
		Log: func(s *selfToken) (string, []any) {
			return "GitLab token revoked", []any{"credential", t.fp, "token_id", s.ID, "user_id", s.UserID}
		},
		StillAccepted: func(*selfToken) error {
			return actions.Retryable(fmt.Errorf("GitLab still accepts %s after the DELETE; the step checks again", t.fp))
		},
		Done: func(s *selfToken) (string, *RevokeTokenOutputs) {
			out := t.outputs(s, true)
			return fmt.Sprintf("revoked %s; GitLab now refuses it. %s", t.describe(s), out.Impact), out
		},
	}
}
