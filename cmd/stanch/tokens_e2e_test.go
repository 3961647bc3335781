package main

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/alert"
	plant "github.com/stanchhq/stanch/internal/planted"
	"github.com/stanchhq/stanch/record"
)

// The leaked-token tests (issue 15): for each provider, a real input (a
// GitHub secret-scanning webhook to stanch serve, or a scanner's report to
// stanch ingest) driven through the real binary and the example playbook to
// a revocation the sandbox verifies; no token value anywhere stanch writes.

// tokenAlertRepo and tokenAlertNumber name the GitHub secret-scanning alert
// that reports planted.GitHubPAT.
const (
	tokenAlertRepo   = "acme/api"
	tokenAlertNumber = 7
)

// tokenProvider is one provider's leaked token, how stanch learns of it and
// the sandbox call that revokes it.
type tokenProvider struct {
	name     string // github, slack, gitlab, npm, vault
	value    string
	revokeOp string // the sandbox's call log action that revokes it
	point    string // the crash point right after the provider took the revocation
}

var tokenProviders = []tokenProvider{
	{"github", plant.GitHubPAT, "RevokeCredentials", "github:token_revoked"},
	{"slack", plant.SlackBot, "auth.revoke", "slack:token_revoked"},
	{"gitlab", plant.GitLabPAT, "RevokePersonalAccessTokenSelf", "gitlab:token_revoked"},
	{"npm", plant.NPM, "DeleteToken", "npm:token_revoked"},
	{"vault", plant.VaultService, "RevokeSelf", "vault:token_revoked"},
}

func (p tokenProvider) playbook(e *e2e) string {
	return e.example("playbooks/" + p.name + "-token-leaked.yaml")
}

// tokenSeed is the Slack e2e seed with a leaked token of each provider and
// a GitHub secret-scanning alert about the GitHub one.
func tokenSeed(t *testing.T) []byte {
	t.Helper()
	seed := string(slackSeed(t))
	alertYAML := "  alerts:\n    - repo: " + tokenAlertRepo + "\n      number: 7\n      secret_type: github_personal_access_token\n      secret: " + plant.GitHubPAT +
		"\n      locations:\n        - {path: config/tokens.env, line: 2, commit: 0d1c9d2a7e3b5c6d8e9f0a1b2c3d4e5f6a7b8c9d}\n"
	require.Contains(t, seed, "  alerts:\n")
	seed = strings.Replace(seed, "  alerts:\n", alertYAML, 1)
	return []byte(seed + `
tokens:
  - {provider: github, value: ` + plant.GitHubPAT + `, owner: octocat, scopes: [repo, "read:org"], org: acme}
  - {provider: slack, value: ` + plant.SlackBot + `, owner: deploy-bot, team_id: T0ACME, user_id: U0DEPLOY, scopes: ["chat:write"]}
  - {provider: gitlab, value: ` + plant.GitLabPAT + `, owner: alice, id: 42, name: ci, scopes: [api], user_id: "7"}
  - {provider: npm, value: ` + plant.NPM + `, owner: alice}
  - {provider: vault, value: ` + plant.VaultService + `, owner: token-ci, scopes: [default, ci], accessor: ci-accessor-1}
`)
}

// newTokenE2E is the e2e sandbox of tokenSeed, with every token endpoint
// and Slack configured for stanch (serve and the commands alike).
func newTokenE2E(t *testing.T) *e2e {
	t.Helper()
	e := newE2EWithSeed(t, tokenSeed(t))
	e.env = e.tokenEnv()
	return e
}

func (e *e2e) tokenEnv() []string {
	return append(e.slackEnv(),
		"STANCH_GITHUB_TOKEN="+sandboxGitHubToken,
		"STANCH_GITHUB_API_URL="+e.url+"/api/v3/",
		"STANCH_VAULT_ADDR="+e.url+"/vault",
		"STANCH_GITLAB_URL="+e.url+"/gitlab/api/v4",
		"STANCH_NPM_REGISTRY="+e.url+"/npm/",
	)
}

