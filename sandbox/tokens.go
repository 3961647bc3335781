package sandbox

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/stanchhq/stanch/alert"
)

// Leaked tokens of providers other than AWS, each answered by its
// provider's own endpoints: GitHub (/api/v3/user, /api/v3/credentials/revoke
// and the organisation audit log), Slack (auth.test and auth.revoke under
// /slack/api/), HashiCorp Vault (/vault/v1/auth/token/…), GitLab
// (/gitlab/api/v4/personal_access_tokens/self) and npm (/npm/-/whoami,
// /npm/-/npm/v1/tokens). The call log never holds a token: a call names the
// token it carried by its fingerprint (alert.Fingerprint) in Call.Token.

// Token providers, the values of SeedToken.Provider.
const (
	ProviderGitHub = "github"
	ProviderSlack  = "slack"
	ProviderVault  = "vault"
	ProviderGitLab = "gitlab"
	ProviderNPM    = "npm"
)

// tokenShapes are the shapes a seeded token must have, by provider: a fake
// token, but one that scanners and stanch recognise as the real thing.
var tokenShapes = map[string]struct {
	re   *regexp.Regexp
	want string
}{
	ProviderGitHub: {regexp.MustCompile(`^(gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{82})$`), "ghp_/gho_/ghu_/ghs_/ghr_ and 36 letters or digits, or github_pat_ and 82 letters, digits or _"},
	ProviderSlack:  {regexp.MustCompile(`^xox[abeprs]-[A-Za-z0-9-]{10,}$`), "xoxb-, xoxp-, xoxa-, xoxe-, xoxr- or xoxs- and at least 10 letters, digits or -"},
	ProviderVault:  {regexp.MustCompile(`^(hv[sbr]\.[A-Za-z0-9_-]{24,}|[sbr]\.[A-Za-z0-9]{24})$`), "hvs./hvb./hvr. and at least 24 letters, digits, _ or -, or the legacy s./b./r. and 24 letters or digits"},
	ProviderGitLab: {regexp.MustCompile(`^glpat-[A-Za-z0-9_.-]{20,}$`), "glpat- and at least 20 letters, digits, _, . or -"},
	ProviderNPM:    {regexp.MustCompile(`^npm_[A-Za-z0-9]{36}$`), "npm_ and 36 letters or digits"},
}

// SeedToken is a token of GitHub, Slack, Vault, GitLab or npm that may leak:
// the sandbox answers its provider's identify and revoke endpoints for it.
type SeedToken struct {
	Provider string `yaml:"provider" json:"provider"`
	// Value is the token itself (fake, but in the provider's shape).
	Value string `yaml:"value" json:"value"`
	// Owner is whom the token belongs to: the GitHub login, the Slack user
	// name, the GitLab username, the npm username, Vault's display_name.
	Owner string `yaml:"owner" json:"owner"`
	// Scopes are the token's scopes (GitHub classic tokens, Slack, GitLab)
	// or, for Vault, its policies ("root" may use the accessor endpoints).
	Scopes  []string  `yaml:"scopes" json:"scopes"`
	Created time.Time `yaml:"created" json:"created"`
	// Expires, when set, is when the token stops working.
	Expires time.Time `yaml:"expires" json:"expires"`
	// Active false seeds the token already revoked (default true).
	Active *bool `yaml:"active" json:"active"`

	// GitHub: the organisation whose audit log holds Events, done with the
	// token.
	Org    string           `yaml:"org" json:"org"`
	Events []SeedTokenEvent `yaml:"events" json:"events"`
	// Slack: the workspace and the user (or bot) the token acts as.
	TeamID string `yaml:"team_id" json:"team_id"`
	UserID string `yaml:"user_id" json:"user_id"`
	// Vault: the token's accessor (default: made up), its TTL as a Go
	// duration (default: until Expires, else none), and lookup fields.
	Accessor string            `yaml:"accessor" json:"accessor"`
	Orphan   bool              `yaml:"orphan" json:"orphan"`
	NumUses  int               `yaml:"num_uses" json:"num_uses"`
	EntityID string            `yaml:"entity_id" json:"entity_id"`
	Meta     map[string]string `yaml:"meta" json:"meta"`
	// GitLab: the token's id and name, personal (default) or project, the
	// project of a project access token; UserID above is the numeric user
	// (for a project token, its bot user).
	ID        int64  `yaml:"id" json:"id"`
	Name      string `yaml:"name" json:"name"`
	Kind      string `yaml:"kind" json:"kind"`
	ProjectID int64  `yaml:"project_id" json:"project_id"`
	// npm: a read-only token, and the CIDR ranges it is limited to.
	ReadOnly bool     `yaml:"readonly" json:"readonly"`
	CIDR     []string `yaml:"cidr_whitelist" json:"cidr_whitelist"`
}

