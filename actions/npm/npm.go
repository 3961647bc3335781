// Package npm is the npm.revoke_token action: it identifies a leaked npm
// access token (npm_) with the token itself (GET /-/whoami), finds it among
// its user's tokens (GET /-/npm/v1/tokens, where a token is listed by its
// key, the hex SHA-512 of the token), deletes it (DELETE
// /-/npm/v1/tokens/token/{key}) and verifies that the registry refuses it.
// npm has no official Go client; this is the registry's documented REST
// API with net/http.
package npm

import (
	"context"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/stanchhq/stanch/actions"
	ghactions "github.com/stanchhq/stanch/actions/github"
	"github.com/stanchhq/stanch/actions/tokens"
	"github.com/stanchhq/stanch/apicall"
)

// Options say how stanch reaches the npm registry.
type Options struct {
	// RegistryURL is the registry: https://registry.npmjs.org/ (the
	// default), or the sandbox's <sandbox>/npm/.
	RegistryURL string
	HTTPClient  *http.Client
	// AlertSecret, when set, reads a token this process has not seen from
	// the GitHub secret-scanning alert that reported it.
	AlertSecret ghactions.AlertSecret
}

// DefaultRegistry is npm's public registry.
const DefaultRegistry = "https://registry.npmjs.org/"

// RevokeTokenParams are the parameters of npm.revoke_token.
type RevokeTokenParams = tokens.Params

// RevokeTokenOutputs are the outputs of npm.revoke_token.
type RevokeTokenOutputs struct {
	Credential string   `json:"credential" doc:"the token's fingerprint"`
	Username   string   `json:"username" doc:"the npm user the token acts as (GET /-/whoami); empty when the registry refused it already"`
	ReadOnly   bool     `json:"readonly" doc:"a read-only token (it could not publish)"`
	CIDR       []string `json:"cidr_whitelist" doc:"the address ranges it was limited to, if any"`
	Created    string   `json:"created" doc:"when it was created"`
	Revoked    bool     `json:"revoked" doc:"the registry now refuses the token"`
	Impact     string   `json:"impact" doc:"what npm can tell of the token's use"`
}

const (
	revokeByHand = "its owner deletes it at https://www.npmjs.com/settings/<user>/tokens or with `npm token revoke`"
)

var noHistory = tokens.NoHistory("npm", "; check the user's packages' recent versions (npm view <package> time) for publishes you did not make")

// Actions returns the npm actions: npm.revoke_token.
func Actions(opts Options) []actions.Action {
	return []actions.Action{revokeToken(opts)}
}

func revokeToken(opts Options) actions.Action {
	return tokens.Action(tokens.Spec{
		Name:    "npm.revoke_token",
		Summary: "Revoke a leaked npm access token (npm_) with the token itself: identify its user (/-/whoami), find it among the user's tokens, delete it, verify that the registry refuses it.",
		Uses:    "the calls use the leaked token itself; an account with 2FA for writes also needs a one-time password, which stanch cannot give",
	}, open(opts))
}

type leakedToken struct {
	fp       string
	value    string
	key      string // hex SHA-512 of value
	registry string // ends in /
	client   *http.Client
}

func newLeakedToken(ctx context.Context, opts Options, in *RevokeTokenParams) (*leakedToken, error) {
	value, err := ghactions.LeakedValue(ctx, in.Credential, in.Repository, in.AlertNumber, opts.AlertSecret, "npm token", revokeByHand)
	if err != nil {
		return nil, err
	}
	sum := sha512.Sum512([]byte(value))
	t := &leakedToken{fp: in.Credential, value: value, key: hex.EncodeToString(sum[:]), registry: opts.RegistryURL, client: opts.HTTPClient}
	if t.registry == "" {
		t.registry = DefaultRegistry
	}
	if !strings.HasSuffix(t.registry, "/") {
		t.registry += "/"
	}
	t.client = apicall.Client("npm", t.client)
	return t, nil
}

// call sends one request with the token; shown is the path as errors say
// it (never holding the token). out receives a 2xx body.
func (t *leakedToken) call(ctx context.Context, method, path, shown string, out any) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, method, t.registry+path, nil)
	if err != nil {
		return 0, "", actions.Permanentf("npm registry URL %q: %s", t.registry, shown)
	}
	req.Header.Set("Authorization", "Bearer "+t.value)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "stanch")
	res, err := t.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its text holds the URL
		}
		return 0, "", actions.Retryable(actions.WithAPIError(fmt.Errorf("%s %s: %w", method, shown, err), actions.APIError{Provider: "npm", Service: "registry", Code: "network"}))
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(res.Body, 4<<20))
	if res.StatusCode >= 200 && res.StatusCode <= 299 {
		if out != nil && len(data) > 0 {
			if err := json.Unmarshal(data, out); err != nil {
				return res.StatusCode, "", actions.Retryable(fmt.Errorf("%s %s: the registry's answer is not JSON: %w", method, shown, err))
			}
		}
		return res.StatusCode, "", nil
	}
	var e struct {
		Message string `json:"message"`
		Error   string `json:"error"`
	}
	_ = json.Unmarshal(data, &e)
	msg := e.Message
	if msg == "" {
		msg = e.Error
	}
	if strings.Contains(strings.ToLower(res.Header.Get("WWW-Authenticate")), "otp") {
		msg += " (the account wants a one-time password for this: revoke the token by hand)"
	}
	return res.StatusCode, msg, nil
}