// tokenReport writes a real scanner report from triggers/testdata, cut
// down to the findings of value, and returns its path: a gitleaks JSON
// report for Slack and GitLab, git-secrets' output (--scan, and
// --scan-history) for Vault and npm.
func (e *e2e) tokenReport(t *testing.T, p tokenProvider) string {
	t.Helper()
	var out []byte
	switch p.name {
	case "slack", "gitlab":
		data, err := os.ReadFile(e.testdata("gitleaks-tokens-dir.json"))
		require.NoError(t, err)
		var findings []map[string]any
		require.NoError(t, json.Unmarshal(data, &findings))
		var keep []map[string]any
		for _, f := range findings {
			if f["Secret"] == p.value {
				keep = append(keep, f)
			}
		}
		require.Len(t, keep, 1, p.name)
		out, err = json.MarshalIndent(keep, "", " ")
		require.NoError(t, err)
	case "npm", "vault":
		name := "git-secrets-scan.txt"
		if p.name == "npm" {
			name = "git-secrets-history.txt"
		}
		data, err := os.ReadFile(e.testdata(name))
		require.NoError(t, err)
		lines := strings.Split(string(data), "\n")
		var b strings.Builder
		found := 0
		for i, line := range lines {
			if strings.HasPrefix(line, "[ERROR]") || (line == "" && i+1 < len(lines) && strings.HasPrefix(lines[i+1], "[ERROR]")) {
				b.WriteString(strings.Join(lines[i:], "\n"))
				break
			}
			if strings.Contains(line, p.value) {
				b.WriteString(line + "\n")
				found++
			}
		}
		require.Equal(t, 1, found, p.name)
		out = []byte(b.String())
	default:
		t.Fatalf("no scanner report for %s", p.name)
	}
	path := filepath.Join(e.dir, p.name+"-report.txt")
	require.NoError(t, os.WriteFile(path, out, 0o600))
	return path
}

// ingestToken runs stanch ingest of report with p's example playbook.
func (e *e2e) ingestToken(p tokenProvider, report string, env ...string) result {
	return e.stanch(append(append([]string{}, e.env...), env...), "ingest", "--playbooks", p.playbook(e), "--database", e.db, report)
}

// tokenRuns returns the runs of the store.
func (e *e2e) tokenRuns(t *testing.T) []record.RunInfo {
	t.Helper()
	res := e.stanch(nil, "runs", "list", "--json", "--database", e.db)
	require.Equal(t, 0, res.code, res.stderr)
	var runs []record.RunInfo
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &runs), res.stdout)
	return runs
}

// showRun returns stanch runs show --json of id, as parsed and as printed.
func (e *e2e) showRun(t *testing.T, id string) (record.Show, string) {
	t.Helper()
	res := e.stanch(nil, "runs", "show", id, "--json", "--database", e.db)
	require.Equal(t, 0, res.code, res.stderr)
	var show record.Show
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &show), res.stdout)
	return show, res.stdout
}

func stepOf(show record.Show, id string) record.Step {
	for _, s := range show.Steps {
		if s.StepID == id {
			return s
		}
	}
	return record.Step{}
}

// requireRevokedOnce checks the end of a token's response: the sandbox
// refuses the token, one call revoked it, the store holds one run, which
// succeeded with the revoke step's outcome want, and no token value is in
// the outputs given, the store, the run, Slack or the sandbox's state and
// call log. It returns the run.
func (e *e2e) requireRevokedOnce(t *testing.T, p tokenProvider, want string, outputs ...string) record.Show {
	t.Helper()
	require.False(t, e.sb.TokenActive(p.value), "%s: the sandbox still accepts the token", p.name)
	require.Equal(t, 1, e.sb.EffectiveCount(p.revokeOp), "%s: exactly one effective %s", p.name, p.revokeOp)
	runs := e.tokenRuns(t)
	require.Len(t, runs, 1, "one run for the token")
	require.Equal(t, "succeeded", runs[0].Status, "%+v", runs[0])
	require.Equal(t, alert.Fingerprint(p.value), runs[0].Credential)
	show, printed := e.showRun(t, runs[0].ID)
	revoke := stepOf(show, "revoke")
	require.Equal(t, want, revoke.Outcome, "%+v", revoke)
	require.Equal(t, true, revoke.Outputs["revoked"], "%+v", revoke.Outputs)
	tell := stepOf(show, "tell")
	require.Equal(t, "done", tell.Outcome, "the Slack message: %+v", tell)
	require.NotEmpty(t, e.sb.SlackMessages(slackChannel), "the playbook told #sec-incidents")
	plant.RequireNone(t, p.name+": the commands' output", outputs)
	plant.RequireNone(t, p.name+": the store", dbFiles(t, e))
	plant.RequireNone(t, p.name+": runs show --json", printed)
	plant.RequireNone(t, p.name+": Slack", e.sb.SlackMessages(slackChannel))
	plant.RequireNone(t, p.name+": the sandbox's state (GitHub comments)", e.sb.State())
	plant.RequireNone(t, p.name+": the sandbox's call log", e.sb.Calls())
	if p.name == "github" {
		got, ok := e.sb.GitHubAlert(tokenAlertRepo, tokenAlertNumber)
		require.True(t, ok)
		require.Equal(t, "resolved", got.State)
		require.Equal(t, "revoked", got.Resolution)
		require.Equal(t, "stanch run "+runs[0].ID+" (github-token-leaked): token "+alert.Fingerprint(p.value)+" revoked ("+want+").", e.anchored(t, runs[0].ID, got.ResolutionComment))
		plant.RequireNone(t, "the GitHub alert's comment", got)
	}
	return show
}