// SeedTokenEvent is an audit-log event done with a GitHub token.
type SeedTokenEvent struct {
	// Action is the audit-log action: git.clone, repo.update,
	// org.update_member, secret_scanning_alert.resolve, ….
	Action string `yaml:"action" json:"action"`
	Repo   string `yaml:"repo" json:"repo"` // owner/name, for repository events
	// At is when it happened; Ago (a Go duration) is the same relative to
	// the sandbox's start.
	At  time.Time `yaml:"at" json:"at"`
	Ago string    `yaml:"ago" json:"ago"`
	// Data are more fields of the event, as GitHub adds them per action.
	Data map[string]any `yaml:"data" json:"data"`
}

// SeedTokenLimits are the sandbox's limits on the token endpoints.
type SeedTokenLimits struct {
	// GitHubRevokePerHour is how many POST /credentials/revoke requests a
	// client address may make per GitHubRevokeWindow (default 60 per hour,
	// as GitHub allows).
	GitHubRevokePerHour int `yaml:"github_revoke_per_hour" json:"github_revoke_per_hour"`
	// GitHubRevokeWindow is the length of the rate limit's window as a Go
	// duration (default 1h); tests shrink it.
	GitHubRevokeWindow string `yaml:"github_revoke_window" json:"github_revoke_window"`
}

func validateTokens(tokens []SeedToken, limits SeedTokenLimits) error {
	values := map[string]bool{}
	accessors := map[string]bool{}
	gitlabIDs := map[int64]bool{}
	for i, t := range tokens {
		at := func(field string, format string, args ...any) error {
			return &seedPathError{fmt.Sprintf("$.tokens[%d].%s", i, field), fmt.Errorf("tokens[%d]: "+format, append([]any{i}, args...)...)}
		}
		shape, ok := tokenShapes[t.Provider]
		if !ok {
			return at("provider", "provider %q is not one of github, slack, vault, gitlab, npm", t.Provider)
		}
		if !shape.re.MatchString(t.Value) {
			// Never the value itself in the error: a seed may hold a real token by mistake.
			return at("value", "a %s token's value must be %s (got %d characters, fingerprint %s)", t.Provider, shape.want, len(t.Value), alert.Fingerprint(t.Value))
		}
		if values[t.Value] {
			return at("value", "the token %s is repeated", alert.Fingerprint(t.Value))
		}
		values[t.Value] = true
		if t.Owner == "" {
			return at("owner", "a %s token needs an owner", t.Provider)
		}
		if !t.Expires.IsZero() && !t.Created.IsZero() && t.Expires.Before(t.Created) {
			return at("expires", "expires %s is before created %s", t.Expires.Format(time.RFC3339), t.Created.Format(time.RFC3339))
		}
		for j, e := range t.Events {
			if t.Provider != ProviderGitHub {
				return at("events", "only GitHub tokens have audit-log events")
			}
			if t.Org == "" {
				return at("org", "a GitHub token with events needs the org whose audit log holds them")
			}
			if e.Action == "" || !strings.Contains(e.Action, ".") {
				return at(fmt.Sprintf("events[%d].action", j), "event action %q is not category.action such as git.clone", e.Action)
			}
			if e.Ago != "" {
				if _, err := time.ParseDuration(e.Ago); err != nil {
					return at(fmt.Sprintf("events[%d].ago", j), "ago %q is not a duration such as 50m", e.Ago)
				}
			}
		}
		if t.Accessor != "" {
			if accessors[t.Accessor] {
				return at("accessor", "accessor %q is repeated", t.Accessor)
			}
			accessors[t.Accessor] = true
		}
		if t.Provider == ProviderGitLab {
			if t.Kind != "" && t.Kind != "personal" && t.Kind != "project" {
				return at("kind", "kind %q is not personal or project", t.Kind)
			}
			if t.Kind == "project" && t.ProjectID <= 0 {
				return at("project_id", "a project access token needs a project_id above 0")
			}
			if t.ID != 0 {
				if gitlabIDs[t.ID] {
					return at("id", "GitLab token id %d is repeated", t.ID)
				}
				gitlabIDs[t.ID] = true
			}
		}
	}
	if limits.GitHubRevokePerHour < 0 {
		return &seedPathError{"$.token_limits.github_revoke_per_hour", fmt.Errorf("token_limits: github_revoke_per_hour %d is negative", limits.GitHubRevokePerHour)}
	}
	if limits.GitHubRevokeWindow != "" {
		if d, err := time.ParseDuration(limits.GitHubRevokeWindow); err != nil || d <= 0 {
			return &seedPathError{"$.token_limits.github_revoke_window", fmt.Errorf("token_limits: github_revoke_window %q is not a positive duration such as 1h", limits.GitHubRevokeWindow)}
		}
	}
	return nil
}

