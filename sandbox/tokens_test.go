package sandbox

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/internal/planted"
)

// More tokens in their providers' shapes, made of planted secrets so that
// any trace of them is found too.
var (
	plantedGitLabProject = "glpat-" + planted.InPath[:24]
	plantedNPMSecond     = "npm_" + planted.AfterKeyID[:36]
	plantedVaultRoot     = "hvs." + planted.InTitle
	plantedGitHubOther   = "ghp_" + planted.InPath[:36]
)

const tokenSeedYAML = `
accounts:
  - id: "111122223333"
    users:
      - ` + ResponderSeedUser + `
github:
  token: ghp_seeded
tokens:
  - provider: github
    value: GITHUB_PAT
    owner: octocat
    scopes: [repo, "read:org"]
    created: 2026-01-02T03:04:05Z
    expires: 2099-01-01T00:00:00Z
    org: acme
    events:
      - {action: git.clone, repo: acme/api, ago: 5h}
      - {action: repo.download_zip, repo: acme/api, ago: 4h}
      - {action: secret_scanning_alert.resolve, repo: acme/api, ago: 3h, data: {alert_number: 7}}
      - {action: repo.update, repo: acme/web, ago: 2h}
      - {action: org.update_member, ago: 1h, data: {user: mallory, permission: admin}}
  - {provider: github, value: GITHUB_FINE, owner: octocat, org: acme}
  - {provider: github, value: GITHUB_OTHER, owner: hubot, scopes: [repo]}
  - {provider: github, value: GITHUB_APP, owner: acme-app}
  - {provider: slack, value: SLACK_BOT, owner: deploy-bot, team_id: T0ACME, user_id: U0DEPLOY, scopes: ["chat:write", "channels:read"]}
  - {provider: slack, value: SLACK_USER, owner: alice}
  - provider: vault
    value: VAULT_SERVICE
    owner: token-ci
    scopes: [default, ci]
    accessor: ci-accessor-0123456789ab
    created: 2026-01-01T00:00:00Z
    expires: 2099-01-01T00:00:00Z
    meta: {team: platform}
    entity_id: 7d2e3a12-entity
  - {provider: vault, value: VAULT_BATCH, owner: token-batch, accessor: batch-accessor-0123456789}
  - {provider: vault, value: VAULT_LEGACY, owner: token-legacy, accessor: legacy-accessor-0123456789}
  - {provider: vault, value: VAULT_ROOT, owner: root, scopes: [root], accessor: root-accessor-0123456789ab}
  - {provider: gitlab, value: GITLAB_PAT, owner: alice, id: 42, name: ci, scopes: [api, read_repository], user_id: "7", expires: 2099-12-31T00:00:00Z}
  - {provider: gitlab, value: GITLAB_PROJECT, owner: project_9_bot, kind: project, project_id: 9, scopes: [read_api]}
  - {provider: npm, value: NPM_TOKEN, owner: alice, cidr_whitelist: [10.0.0.0/8]}
  - {provider: npm, value: NPM_SECOND, owner: alice, readonly: true}
`

func tokenSeed(t *testing.T) Seed {
	t.Helper()
	yaml := strings.NewReplacer(
		"GITHUB_PAT", planted.GitHubPAT, "GITHUB_FINE", planted.GitHubFineGrainedPAT, "GITHUB_OTHER", plantedGitHubOther,
		"GITHUB_APP", planted.GitHubInstallation,
		"SLACK_BOT", planted.SlackBot, "SLACK_USER", planted.SlackUser,
		"VAULT_SERVICE", planted.VaultService, "VAULT_BATCH", planted.VaultBatch, "VAULT_LEGACY", planted.VaultLegacyService,
		"VAULT_ROOT", plantedVaultRoot,
		"GITLAB_PAT", planted.GitLabPAT, "GITLAB_PROJECT", plantedGitLabProject,
		"NPM_TOKEN", planted.NPM, "NPM_SECOND", plantedNPMSecond,
	).Replace(tokenSeedYAML)
	seed, err := ParseSeed("seed.yaml", []byte(yaml))
	require.NoError(t, err)
	return seed
}

// tokenSandbox serves a sandbox seeded with a token of every kind.
func tokenSandbox(t *testing.T) (*Sandbox, string) {
	t.Helper()
	sb, err := New(tokenSeed(t), Options{})
	require.NoError(t, err)
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	return sb, srv.URL
}

