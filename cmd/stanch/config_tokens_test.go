package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The token providers' settings (docs/configuration.md, "Token
// providers"): the STANCH_* variable wins over the file, which wins over
// the provider's own variable (VAULT_ADDR), which wins over the default.
func TestTokenProviderSettingsPrecedence(t *testing.T) {
	for _, env := range []string{envSlackAPIURL, envVaultAddr, "VAULT_ADDR", envVaultNamespace, "VAULT_NAMESPACE", envGitLabURL, envNPMRegistry} {
		t.Setenv(env, "")
	}
	path := writeConfig(t, `
slack:
  api_url: https://slack.example.com/api
vault:
  address: https://vault.example.com:8200
gitlab:
  url: https://gitlab.example.com/
npm:
  registry: https://npm.example.com/
`)
	cfg, err := loadConfig(path)
	require.NoError(t, err)
	g := &globals{cfg: cfg}

	tok := g.tokenSettings()
	require.Equal(t, "https://slack.example.com/api/", tok.slackAPIURL, "slack-go joins method names to a base that ends in /")
	require.Equal(t, "https://vault.example.com:8200", tok.vaultAddress)
	require.Equal(t, "https://gitlab.example.com/api/v4", tok.gitlabURL, "an instance's URL becomes its REST base")
	require.Equal(t, "https://npm.example.com/", tok.npmRegistry)
	v, from := g.setting("vault.address")
	require.Equal(t, "https://vault.example.com:8200", v)
	require.Equal(t, path+":5:12", from)

	// The variables win over the file; VAULT_ADDR does not: the file is
	// stanch's own, VAULT_ADDR anyone's.
	t.Setenv(envGitLabURL, "http://127.0.0.1:9/gitlab/api/v4")
	t.Setenv(envNPMRegistry, "http://127.0.0.1:9/npm/")
	t.Setenv("VAULT_ADDR", "http://vault-addr:8200")
	tok = g.tokenSettings()
	require.Equal(t, "http://127.0.0.1:9/gitlab/api/v4", tok.gitlabURL, "a REST base is kept")
	require.Equal(t, "http://127.0.0.1:9/npm/", tok.npmRegistry)
	require.Equal(t, "https://vault.example.com:8200", tok.vaultAddress)
	t.Setenv(envVaultAddr, "http://stanch-vault:8200")
	require.Equal(t, "http://stanch-vault:8200", g.tokenSettings().vaultAddress)
	_, from = g.setting("vault.address")
	require.Equal(t, "$"+envVaultAddr, from)

	// With no file, VAULT_ADDR and VAULT_NAMESPACE apply; without them,
	// the action's default (empty here).
	t.Setenv(envVaultAddr, "")
	t.Setenv("VAULT_NAMESPACE", "admin")
	empty := &globals{cfg: &fileConfig{}}
	require.Equal(t, "http://vault-addr:8200", empty.tokenSettings().vaultAddress)
	require.Equal(t, "admin", empty.tokenSettings().vaultNamespace)
	t.Setenv("VAULT_ADDR", "")
	v, from = empty.setting("vault.address")
	require.Equal(t, [2]string{"", "default"}, [2]string{v, from})
	require.Equal(t, "", empty.tokenSettings().slackAPIURL, "empty: the action's own default")
}

