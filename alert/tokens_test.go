package alert

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	plant "github.com/stanchhq/stanch/internal/planted"
)

// Each planted token is of the kind its prefix says, is found inside text,
// and its credential carries its fingerprint, never its value.
func TestTokenKindOfEachPlantedToken(t *testing.T) {
	t.Parallel()
	for value, want := range map[string][2]string{
		plant.GitHubPAT:            {ProviderGitHub, "personal_access_token"},
		plant.GitHubFineGrainedPAT: {ProviderGitHub, "fine_grained_personal_access_token"},
		plant.GitHubOAuth:          {ProviderGitHub, "oauth_access_token"},
		plant.GitHubUserToServer:   {ProviderGitHub, "user_access_token"},
		plant.GitHubRefresh:        {ProviderGitHub, "refresh_token"},
		plant.GitHubInstallation:   {ProviderGitHub, "installation_access_token"},
		plant.SlackBot:             {ProviderSlack, "bot_token"},
		plant.SlackUser:            {ProviderSlack, "user_token"},
		plant.SlackRefresh:         {ProviderSlack, "refresh_token"},
		plant.GitLabPAT:            {ProviderGitLab, "access_token"},
		plant.NPM:                  {ProviderNPM, "access_token"},
		plant.VaultService:         {ProviderVault, "service_token"},
		plant.VaultBatch:           {ProviderVault, "batch_token"},
		plant.VaultLegacyService:   {ProviderVault, "service_token"},
	} {
		k, ok := TokenKindOf(" " + value + "\n")
		require.True(t, ok, "%s…", value[:4])
		require.Equal(t, want, [2]string{k.Provider, k.Type}, "%s…", value[:4])
		require.True(t, strings.HasPrefix(value, k.Prefix))
		require.Equal(t, []string{value}, TokensIn(`export X="`+value+`" # leaked`), "%s… in a line", value[:4])
		cred, ok := TokenCredential(value)
		require.True(t, ok)
		require.Equal(t, Credential{Provider: want[0], Kind: CredentialToken, TokenType: want[1], ID: Fingerprint(value)}, cred)
		plant.RequireNone(t, "the credential", cred)
	}
	require.Len(t, plant.AllTokens, 14, "every planted token is checked above")
}

// Revocable says what stanch revokes; the others are reported, with why.
func TestTokenKindsRevocableOrSayWhyNot(t *testing.T) {
	t.Parallel()
	revocable := map[string]bool{}
	for _, k := range TokenKinds {
		if k.Revocable {
			revocable[k.Prefix] = true
			continue
		}
		require.NotEmpty(t, k.Note, "%s says why it is reported only", k.Prefix)
	}
	require.Equal(t, map[string]bool{"ghp_": true, "github_pat_": true, "gho_": true, "ghu_": true, "ghr_": true,
		"xoxb-": true, "xoxp-": true, "glpat-": true, "npm_": true, "hvs.": true, "s.": true}, revocable)
}

// What is no token stays no token: a prefix alone, a value too short or
// inside a longer word, a 24-letter name after "s.".
func TestTokenShapesAreNotGuessed(t *testing.T) {
	t.Parallel()
	for _, text := range []string{"ghp_", "ghp_short", "xghp_9naHVck6pbd4ZRj2SxphvDTwrzqwo72n3wZu", "glpat-KjWCg", "npm_install",
		"cls.Q2Jq8OS0Ie8l0iAjg5JbyuM2", "hvs.", "AKIAIOSFODNN7EXAMPLE", "sha256:0123456789abcdef"} {
		_, ok := TokenKindOf(text)
		require.False(t, ok, text)
		require.Empty(t, TokensIn(text), text)
	}
	require.Equal(t, []string{plant.GitHubPAT, plant.NPM}, TokensIn(plant.GitHubPAT+","+plant.NPM+" "+plant.GitHubPAT), "distinct, in order")
}

// RedactText removes every kind of token from free text, with the text
// around it kept, and whatever the prefix is followed by.
func TestRedactTextRemovesTokens(t *testing.T) {
	t.Parallel()
	for _, token := range plant.AllTokens {
		for _, text := range []string{
			token,
			"export TOKEN=" + token + " # deploy",
			`{"note":"` + token + `"}`,
			"https://ci.example.com/run?t=" + token + "&x=1",
			"auth failed for " + token + ": 401",
			"line 3: VAULT=" + token,
		} {
			out := RedactText(text)
			plant.RequireNone(t, "redacted text", out)
			require.Contains(t, out, Redacted, text)
		}
	}
	require.Equal(t, "run s.ContainsAnyOfTheseThings here", RedactText("run s.ContainsAnyOfTheseThings here"), "a name after s. is not a Vault token")
	require.Equal(t, "hook [REDACTED] failed", RedactText("hook https://hooks.slack.com/services/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 failed"))
}

// A token given as a credential id is replaced by its fingerprint, and its
// shape still names the provider and type.
func TestRedactTokenAsCredentialID(t *testing.T) {
	t.Parallel()
	a := Alert{Source: SourceManual, Credential: Credential{ID: plant.SlackBot}}
	a.Redact()
	require.Equal(t, Credential{Provider: ProviderSlack, TokenType: "bot_token", ID: Fingerprint(plant.SlackBot)}, a.Credential)
}
