package alert

import (
	"regexp"
	"strings"
)

// Providers whose tokens stanch recognises by their shape, besides aws.
const (
	ProviderGitHub = "github"
	ProviderSlack  = "slack"
	ProviderGitLab = "gitlab"
	ProviderNPM    = "npm"
	ProviderVault  = "vault"
)

// TokenKind is one kind of token a provider marks with a prefix. A token's
// value tells its kind (the prefix decides, as for AWS key ids); what a
// source says about it (a GitHub secret type, a scanner's rule) only
// informs, for values of a shape stanch does not know.
type TokenKind struct {
	// Provider is credential.provider: github, slack, gitlab, npm, vault.
	Provider string
	// Type is credential.token_type: personal_access_token, bot_token, …
	Type string
	// Prefix is the marker the provider puts on the token (ghp_, xoxb-,
	// hvs.). It is public, and is all of the value stanch ever shows.
	Prefix string
	// Revocable says whether stanch revokes this kind; the others are
	// reported only, with the reason in Note.
	Revocable bool
	// Note says why a kind is reported only, for people.
	Note string
	// shape matches the whole value.
	shape *regexp.Regexp
}

// Token kinds, most specific first: a value is of the first kind whose
// shape it has. The shapes follow the providers' documented formats and
// gitleaks 8.30's rules for them, a little wider where the provider has
// changed lengths over the years.
var TokenKinds = []TokenKind{
	{Provider: ProviderGitHub, Type: "personal_access_token", Prefix: "ghp_", Revocable: true, shape: token(`ghp_[A-Za-z0-9]{36,251}`)},
	{Provider: ProviderGitHub, Type: "fine_grained_personal_access_token", Prefix: "github_pat_", Revocable: true, shape: token(`github_pat_[A-Za-z0-9_]{70,251}`)},
	{Provider: ProviderGitHub, Type: "oauth_access_token", Prefix: "gho_", Revocable: true, shape: token(`gho_[A-Za-z0-9]{36,251}`)},
	{Provider: ProviderGitHub, Type: "user_access_token", Prefix: "ghu_", Revocable: true, shape: token(`ghu_[A-Za-z0-9]{36,251}`)},
	{Provider: ProviderGitHub, Type: "refresh_token", Prefix: "ghr_", Revocable: true, shape: token(`ghr_[A-Za-z0-9]{36,251}`)},
	{Provider: ProviderGitHub, Type: "installation_access_token", Prefix: "ghs_", Note: "a GitHub App installation token expires within an hour and GitHub's credential revocation API does not take it", shape: token(`ghs_[A-Za-z0-9]{36,251}`)},

	{Provider: ProviderSlack, Type: "bot_token", Prefix: "xoxb-", Revocable: true, shape: token(`xoxb-[0-9]{8,13}-[0-9]{8,13}-?[A-Za-z0-9-]{0,64}`)},
	{Provider: ProviderSlack, Type: "user_token", Prefix: "xoxp-", Revocable: true, shape: token(`xoxp-[0-9]{8,13}(-[0-9]{8,13}){2}-[A-Za-z0-9]{28,34}`)},
	{Provider: ProviderSlack, Type: "rotating_access_token", Prefix: "xoxe.", Note: "a rotating token (token rotation on): it expires within 12 hours; revoke the refresh token in the app's settings", shape: token(`xoxe\.xox[bp]-[0-9]-[A-Za-z0-9]{100,200}`)},
	{Provider: ProviderSlack, Type: "refresh_token", Prefix: "xoxe-", Note: "a refresh or configuration token: Slack revokes these from the app's settings, not with auth.revoke", shape: token(`xoxe-[0-9]-[A-Za-z0-9]{100,200}`)},
	{Provider: ProviderSlack, Type: "workspace_token", Prefix: "xoxa-", Note: "a workspace app token (retired by Slack): revoke it in the app's settings", shape: token(`xoxa-[0-9A-Za-z-]{20,200}`)},
	{Provider: ProviderSlack, Type: "legacy_token", Prefix: "xoxs-", Note: "a legacy session token: revoke it in Slack's admin pages", shape: token(`xoxs-[0-9A-Za-z-]{20,200}`)},
	{Provider: ProviderSlack, Type: "refresh_token", Prefix: "xoxr-", Note: "a refresh token: Slack revokes these from the app's settings, not with auth.revoke", shape: token(`xoxr-[0-9A-Za-z-]{20,200}`)},
	{Provider: ProviderSlack, Type: "app_level_token", Prefix: "xapp-", Note: "an app-level token: revoke it in the app's settings", shape: token(`xapp-[0-9]-[A-Z0-9]{9,12}-[0-9]{10,13}-[a-f0-9]{64}`)},
	{Provider: ProviderSlack, Type: "incoming_webhook_url", Prefix: "https://hooks.slack.com/services/", Note: "a webhook URL: delete the webhook in the app's settings", shape: token(`https://hooks\.slack\.com/services/T[A-Z0-9]{6,12}/B[A-Z0-9]{6,12}/[A-Za-z0-9]{24}`)},
	{Provider: ProviderSlack, Type: "workflow_webhook_url", Prefix: "https://hooks.slack.com/workflows/", Note: "a webhook URL: delete the workflow's webhook in Slack", shape: token(`https://hooks\.slack\.com/(workflows|triggers)/[A-Za-z0-9/+]{30,120}`)},

	{Provider: ProviderGitLab, Type: "access_token", Prefix: "glpat-", Revocable: true, shape: token(`glpat-[A-Za-z0-9_-]{20}|glpat-[A-Za-z0-9_-]{27,300}\.[0-9a-z]{2}[0-9a-z]{7}`)},
	{Provider: ProviderGitLab, Type: "deploy_token", Prefix: "gldt-", Note: "a deploy token: revoke it in the project's repository settings", shape: token(`gldt-[A-Za-z0-9_-]{20,300}`)},
	{Provider: ProviderGitLab, Type: "runner_token", Prefix: "glrt-", Note: "a runner authentication token: reset it in the runner's settings", shape: token(`glrt-[A-Za-z0-9_.-]{20,300}`)},
	{Provider: ProviderGitLab, Type: "feed_token", Prefix: "glft-", Note: "a feed token: reset it in the user's access token settings", shape: token(`glft-[A-Za-z0-9_-]{20,300}`)},
	{Provider: ProviderGitLab, Type: "pipeline_trigger_token", Prefix: "glptt-", Note: "a pipeline trigger token: revoke it in the project's CI/CD settings", shape: token(`glptt-[A-Za-z0-9_-]{20,300}`)},

	{Provider: ProviderNPM, Type: "access_token", Prefix: "npm_", Revocable: true, shape: token(`npm_[A-Za-z0-9]{36}`)},

	{Provider: ProviderVault, Type: "service_token", Prefix: "hvs.", Revocable: true, shape: token(`hvs\.[A-Za-z0-9_-]{24,300}`)},
	{Provider: ProviderVault, Type: "service_token", Prefix: "s.", Revocable: true, shape: token(`s\.[A-Za-z0-9]{24}`)},
	{Provider: ProviderVault, Type: "batch_token", Prefix: "hvb.", Note: "Vault batch tokens cannot be revoked: it expires with its TTL, or with its parent token", shape: token(`hvb\.[A-Za-z0-9_-]{100,300}`)},
}

