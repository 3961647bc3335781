package triggers

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-github/v60/github"
	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/alert"
	plant "github.com/stanchhq/stanch/internal/planted"
	"github.com/stanchhq/stanch/internal/testkit"
	"github.com/stanchhq/stanch/leaked"
	"github.com/stanchhq/stanch/sandbox"
)

// tokenKinds is what each planted token is, as provider/token_type.
var tokenKinds = map[string]string{
	plant.GitHubPAT:            "github/personal_access_token",
	plant.GitHubFineGrainedPAT: "github/fine_grained_personal_access_token",
	plant.GitHubOAuth:          "github/oauth_access_token",
	plant.GitHubUserToServer:   "github/user_access_token",
	plant.GitHubRefresh:        "github/refresh_token",
	plant.GitHubInstallation:   "github/installation_access_token",
	plant.SlackBot:             "slack/bot_token",
	plant.SlackUser:            "slack/user_token",
	plant.SlackRefresh:         "slack/refresh_token",
	plant.GitLabPAT:            "gitlab/access_token",
	plant.NPM:                  "npm/access_token",
	plant.VaultService:         "vault/service_token",
	plant.VaultBatch:           "vault/batch_token",
	plant.VaultLegacyService:   "vault/service_token",
}

// requireTokenAlerts checks that the report made one alert for each
// planted token, identified by its fingerprint, of the kind its prefix
// says, with the value remembered by this process and found nowhere in
// the report; it returns the alerts that are no planted token.
func requireTokenAlerts(t *testing.T, rep Report) []alert.Alert {
	t.Helper()
	plant.RequireNone(t, "the report", rep)
	data, err := json.Marshal(rep)
	require.NoError(t, err)
	plant.RequireNone(t, "the report as JSON", data)
	byID := map[string]alert.Alert{}
	var others []alert.Alert
	for _, a := range rep.Alerts {
		if a.Credential.Provider == "aws" || a.Credential.TokenType == "" {
			others = append(others, a)
			continue
		}
		byID[a.Credential.ID] = a
	}
	for token, kind := range tokenKinds {
		fp := alert.Fingerprint(token)
		a, ok := byID[fp]
		require.True(t, ok, "an alert for the %s… token (%s)", token[:4], kind)
		require.Equal(t, kind, a.Credential.Provider+"/"+a.Credential.TokenType)
		require.Equal(t, alert.CredentialToken, a.Credential.Kind)
		got, ok := leaked.Process.Lookup(fp)
		require.True(t, ok, "the %s… token is remembered for the action that revokes it", token[:4])
		require.Equal(t, token, got)
	}
	require.Len(t, byID, len(tokenKinds))
	return others
}

// TestGitleaksRealTokenReports reads gitleaks 8.30.1's own reports of the
// files in testdata/token-scan (see its README): every rule id it used
// for the planted tokens, git and dir modes.
func TestGitleaksRealTokenReports(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"gitleaks-tokens-git.json", "gitleaks-tokens-dir.json"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			data := load(t, name)
			require.Equal(t, FormatGitleaks, Recognise(data))
			rep, err := ParseDocument(data, now, SourceFiles{})
			require.NoError(t, err)
			require.Empty(t, rep.Skipped)
			others := requireTokenAlerts(t, rep)
			require.Len(t, others, 1, "the password, in no token shape")
			require.Equal(t, "generic-api-key", others[0].Credential.Provider)
			for _, a := range rep.Alerts {
				require.Equal(t, alert.SourceGitleaks, a.Source)
				if strings.HasSuffix(name, "-git.json") {
					require.Equal(t, "4941a289dd2db9c33d160fb39666b7bb596c66da", a.Location.Commit)
				}
			}
		})
	}
}

// A `gitleaks --redact` report hides the tokens: each is read again from
// the scanned file, at the reported line.
func TestGitleaksRedactedTokensReadFromTheScannedFile(t *testing.T) {
	t.Parallel()
	data := load(t, "gitleaks-tokens-dir-redacted.json")
	require.NotContains(t, string(data), plant.GitHubPAT)
	rep, err := ParseGitleaks(data, now, SourceFiles{Dirs: []string{"testdata/token-scan"}})
	require.NoError(t, err)
	requireTokenAlerts(t, rep)

	rep, err = ParseGitleaks(data, now, SourceFiles{})
	require.NoError(t, err)
	plant.RequireNone(t, "the report", rep)
	require.Len(t, rep.Skipped, 15)
	require.Contains(t, rep.Skipped[1].Reason, "the report hides the token (gitleaks --redact) and ")
}