// requireNoTokenInLog fails if any planted token or secret is in the call
// log, as the sandbox keeps it and as /_sandbox/calls and /_sandbox/state
// serve it.
func requireNoTokenInLog(t *testing.T, sb *Sandbox, url string) {
	t.Helper()
	planted.RequireNone(t, "the call log", sb.Calls(), sb.Tokens())
	for _, path := range []string{"/_sandbox/calls", "/_sandbox/state"} {
		res, err := http.Get(url + path)
		require.NoError(t, err)
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		require.NoError(t, err)
		planted.RequireNone(t, path, body)
	}
}

// tokenCalls returns the logged calls of a service and action.
func tokenCalls(sb *Sandbox, service, action string) []Call {
	var out []Call
	for _, c := range sb.Calls() {
		if c.Service == service && c.Action == action {
			out = append(out, c)
		}
	}
	return out
}

func doRequest(t *testing.T, method, url string, header map[string]string, body string) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	var v any
	if len(strings.TrimSpace(string(data))) > 0 {
		require.NoError(t, json.Unmarshal(data, &v), string(data))
	}
	out, _ := v.(map[string]any) // nil for an array
	return res, out
}

func TestTokenSeedRefusesWhatIsNotAToken(t *testing.T) {
	t.Parallel()
	base := "accounts:\n  - id: \"111122223333\"\n    users: [" + ResponderSeedUser + "]\n"
	for _, tc := range []struct{ tokens, want string }{
		{"tokens:\n  - {provider: github, value: ghp_short, owner: a}\n", "[5:31] tokens[0]: a github token's value must be ghp_/gho_/ghu_/ghs_/ghr_ and 36 letters or digits, or github_pat_ and 82 letters, digits or _ (got 9 characters, fingerprint " + alert.Fingerprint("ghp_short") + ")"},
		{"tokens:\n  - {provider: bitbucket, value: x, owner: a}\n", `[5:16] tokens[0]: provider "bitbucket" is not one of github, slack, vault, gitlab, npm`},
		{"tokens:\n  - {provider: npm, value: " + planted.NPM + "}\n", "tokens[0]: a npm token needs an owner"},
		{"tokens:\n  - {provider: npm, value: " + planted.NPM + ", owner: a}\n  - {provider: npm, value: " + planted.NPM + ", owner: b}\n", "tokens[1]: the token " + alert.Fingerprint(planted.NPM) + " is repeated"},
		{"tokens:\n  - {provider: slack, value: " + planted.SlackBot + ", owner: a, events: [{action: git.clone}]}\n", "tokens[0]: only GitHub tokens have audit-log events"},
		{"tokens:\n  - {provider: github, value: " + planted.GitHubPAT + ", owner: a, org: acme, events: [{action: clone}]}\n", `tokens[0]: event action "clone" is not category.action such as git.clone`},
		{"tokens:\n  - {provider: gitlab, value: " + planted.GitLabPAT + ", owner: a, kind: project}\n", "tokens[0]: a project access token needs a project_id above 0"},
		{"token_limits: {github_revoke_window: soon}\n", `token_limits: github_revoke_window "soon" is not a positive duration such as 1h`},
	} {
		_, err := ParseSeed("seed.yaml", []byte(base+tc.tokens))
		require.Error(t, err, tc.tokens)
		require.Contains(t, err.Error(), tc.want)
		planted.RequireNone(t, "a seed error", err)
	}
}

func TestTokenViewsNeverHoldValues(t *testing.T) {
	t.Parallel()
	sb, url := tokenSandbox(t)
	views := sb.Tokens()
	require.Len(t, views, 14)
	require.Equal(t, TokenView{Provider: ProviderGitHub, Fingerprint: alert.Fingerprint(planted.GitHubPAT), Owner: "octocat", Active: true}, views[0])
	require.True(t, sb.TokenActive(planted.NPM))
	require.False(t, sb.TokenActive("npm_unknown"))
	require.True(t, sb.RevokeToken(planted.NPM))
	require.False(t, sb.RevokeToken(planted.NPM))
	require.False(t, sb.TokenActive(planted.NPM))
	requireNoTokenInLog(t, sb, url)
}

func httptestServer(h http.Handler) *httptest.Server { return httptest.NewServer(h) }