// The Vault operator token is a secret: the file names its variable or
// file, and it is read when a step asks for it, not before.
func TestVaultOperatorTokenSources(t *testing.T) {
	planted := "hvs." + strings.Repeat("OperatorPlanted", 2)
	t.Setenv(envVaultOperatorToken, "")
	t.Setenv("TEST_STANCH_VAULT_OPERATOR", "")

	// Default: $STANCH_VAULT_OPERATOR_TOKEN, read at the call.
	g := &globals{cfg: &fileConfig{}}
	read := g.tokenSettings().vaultOperatorToken
	got, err := read()
	require.NoError(t, err)
	require.Empty(t, got, "nothing configured: method accessor then says so")
	t.Setenv(envVaultOperatorToken, planted)
	got, err = read()
	require.NoError(t, err)
	require.Equal(t, planted, got, "read when asked, not when the registry was built")

	// A variable the file names.
	cfg, err := loadConfig(writeConfig(t, "vault:\n  operator_token_env: TEST_STANCH_VAULT_OPERATOR\n"))
	require.NoError(t, err)
	read = (&globals{cfg: cfg}).tokenSettings().vaultOperatorToken
	got, err = read()
	require.NoError(t, err)
	require.Empty(t, got, "the named variable, not the default one")
	t.Setenv("TEST_STANCH_VAULT_OPERATOR", planted+"-env")
	got, err = read()
	require.NoError(t, err)
	require.Equal(t, planted+"-env", got)

	// A file, relative to the configuration's directory, read when asked.
	path := writeConfig(t, "vault:\n  operator_token_file: secrets/vault-operator\n")
	cfg, err = loadConfig(path)
	require.NoError(t, err)
	read = (&globals{cfg: cfg}).tokenSettings().vaultOperatorToken
	_, err = read()
	require.ErrorContains(t, err, "vault.operator_token_file")
	require.NoError(t, os.MkdirAll(filepath.Join(filepath.Dir(path), "secrets"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(filepath.Dir(path), "secrets", "vault-operator"), []byte(planted+"-file\n"), 0o600))
	got, err = read()
	require.NoError(t, err)
	require.Equal(t, planted+"-file", got)
}

func TestTokenProviderConfigErrors(t *testing.T) {
	planted := "hvs." + strings.Repeat("PlantedInTheFile", 2)
	cases := map[string]string{
		"vault:\n  adress: https://v:8200\n":                                           "did you mean `address`?",
		"gitlab:\n  uri: https://gitlab.example.com\n":                                 "did you mean `url`?",
		"npm:\n  registy: https://registry.npmjs.org/\n":                               "did you mean `registry`?",
		"vault:\n  operator_token: x\n":                                                "did you mean `operator_token_env`?",
		"vault:\n  address: vault.example.com:8200\n":                                  `"vault.example.com:8200" is not a URL`,
		"gitlab:\n  url: gitlab.example.com\n":                                         `"gitlab.example.com" is not a URL`,
		"slack:\n  api_url: ftp://slack.example.com/\n":                                `"ftp://slack.example.com/" is not a URL`,
		"npm:\n  registry: https://user:pass@npm.example.com/\n":                       "`npm.registry` holds credentials",
		"vault:\n  operator_token_env: A\n  operator_token_file: /run/secret/b\n":      "give `operator_token_env` or `operator_token_file`, not both",
		"vault:\n  operator_token_env: " + planted + "\n":                              "`vault.operator_token_env` is not an environment variable's name",
		"vault:\n  address: 1\n  address: 2\n":                                         "address",
		"vault:\n  address: [https://a]\n":                                             "vault.address",
		"npm:\n  registry: https://registry.npmjs.org/\nnmp:\n  registry: https://x\n": "did you mean `npm`?",
	}
	for body, want := range cases {
		_, err := loadConfig(writeConfig(t, body))
		require.ErrorContains(t, err, want, body)
		require.NotContains(t, err.Error(), planted, "a token written where its variable's name goes is not repeated")
		require.NotContains(t, err.Error(), "user:pass", "credentials in a URL are not repeated")
	}
}

// stanch config show lists the new settings with where each came from,
// and never a secret's value; config check notes a missing operator token
// only when the file names one.
func TestConfigShowsTokenProviderSettings(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "stanch.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("vault:\n  address: https://vault.example.com:8200\n  operator_token_file: vault-operator\ngitlab:\n  url: https://gitlab.example.com\n"), 0o600))
	planted := "hvs." + strings.Repeat("ShownNowhere", 2)
	res := e.stanch([]string{"STANCH_NPM_REGISTRY=https://npm.example.com/", envVaultOperatorToken + "=" + planted, "VAULT_NAMESPACE=admin"}, "config", "show", "--config", cfg)
	require.Equal(t, 0, res.code, "stderr:\n%s", res.stderr)
	rows := map[string][2]string{}
	for _, l := range strings.Split(res.stdout, "\n") {
		if f := strings.Fields(l); len(f) == 4 {
			rows[f[0]] = [2]string{f[2], f[3]}
		}
	}
	require.Equal(t, [2]string{"https://vault.example.com:8200", cfg + ":2:12"}, rows["vault.address"])
	require.Equal(t, [2]string{"admin", "$VAULT_NAMESPACE"}, rows["vault.namespace"])
	require.Equal(t, [2]string{filepath.Join(dir, "vault-operator"), cfg + ":3:24"}, rows["vault.operator_token_file"])
	require.Equal(t, [2]string{envVaultOperatorToken, "default"}, rows["vault.operator_token_env"])
	require.Equal(t, [2]string{"https://gitlab.example.com", cfg + ":5:8"}, rows["gitlab.url"])
	require.Equal(t, [2]string{"https://npm.example.com/", "$STANCH_NPM_REGISTRY"}, rows["npm.registry"])
	require.Equal(t, [2]string{"https://slack.com/api/", "default"}, rows["slack.api_url"])
	require.NotContains(t, res.stdout+res.stderr, planted)

	res = e.stanch(nil, "config", "check", cfg)
	require.Equal(t, 0, res.code, "stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
	require.Contains(t, res.stderr, fmt.Sprintf("note: Vault operator token (vault.revoke_token method: accessor): file %s is not readable here", filepath.Join(dir, "vault-operator")))
	res = e.stanch(nil, "config", "check", e.example("stanch.yaml"))
	require.NotContains(t, res.stderr, "Vault operator token", "not named: not needed")
}

// The token actions call where the configuration file says (no STANCH_*
// variable set), and stanch run revokes a token given in the alert file:
// the value is remembered before the alert is redacted, and appears in no
// output.
func TestRunRevokesTokensAtTheConfiguredEndpoints(t *testing.T) {
	t.Parallel()
	seed, err := os.ReadFile("testdata/seed.yaml")
	require.NoError(t, err)
	values := map[string]string{
		"slack":  "xoxb-" + "3333333333-4444444444-" + "ConfigTestSlackToken",
		"gitlab": "glpat-" + "ConfigTestGitLab0001",
		"npm":    "npm_" + "ConfigTestNpmToken" + strings.Repeat("0", 17) + "1",
		"vault":  "hvs." + "ConfigTestVaultToken" + strings.Repeat("x", 8),
	}
	operator := "hvs." + "ConfigTestVaultOperator" + strings.Repeat("y", 8)
	seed = append(seed, fmt.Sprintf(`
tokens:
  - {provider: slack, value: %s, owner: deploy-bot, team_id: T0ACME, user_id: U0DEPLOY, scopes: ["chat:write"]}
  - {provider: gitlab, value: %s, owner: alice, id: 42, name: ci, scopes: [api], user_id: "7"}
  - {provider: npm, value: %s, owner: alice}
  - {provider: vault, value: %s, owner: token-ci, scopes: [default], accessor: ci-accessor-1}
  - {provider: vault, value: %s, owner: operator, scopes: [root]}
`, values["slack"], values["gitlab"], values["npm"], values["vault"], operator)...)
	e := newE2EWithSeed(t, seed)

	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "vault-operator"), []byte(operator+"\n"), 0o600))
	cfg := filepath.Join(dir, "stanch.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`database: file:stanch.db
slack:
  api_url: %[1]s/slack/api
vault:
  address: %[1]s/vault
  operator_token_file: vault-operator
gitlab:
  url: %[1]s/gitlab
npm:
  registry: %[1]s/npm/
`, e.url)), 0o600))
	// Vault by accessor: the operator token from the file the
	// configuration names.
	vaultBook := filepath.Join(dir, "vault-accessor.yaml")
	book, err := os.ReadFile(e.example("playbooks/vault-token-leaked.yaml"))
	require.NoError(t, err)
	require.Contains(t, string(book), "      credential: ${{ alert.credential.id }}\n")
	book = []byte(strings.Replace(string(book), "      credential: ${{ alert.credential.id }}\n", "      credential: ${{ alert.credential.id }}\n      method: accessor\n", 1))
	require.NoError(t, os.WriteFile(vaultBook, book, 0o600))
	books := map[string]string{
		"slack":  e.example("playbooks/slack-token-leaked.yaml"),
		"gitlab": e.example("playbooks/gitlab-token-leaked.yaml"),
		"npm":    e.example("playbooks/npm-token-leaked.yaml"),
		"vault":  vaultBook,
	}
	for provider, value := range values {
		require.True(t, e.sb.TokenActive(value), provider)
		alertPath := filepath.Join(dir, provider+".json")
		require.NoError(t, os.WriteFile(alertPath, []byte(fmt.Sprintf(`{"source": "manual", "title": "a %s token", "credential": {"provider": %q, "kind": "token", "id": %q}}`, provider, provider, value)), 0o600))
		res := e.stanch(nil, "run", "--config", cfg, "--playbook", books[provider], "--alert", alertPath)
		require.Equal(t, 0, res.code, "%s\nstdout:\n%s\nstderr:\n%s", provider, res.stdout, res.stderr)
		require.False(t, e.sb.TokenActive(value), "%s: revoked at the configured endpoint\n%s", provider, res.stdout)
		require.NotContains(t, res.stdout+res.stderr, value, provider)
		require.NotContains(t, res.stdout+res.stderr, operator, provider)
		require.Contains(t, res.stdout, "sha256:", provider)
	}
	// The store holds fingerprints only.
	files, err := filepath.Glob(filepath.Join(dir, "stanch.db*"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		if info, err := os.Lstat(f); err == nil && !info.Mode().IsRegular() {
			continue // the token hand-off socket
		}
		db, err := os.ReadFile(f)
		require.NoError(t, err)
		for provider, value := range values {
			require.NotContains(t, string(db), value, "%s: %s", f, provider)
		}
		require.NotContains(t, string(db), operator, f)
	}
}

// stanch run --detach cannot revoke with a value it does not store: it
// says so.
func TestRunDetachedSaysATokenValueStaysHere(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	res := e.stanch(nil, "run", "--detach", "--database", e.db, "--playbook", e.example("playbooks/github-token-leaked.yaml"), "--alert", e.example("alerts/github-token.json"))
	require.Equal(t, 0, res.code, "stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
	require.Contains(t, res.stderr, "whose value only this process holds")
	require.NotContains(t, res.stdout+res.stderr, "ghp_FAKE")
}