// The real output of git-secrets 1.3.0 (testdata/token-scan/README.md):
// each matched line's token becomes an alert; the line with no token
// becomes one that says it is reported only. The lines are kept nowhere.
func TestGitSecretsRealOutput(t *testing.T) {
	t.Parallel()
	for name, commit := range map[string]string{"git-secrets-scan.txt": "", "git-secrets-history.txt": "4941a289dd2db9c33d160fb39666b7bb596c66da"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			data := load(t, name)
			require.Equal(t, FormatGitSecrets, Recognise(data))
			rep, err := ParseDocument(data, now, SourceFiles{})
			require.NoError(t, err)
			require.Empty(t, rep.Unactionable())
			others := requireTokenAlerts(t, rep)
			require.Len(t, others, 1)
			pw := others[0]
			require.Equal(t, alert.Location{Path: "ci/publish.sh", Line: 7, Commit: commit}, pw.Location)
			require.Empty(t, pw.Credential.Provider)
			require.Equal(t, "git-secrets matched a prohibited pattern in ci/publish.sh:7, but the line holds no credential stanch knows (an AWS key id or a marked token): reported only, nothing can be revoked automatically; rotate it by hand", pw.Title)
			require.NotContains(t, string(pw.Raw)+pw.Title+pw.DedupKey, "correct-horse")
			for _, a := range rep.Alerts {
				require.Equal(t, alert.SourceGitSecrets, a.Source)
				require.Equal(t, commit, a.Location.Commit)
				require.NoError(t, a.Validate())
			}
			gh := alertFor(t, rep, plant.GitHubPAT)
			require.Equal(t, "git-secrets found a github personal_access_token (ghp_…) in config/tokens.env:2", gh.Title)
			require.Equal(t, alert.Location{Path: "config/tokens.env", Line: 2, Commit: commit}, gh.Location)
		})
	}
}

func alertFor(t *testing.T, rep Report, token string) alert.Alert {
	t.Helper()
	for _, a := range rep.Alerts {
		if a.Credential.ID == alert.Fingerprint(token) {
			return a
		}
	}
	t.Fatalf("no alert for the %s… token", token[:4])
	return alert.Alert{}
}

// git-secrets' lines as its hooks and scans print them: an AWS key id, two
// tokens on one line (two alerts), two key ids (which one leaked is not
// known), and lines that are no findings.
func TestGitSecretsLines(t *testing.T) {
	t.Parallel()
	out := "deploy/settings.py:12:aws_access_key_id = AKIAIOSFODNN7EXAMPLE\n" +
		"app/config.yml:3:tokens: [" + plant.SlackBot + ", " + plant.NPM + "]\n" +
		"keys.txt:1:AKIAIOSFODNN7EXAMPLE AKIAI44QH8DHBEXAMPLE\n" +
		"warning: something\n\n" + gitSecretsError + "\n\nPossible mitigations:\n- Mark false positives as allowed using: git config --add secrets.allowed ...\n"
	rep, err := ParseGitSecrets([]byte(out), now)
	require.NoError(t, err)
	plant.RequireNone(t, "the report", rep)
	require.Len(t, rep.Alerts, 3)
	require.Equal(t, "AKIAIOSFODNN7EXAMPLE", rep.Alerts[0].Credential.ID)
	require.Equal(t, alert.CredentialAccessKey, rep.Alerts[0].Credential.Kind)
	require.Equal(t, alert.Fingerprint(plant.SlackBot), rep.Alerts[1].Credential.ID)
	require.Equal(t, alert.Fingerprint(plant.NPM), rep.Alerts[2].Credential.ID)
	require.Equal(t, []Skipped{
		{Where: "line 3 (keys.txt:1)", Reason: "the matched line holds more than one AWS access key id, so which one leaked is not known; give each to stanch run --alert"},
		{Where: "line 4", Reason: "not a git-secrets finding (path:line:content)", NotAFinding: true},
	}, rep.Skipped)
}

// truffleHog's findings for each token: the detector names of its
// proto/detectors.proto, the value in Raw. The value decides the kind; the
// detector name places a value of a shape stanch does not know.
func TestTruffleHogTokenDetectors(t *testing.T) {
	t.Parallel()
	detectors := map[string]string{"ghp_": "Github", "gith": "Github", "gho_": "Github", "ghu_": "Github", "ghr_": "Github", "ghs_": "Github",
		"xoxb": "Slack", "xoxp": "Slack", "xoxe": "Slack", "glpa": "Gitlab", "npm_": "NpmToken", "hvs.": "HashiCorpVaultAuth", "hvb.": "HashiCorpVaultAuth", "s.Q2": "HashiCorpVaultAuth"}
	var lines []string
	for _, token := range plant.AllTokens {
		line, err := json.Marshal(map[string]any{
			"SourceMetadata": map[string]any{"Data": map[string]any{"Git": map[string]any{"commit": "4941a289dd2db9c33d160fb39666b7bb596c66da", "file": "config/tokens.env", "repository": "https://github.com/acme/app.git", "line": 2}}},
			"SourceID":       1, "SourceType": 16, "SourceName": "trufflehog - git", "DetectorType": 8, "DetectorName": detectors[token[:4]],
			"DecoderName": "PLAIN", "Verified": true, "Raw": token, "RawV2": "", "Redacted": "", "ExtraData": nil, "StructuredData": nil,
		})
		require.NoError(t, err)
		lines = append(lines, string(line))
	}
	unknown := strings.Replace(lines[0], plant.GitHubPAT, "legacy-github-token-0123456789abcdef", 1)
	rep, err := ParseDocument([]byte(strings.Join(append(lines, unknown), "\n")), now, SourceFiles{})
	require.NoError(t, err)
	require.Empty(t, rep.Skipped)
	others := requireTokenAlerts(t, rep)
	require.Len(t, others, 1)
	require.Equal(t, "github", others[0].Credential.Provider, "the detector's name places a value of an unknown shape")
	require.Equal(t, "critical", rep.Alerts[0].Severity)
}