func token(pattern string) *regexp.Regexp {
	return regexp.MustCompile(`^(?:` + pattern + `)$`)
}

// tokenShapes finds every marked token in text: a prefix at the start of
// a word and what the provider puts after it. One regexp for all kinds,
// so that text is read once.
var tokenShapes = func() *regexp.Regexp {
	parts := make([]string, 0, len(TokenKinds))
	for _, k := range TokenKinds {
		p := k.shape.String()
		parts = append(parts, p[len(`^(?:`):len(p)-len(`)$`)])
	}
	// A token starts a word and is not followed by more of its alphabet.
	return regexp.MustCompile(`(?:^|[^A-Za-z0-9_.-])((?:` + strings.Join(parts, `|`) + `))(?:$|[^A-Za-z0-9_-])`)
}()

// TokenKindOf returns the kind of token value is, by its shape alone
// (surrounding whitespace aside). It is false for anything else, including
// a longer text that holds a token (see TokensIn).
func TokenKindOf(value string) (TokenKind, bool) {
	value = strings.TrimSpace(value)
	for _, k := range TokenKinds {
		if k.shape.MatchString(value) {
			return k, true
		}
	}
	return TokenKind{}, false
}

// TokensIn returns the distinct marked tokens in text (a scanner's match, a
// line of a file), in the order they first appear.
func TokensIn(text string) []string {
	var out []string
	seen := map[string]bool{}
	for i := 0; i < len(text); {
		loc := tokenShapes.FindStringSubmatchIndex(text[i:])
		if loc == nil {
			break
		}
		v := text[i+loc[2] : i+loc[3]]
		if _, ok := TokenKindOf(v); ok && !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
		// The character after the token may start the next one.
		i += max(loc[3], 1)
	}
	return out
}

// TokenCredential is the credential of a token value: its provider and
// type from its shape, and its fingerprint as the id (never the value).
// It is false when the value is no token kind stanch knows.
func TokenCredential(value string) (Credential, bool) {
	k, ok := TokenKindOf(value)
	if !ok {
		return Credential{}, false
	}
	return Credential{Provider: k.Provider, Kind: CredentialToken, TokenType: k.Type, ID: Fingerprint(value)}, true
}

// TokenKindNamed returns the kind that provider and type name, for an alert
// whose value is not at hand (so that a playbook or an action can tell
// whether stanch revokes it).
func TokenKindNamed(provider, typ string) (TokenKind, bool) {
	for _, k := range TokenKinds {
		if k.Provider == provider && k.Type == typ {
			return k, true
		}
	}
	return TokenKind{}, false
}