// TestTokenRevokedFromScannerReport: for Slack, GitLab, npm and Vault, a
// real scanner report's finding, handed to `stanch ingest` with the
// provider's example playbook, ends with the token revoked at the
// provider, once, and its value nowhere.
func TestTokenRevokedFromScannerReport(t *testing.T) {
	t.Parallel()
	for _, p := range tokenProviders[1:] {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			e := newTokenE2E(t)
			require.True(t, e.sb.TokenActive(p.value))
			report := e.tokenReport(t, p)
			res := e.ingestToken(p, report)
			require.Equal(t, 0, res.code, "stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
			require.Contains(t, res.stdout, "1 run(s) started")
			show := e.requireRevokedOnce(t, p, "done", res.stdout, res.stderr)
			require.Contains(t, stepOf(show, "revoke").Message, alert.Fingerprint(p.value))

			// The same report again: the run exists, nothing more is revoked.
			again := e.ingestToken(p, report)
			require.Equal(t, 0, again.code, "stdout:\n%s\nstderr:\n%s", again.stdout, again.stderr)
			require.Contains(t, again.stdout, "1 already existed")
			e.requireRevokedOnce(t, p, "done", again.stdout, again.stderr)
		})
	}
}

// serveTokens starts stanch serve with the GitHub token example playbook
// (and the others given).
func (e *e2e) serveTokens(t *testing.T, playbooks ...string) (string, *exec.Cmd, *syncBuffer) {
	t.Helper()
	args := []string{}
	for _, pb := range playbooks {
		args = append(args, "--playbooks", pb)
	}
	return e.startServeWith(t, e.example("playbooks/github-token-leaked.yaml"), "unused-eventbridge-secret", args...)
}

// postTokenAlert delivers GitHub's secret_scanning_alert webhook about the
// leaked GitHub token, signed with the webhook secret.
func postTokenAlert(t *testing.T, base, delivery string) {
	t.Helper()
	require.Equal(t, http.StatusOK, signedGitHub(t, base+"/hooks/github", "secret_scanning_alert", delivery,
		githubWebhook(tokenAlertRepo, tokenAlertNumber, "github_personal_access_token"), githubSecret))
}

// waitResolved waits until the GitHub alert about the token is resolved
// and the run succeeded.
func (e *e2e) waitResolved(t *testing.T, log *syncBuffer) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if got, _ := e.sb.GitHubAlert(tokenAlertRepo, tokenAlertNumber); got.State == "resolved" {
			// and the run has recorded its end
			if out := e.stanch(nil, "runs", "list", "--json", "--database", e.db); out.code == 0 && strings.Contains(out.stdout, `"succeeded"`) {
				return
			}
		}
		require.True(t, time.Now().Before(deadline), "the GitHub alert was never resolved; log:\n%s", log.String())
		time.Sleep(20 * time.Millisecond)
	}
}

func stopServe(t *testing.T, cmd *exec.Cmd, log *syncBuffer) {
	t.Helper()
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err, "graceful shutdown exits 0; log:\n%s", log.String())
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop on SIGTERM")
	}
}