func fail(method, shown string, status int, msg string) error {
	return tokens.ByStatus(fmt.Errorf("%s %s: %d %s", method, shown, status, msg), actions.APIError{Provider: "npm", Service: "registry"}, status)
}

func (t *leakedToken) whoami(ctx context.Context) (string, bool, error) {
	var who struct {
		Username string `json:"username"`
	}
	status, msg, err := t.call(ctx, http.MethodGet, "-/whoami", "/-/whoami", &who)
	switch {
	case err != nil:
		return "", false, err
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return "", true, nil
	case status < 200 || status > 299:
		return "", false, fail(http.MethodGet, "/-/whoami", status, msg)
	}
	return who.Username, false, nil
}

// listedToken is one entry of GET /-/npm/v1/tokens.
type listedToken struct {
	Key      string   `json:"key"`
	Token    string   `json:"token"` // the token shortened: its first characters, maybe "…" and its last
	ReadOnly bool     `json:"readonly"`
	CIDR     []string `json:"cidr_whitelist"`
	CIDRAlt  []string `json:"cidr"` // verdaccio's name for cidr_whitelist
	Created  string   `json:"created"`
}

// minShown is how many characters of the token a shortened listing must
// show (prefix and suffix together) to be taken for it.
const minShown = 8

// shows reports whether shown, a listing's shortened token ("abcde...vwxyz",
// "abcdef…" or "abcdef"), is value shortened, revealing at least minShown
// of its characters.
func shows(shown, value string) bool {
	prefix, suffix := shown, ""
	for _, ellipsis := range []string{"…", "..."} {
		if p, s, ok := strings.Cut(shown, ellipsis); ok {
			prefix, suffix = p, s
			break
		}
	}
	return len(prefix)+len(suffix) >= minShown && len(prefix)+len(suffix) <= len(value) &&
		strings.HasPrefix(value, prefix) && strings.HasSuffix(value, suffix)
}

// find looks the token up among its user's tokens by its key; else, on a
// registry whose keys are not the token's SHA-512 (verdaccio: a random id),
// by the one listing whose shortened token is this token's; nil when it is
// not listed (a legacy token) or more than one listing could be it.
func (t *leakedToken) find(ctx context.Context) (*listedToken, error) {
	var byShown []listedToken
	path := "-/npm/v1/tokens?perPage=100"
	for page := 0; page < 50 && path != ""; page++ {
		var list struct {
			Objects []listedToken `json:"objects"`
			URLs    struct {
				Next string `json:"next"`
			} `json:"urls"`
		}
		status, msg, err := t.call(ctx, http.MethodGet, path, "/-/npm/v1/tokens", &list)
		if err != nil {
			return nil, err
		}
		if status < 200 || status > 299 {
			return nil, fail(http.MethodGet, "/-/npm/v1/tokens", status, msg)
		}
		for i := range list.Objects {
			if list.Objects[i].Key == t.key {
				return &list.Objects[i], nil
			}
			if shows(list.Objects[i].Token, t.value) {
				byShown = append(byShown, list.Objects[i])
			}
		}
		path = t.nextPage(list.URLs.Next)
	}
	if len(byShown) == 1 && byShown[0].Key != "" {
		return &byShown[0], nil
	}
	return nil, nil
}

// nextPage returns the path (under the registry) of the next page of
// tokens, or "" when there is none or it is not on the registry: the
// token is never sent elsewhere.
func (t *leakedToken) nextPage(next string) string {
	if next == "" {
		return ""
	}
	u, err := url.Parse(next)
	base, berr := url.Parse(t.registry)
	if err != nil || berr != nil {
		return ""
	}
	if u.Host != "" && u.Host != base.Host {
		return ""
	}
	rest, ok := strings.CutPrefix(u.RequestURI(), base.Path)
	if !ok {
		return ""
	}
	return rest
}

// keyShown says in a plan which key the DELETE names.
func keyShown(l *listedToken, fp string) string {
	if l == nil {
		return "the token " + fp + " itself (not listed: a legacy token)"
	}
	return "the key " + fp + " is listed by"
}

// keyOf is the key the registry lists the token by: listed's own, else
// the token's SHA-512.
func (t *leakedToken) keyOf(l *listedToken) string {
	if l == nil || l.Key == "" {
		return t.key
	}
	return l.Key
}