// The GitHub REST API's alert, as GitHub's documentation shows it (a
// token type): the secret literal is the token, so no key id is needed.
func TestGitHubDocsAlertWithAToken(t *testing.T) {
	t.Parallel()
	var gh github.SecretScanningAlert
	require.NoError(t, json.Unmarshal(load(t, "github-alert-token.json"), &gh))
	cred, ok, err := githubCredential(gh.GetSecretType(), gh.GetSecret())
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, alert.Credential{Provider: "github", Kind: alert.CredentialToken, TokenType: "personal_access_token", ID: alert.Fingerprint(plant.GitHubPAT)}, cred)
	got, ok := leaked.Process.Lookup(cred.ID)
	require.True(t, ok)
	require.Equal(t, plant.GitHubPAT, got)

	// A secret type stanch maps whose literal has no shape it knows.
	cred, ok, err = githubCredential("slack_incoming_webhook_url", "https://hooks.slack.com/services/not-a-real-shape")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "slack/incoming_webhook_url", cred.Provider+"/"+cred.TokenType)
	cred, _, _ = githubCredential("hashicorp_vault_batch_token", "hvb.short")
	require.Equal(t, "vault/batch_token", cred.Provider+"/"+cred.TokenType)
}

// TestGitHubResolverTokens resolves secret-scanning alerts of each token
// type through the sandbox's GitHub API: no key id is looked for, the id
// is the token's fingerprint, the repository and alert number are kept
// (an action can fetch the value again), the value is remembered, and it
// is nowhere in the alerts.
func TestGitHubResolverTokens(t *testing.T) {
	t.Parallel()
	types := map[string]string{
		plant.GitHubPAT: "github_personal_access_token", plant.GitHubFineGrainedPAT: "github_personal_access_token",
		plant.GitHubOAuth: "github_oauth_access_token", plant.GitHubUserToServer: "github_app_installation_access_token",
		plant.GitHubRefresh: "github_refresh_token", plant.GitHubInstallation: "github_app_installation_access_token",
		plant.SlackBot: "slack_api_token", plant.SlackUser: "slack_api_token", plant.SlackRefresh: "slack_api_token",
		plant.GitLabPAT: "gitlab_access_token", plant.NPM: "npm_access_token", plant.VaultService: "hashicorp_vault_service_token",
		plant.VaultBatch: "hashicorp_vault_batch_token", plant.VaultLegacyService: "hashicorp_vault_service_token",
	}
	seed := "accounts:\n  - id: \"111122223333\"\n    users: [" + sandbox.ResponderSeedUser + "]\ngithub:\n  token: ghp_resolver\n  alerts:\n"
	for i, token := range plant.AllTokens {
		seed += "    - {repo: acme/app, number: " + itoa(i+1) + ", secret_type: " + types[token] + ", secret: \"" + token + "\"," +
			" locations: [{path: config/tokens.env, line: " + itoa(i+2) + ", commit: 4941a289dd2db9c33d160fb39666b7bb596c66da}]}\n"
	}
	sb := testkit.Sandbox(t, testkit.Seed(t, seed))
	r := &GitHubResolver{Client: sb.GitHubClient(t, "ghp_resolver"), Now: func() time0 { return now }}
	var rep Report
	for i := range plant.AllTokens {
		alerts, err := r.Resolve(context.Background(), []byte(`{"repo":"acme/app","number":`+itoa(i+1)+`,"action":"created"}`))
		require.NoError(t, err)
		require.Len(t, alerts, 1)
		a := alerts[0]
		require.Equal(t, alert.Location{Repo: "acme/app", Path: "config/tokens.env", Line: i + 2, Commit: "4941a289dd2db9c33d160fb39666b7bb596c66da", URL: a.Location.URL, AlertNumber: i + 1}, a.Location)
		require.Equal(t, "github:acme/app#"+itoa(i+1), a.DedupKey)
		rep.Alerts = append(rep.Alerts, a)
	}
	requireTokenAlerts(t, rep)
}

type time0 = time.Time

func itoa(n int) string { return strconv.Itoa(n) }