// TestTokenRevokedFromGitHubWebhook: GitHub's secret_scanning_alert webhook
// about a leaked GitHub token reaches stanch serve; the alert is read from
// GitHub (the sandbox), the token revoked through POST /credentials/revoke
// with the value read again from the alert, GitHub then refuses it, and the
// alert is resolved as revoked.
func TestTokenRevokedFromGitHubWebhook(t *testing.T) {
	t.Parallel()
	p := tokenProviders[0]
	e := newTokenE2E(t)
	base, cmd, log := e.serveTokens(t)
	postTokenAlert(t, base, "d-1")
	postTokenAlert(t, base, "d-1-redelivered")
	e.waitResolved(t, log)
	stopServe(t, cmd, log)

	show := e.requireRevokedOnce(t, p, "done", log.String())
	require.Equal(t, 1, e.sb.Count("RevokeCredentials"), "one request")
	require.Equal(t, []int{1}, e.sb.GitHubRevokeRequests())
	revoke := stepOf(show, "revoke")
	require.Equal(t, "octocat", revoke.Outputs["login"], "%+v", revoke.Outputs)
	require.Equal(t, "github:"+tokenAlertRepo+"#7", show.Run.DedupKey)
}

// TestTokenAlertsJoinOneIncident: GitHub's webhook and a gitleaks report
// about the same token (its fingerprint) are one incident: the report's
// alert joins the run the webhook started, and the token is revoked once.
func TestTokenAlertsJoinOneIncident(t *testing.T) {
	t.Parallel()
	p := tokenProviders[0]
	e := newTokenE2E(t)
	// GitHub's revocation budget is spent for now: the webhook's run waits
	// (open) rather than fails, and the second alert finds it open.
	e.sb.SetGitHubRevokeLimit(0, 3*time.Second)
	base, cmd, log := e.serveTokens(t)
	postTokenAlert(t, base, "d-1")
	deadline := time.Now().Add(30 * time.Second)
	for e.sb.Count("RevokeCredentials") == 0 {
		require.True(t, time.Now().Before(deadline), "no revocation request; log:\n%s", log.String())
		time.Sleep(20 * time.Millisecond)
	}

	// The same token in a gitleaks report, ingested beside the server:
	// ingest stores the alert and serve's workers have the run.
	data, err := os.ReadFile(e.testdata("gitleaks-tokens-dir.json"))
	require.NoError(t, err)
	var findings []map[string]any
	require.NoError(t, json.Unmarshal(data, &findings))
	var keep []map[string]any
	for _, f := range findings {
		if f["Secret"] == p.value {
			keep = append(keep, f)
		}
	}
	require.Len(t, keep, 1)
	out, err := json.Marshal(keep)
	require.NoError(t, err)
	report := filepath.Join(e.dir, "gitleaks-github.json")
	require.NoError(t, os.WriteFile(report, out, 0o600))
	ing := e.ingestToken(p, report)
	require.Equal(t, 0, ing.code, "stdout:\n%s\nstderr:\n%s", ing.stdout, ing.stderr)
	require.Contains(t, ing.stdout, "1 joined an open run")
	e.sb.SetGitHubRevokeLimit(60, time.Hour)

	e.waitResolved(t, log)
	stopServe(t, cmd, log)

	runs := e.tokenRuns(t)
	require.Len(t, runs, 1, "one incident for the token: %+v", runs)
	require.False(t, e.sb.TokenActive(p.value))
	require.Equal(t, 1, e.sb.EffectiveCount("RevokeCredentials"))
	require.Equal(t, []int{1}, e.sb.GitHubRevokeRequests(), "one accepted request, after the budget's reset")
	require.Equal(t, "succeeded", runs[0].Status)
	show, printed := e.showRun(t, runs[0].ID)
	require.Equal(t, "github:"+tokenAlertRepo+"#7", show.Run.DedupKey, "the webhook started the run")
	joined := false
	for _, j := range show.Journal {
		if j.Event == "alert_joined" && strings.Contains(j.Detail, "from gitleaks") {
			joined = true
		}
	}
	require.True(t, joined, "the gitleaks alert joined the run: %+v", show.Journal)
	require.Equal(t, "done", stepOf(show, "revoke").Outcome)
	require.Equal(t, "done", stepOf(show, "resolve_github_alert").Outcome)
	plant.RequireNone(t, "the outputs", log.String(), ing.stdout, ing.stderr, printed)
	plant.RequireNone(t, "the store", dbFiles(t, e))
	plant.RequireNone(t, "Slack and GitHub", e.sb.SlackMessages(slackChannel), e.sb.State())
}
