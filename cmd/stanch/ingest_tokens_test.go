package main

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/alert"
	plant "github.com/stanchhq/stanch/internal/planted"
	"github.com/stanchhq/stanch/triggers"
)

// `stanch ingest --format git-secrets` (and auto) reads git-secrets' real
// output: one alert per token, none holding a value, and says which are
// reported only.
func TestIngestGitSecretsFormat(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../../triggers/testdata/git-secrets-scan.txt")
	require.NoError(t, err)
	for _, format := range []string{"git-secrets", "auto"} {
		rep, err := parseFindings(format, data, triggers.SourceFiles{})
		require.NoError(t, err, format)
		require.Len(t, rep.Alerts, 15, format)
		plant.RequireNone(t, "the alerts of --format "+format, rep)
		var reported []string
		for _, a := range rep.Alerts {
			if why := reportedOnly(a.Credential); why != "" {
				reported = append(reported, a.Credential.Provider+"/"+a.Credential.TokenType)
			}
		}
		require.ElementsMatch(t, []string{"/", "github/installation_access_token", "slack/refresh_token", "vault/batch_token"}, reported, format)
	}
	_, err = parseFindings("gitsecrets", data, triggers.SourceFiles{})
	require.ErrorContains(t, err, "want auto, trufflehog, gitleaks, git-secrets, eventbridge or alert")
}

func TestIngestReportedOnlySaysWhy(t *testing.T) {
	t.Parallel()
	require.Empty(t, reportedOnly(alert.Credential{Provider: "aws", ID: "AKIAIOSFODNN7EXAMPLE"}))
	require.Empty(t, reportedOnly(alert.Credential{Provider: "github", TokenType: "personal_access_token"}))
	require.Equal(t, "Vault batch tokens cannot be revoked: it expires with its TTL, or with its parent token", reportedOnly(alert.Credential{Provider: "vault", TokenType: "batch_token"}))
	require.Equal(t, "stanch revokes no generic-api-key credential of this kind; rotate it by hand", reportedOnly(alert.Credential{Provider: "generic-api-key"}))
	require.Equal(t, "no credential stanch knows is in it; rotate it by hand", reportedOnly(alert.Credential{}))
}