// token is a seeded token's state.
type token struct {
	SeedToken
	fingerprint string
	active      bool
	revokedAt   time.Time
	revokedBy   string // the call that revoked it
	// hashedToken is GitHub's hashed_token: base64 of its SHA-256.
	hashedToken string
	// npmKey is npm's key of the token: the hex SHA-512.
	npmKey string
	ttl    time.Duration // Vault's TTL at creation (0: none)
}

// usable reports whether the token is accepted now: not revoked, not expired.
func (t *token) usable(now time.Time) bool {
	return t.active && (t.Expires.IsZero() || now.Before(t.Expires))
}

func (t *token) revoke(now time.Time, by string) bool {
	if !t.active {
		return false
	}
	t.active, t.revokedAt, t.revokedBy = false, now, by
	return true
}

type tokenState struct {
	byValue map[string]*token
	order   []*token
	// GitHub's credential revocation: its rate limit per client address,
	// and the number of credentials of every request answered 202.
	revokeLimit   int
	revokeWindow  time.Duration
	revokeBudgets map[string]*revokeBudget
	revokeSizes   []int
	// started is when the sandbox started: events seeded with ago: are
	// that long before it.
	started time.Time
}

type revokeBudget struct {
	reset time.Time
	used  int
}

func newTokenState(seed []SeedToken, limits SeedTokenLimits) *tokenState {
	st := &tokenState{byValue: map[string]*token{}, revokeLimit: 60, revokeWindow: time.Hour, revokeBudgets: map[string]*revokeBudget{}, started: time.Now().UTC().Truncate(time.Second)}
	if limits.GitHubRevokePerHour > 0 {
		st.revokeLimit = limits.GitHubRevokePerHour
	}
	if d, err := time.ParseDuration(limits.GitHubRevokeWindow); err == nil && d > 0 {
		st.revokeWindow = d
	}
	epoch := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var gitlabID int64 = 1000
	for _, s := range seed {
		t := &token{SeedToken: s, fingerprint: alert.Fingerprint(s.Value), active: s.Active == nil || *s.Active}
		t.Scopes = slices.Clone(s.Scopes)
		if t.Created.IsZero() {
			t.Created = epoch
		}
		h := sha256.Sum256([]byte(s.Value))
		t.hashedToken = base64.StdEncoding.EncodeToString(h[:])
		k := sha512.Sum512([]byte(s.Value))
		t.npmKey = hex.EncodeToString(k[:])
		switch t.Provider {
		case ProviderVault:
			if t.Accessor == "" {
				t.Accessor = newVaultAccessor()
			}
			if !t.Expires.IsZero() {
				t.ttl = t.Expires.Sub(t.Created)
			}
		case ProviderGitLab:
			gitlabID++
			if t.ID == 0 {
				t.ID = gitlabID
			}
			if t.Kind == "" {
				t.Kind = "personal"
			}
			if t.Name == "" {
				t.Name = t.Owner + "-token"
			}
		case ProviderSlack:
			if t.TeamID == "" {
				t.TeamID = slackDefaultTeam
			}
			if t.UserID == "" {
				t.UserID = "U0" + strings.ToUpper(hex.EncodeToString(h[:4]))
			}
		}
		st.byValue[t.Value] = t
		st.order = append(st.order, t)
	}
	return st
}