func (t *leakedToken) outputs(user string, l *listedToken, revoked bool) *RevokeTokenOutputs {
	out := &RevokeTokenOutputs{Credential: t.fp, Username: user, Revoked: revoked, CIDR: []string{}, Impact: noHistory}
	if l != nil {
		out.ReadOnly, out.Created = l.ReadOnly, l.Created
		if l.CIDR != nil {
			out.CIDR = l.CIDR
		} else if l.CIDRAlt != nil {
			out.CIDR = l.CIDRAlt
		}
	}
	return out
}

// state is what a revocation learns of the token: its user, then its
// listing (nil for a legacy token).
type state struct {
	user   string
	listed *listedToken
}

// open reads the leaked token and returns its revocation.
func open(opts Options) func(context.Context, *RevokeTokenParams) (*tokens.Revocation[*state, RevokeTokenOutputs], error) {
	return func(ctx context.Context, in *RevokeTokenParams) (*tokens.Revocation[*state, RevokeTokenOutputs], error) {
		t, err := newLeakedToken(ctx, opts, in)
		if err != nil {
			return nil, err
		}
		return t.revocation(), nil
	}
}

func (t *leakedToken) revocation() *tokens.Revocation[*state, RevokeTokenOutputs] {
	return &tokens.Revocation[*state, RevokeTokenOutputs]{
		Provider: "npm",
		Identify: func(ctx context.Context) (*state, bool, error) {
			user, refused, err := t.whoami(ctx)
			return &state{user: user}, refused, err
		},
		Prepare: func(ctx context.Context, s *state) (err error) {
			s.listed, err = t.find(ctx)
			return err
		},
		IdentifyCall: actions.Call{Service: "npm", Operation: "GET /-/whoami", Params: map[string]any{"token": "the leaked token " + t.fp}, Made: true},
		PlanAlready: func(*state) (string, *RevokeTokenOutputs) {
			return fmt.Sprintf("the registry already refuses %s: nothing to revoke", t.fp), t.outputs("", nil, true)
		},
		PlanRevoke: func(s *state) (string, []actions.Call, *RevokeTokenOutputs) {
			return fmt.Sprintf("would delete npm token %s of %s, then check that the registry refuses it", t.fp, s.user), []actions.Call{
				{Service: "npm", Operation: "GET /-/npm/v1/tokens", Params: map[string]any{"token": "the leaked token " + t.fp}, Made: true},
				{Service: "npm", Operation: "DELETE /-/npm/v1/tokens/token/{key}", Params: map[string]any{"key": keyShown(s.listed, t.fp)}, Mutates: true, Irreversible: true, Effect: "delete npm token " + t.fp + " of " + s.user},
				{Service: "npm", Operation: "GET /-/whoami", Params: map[string]any{"token": "the leaked token " + t.fp, "expect": "401"}},
			}, t.outputs(s.user, s.listed, true)
		},
		Already: func(*state) (string, *RevokeTokenOutputs) {
			return fmt.Sprintf("the npm registry already refuses %s: nothing revoked", t.fp), t.outputs("", nil, true)
		},
		Revoke: func(ctx context.Context, s *state) error {
			// By key when the token is listed; else (a legacy token) by the
			// token itself, as the npm CLI does: the path then holds it, so
			// no error shows the path.
			path, shown := "-/npm/v1/tokens/token/"+url.PathEscape(t.keyOf(s.listed)), "/-/npm/v1/tokens/token/{key of "+t.fp+"}"
			if s.listed == nil {
				path, shown = "-/npm/v1/tokens/token/"+url.PathEscape(t.value), "/-/npm/v1/tokens/token/{"+t.fp+"}"
			}
			status, msg, err := t.call(ctx, http.MethodDelete, path, shown, nil)
			switch {
			case err != nil:
				return err
			case status == http.StatusUnauthorized && msg == "": // revoked meanwhile
			case status < 200 || status > 299:
				return fail(http.MethodDelete, shown, status, msg)
			}
			return nil
		},
		Effect: func(s *state) string { return fmt.Sprintf("deleted npm token %s of %s", t.fp, s.user) },
		Log: func(s *state) (string, []any) {
			return "npm token deleted", []any{"credential", t.fp, "username", s.user}
		},
		StillAccepted: func(s *state) error {
			if s.listed == nil {
				return actions.Retryable(fmt.Errorf("the npm registry still accepts %s after its deletion by value (it may cache a token for up to an hour; and a registry that lists no such token may not delete by value at all: verdaccio does not, and its login tokens last until the password changes); the step checks again", t.fp))
			}
			return actions.Retryable(fmt.Errorf("the npm registry still accepts %s after its deletion (it may cache a token for up to an hour); the step checks again", t.fp))
		},
		Done: func(s *state) (string, *RevokeTokenOutputs) {
			return fmt.Sprintf("deleted npm token %s of %s; /-/whoami now refuses it. %s", t.fp, s.user, noHistory), t.outputs(s.user, s.listed, true)
		},
	}
}