// lookup returns the token of provider with value, or nil.
func (st *tokenState) lookup(provider, value string) *token {
	t := st.byValue[value]
	if t == nil || t.Provider != provider {
		return nil
	}
	return t
}

// bearer is the token of an Authorization header of scheme "Bearer" (or
// "token", which GitHub also accepts), case-insensitive as RFC 9110 wants.
func bearer(h http.Header) string {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(h.Get("Authorization")), " ")
	if !ok || !(strings.EqualFold(scheme, "Bearer") || strings.EqualFold(scheme, "token")) {
		return ""
	}
	return strings.TrimSpace(tok)
}

// fingerprintOf is what the call log says of a token a call carried: its
// fingerprint, or "" when there was none.
func fingerprintOf(value string) string {
	if value == "" {
		return ""
	}
	return alert.Fingerprint(value)
}

// TokenView is a seeded token's state, without its value.
type TokenView struct {
	Provider    string    `json:"provider"`
	Fingerprint string    `json:"fingerprint"` // alert.Fingerprint of the value
	Owner       string    `json:"owner"`
	Active      bool      `json:"active"` // not revoked (it may have expired)
	Expired     bool      `json:"expired"`
	RevokedAt   time.Time `json:"revoked_at,omitzero"`
	// RevokedBy is the action of the call that revoked it
	// (RevokeCredentials, auth.revoke, RevokeSelf, …).
	RevokedBy string `json:"revoked_by,omitempty"`
}

// Tokens returns every seeded token's state, in seed order.
func (s *Sandbox) Tokens() []TokenView {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	out := make([]TokenView, 0, len(s.tokens.order))
	for _, t := range s.tokens.order {
		out = append(out, TokenView{Provider: t.Provider, Fingerprint: t.fingerprint, Owner: t.Owner, Active: t.active,
			Expired: !t.Expires.IsZero() && !now.Before(t.Expires), RevokedAt: t.revokedAt, RevokedBy: t.revokedBy})
	}
	return out
}

// TokenActive reports whether the seeded token value is accepted by its
// provider now: seeded, not revoked and not expired.
func (s *Sandbox) TokenActive(value string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tokens.byValue[value]
	return t != nil && t.usable(time.Now())
}

// RevokeToken revokes a seeded token as if its owner had, outside any API
// the sandbox logs; it reports whether the token was active.
func (s *Sandbox) RevokeToken(value string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tokens.byValue[value]
	return t != nil && t.revoke(time.Now(), "sandbox")
}

// GitHubRevokeRequests returns, for every POST /credentials/revoke that
// was accepted (202), how many credentials it carried, in order.
func (s *Sandbox) GitHubRevokeRequests() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.tokens.revokeSizes)
}

// SetGitHubRevokeLimit sets how many POST /credentials/revoke requests a
// client address may make per window (GitHub: 60 per hour), and forgets
// what was spent so far.
func (s *Sandbox) SetGitHubRevokeLimit(requests int, window time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens.revokeLimit, s.tokens.revokeWindow = max(requests, 0), max(window, time.Millisecond)
	clear(s.tokens.revokeBudgets)
}

// GitHubHashedToken is a token's hashed_token as GitHub's audit log has it:
// standard base64 of its SHA-256.
func GitHubHashedToken(value string) string {
	h := sha256.Sum256([]byte(value))
	return base64.StdEncoding.EncodeToString(h[:])
}

// NPMTokenKey is the key the npm registry lists a token under: the hex
// SHA-512 of the token.
func NPMTokenKey(value string) string {
	k := sha512.Sum512([]byte(value))
	return hex.EncodeToString(k[:])
}

// faultFor applies a service's latency and draws its injected failure: it
// returns ok false when the client went away (the call is recorded as
// 499), and the failure to answer with, if any. s.mu is not held.
func (s *Sandbox) faultFor(r *http.Request, req *request) (failure *apiError, ok bool) {
	fault := s.fault(req.service)
	if err := sleepCtx(r.Context(), fault.Latency); err != nil {
		s.mu.Lock()
		s.recordLocked(req, 499, false) // the client went away before the answer
		s.mu.Unlock()
		return nil, false
	}
	return fault.inject(), true
}
