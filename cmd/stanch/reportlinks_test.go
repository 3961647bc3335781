package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/reportlink"
)

// testReportKey is a signing key as `openssl rand -hex 32` makes one.
const testReportKey = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

// Report links come from report: in the file and STANCH_REPORT_*
// variables, the variables first; the key and the tokens from where the
// file says, else their default variables.
func TestReportLinkSettings(t *testing.T) {
	for _, env := range []string{envReportBaseURL, envReportLinkLifetime, envReportSigningKey, envReportBearerTokens, "TEST_REPORT_KEY"} {
		t.Setenv(env, "")
	}
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "tokens"), []byte(strings.Repeat("a", 40)+"\n"+strings.Repeat("b", 40)+"\n"), 0o600))
	path := writeConfig(t, `
report:
  base_url: https://stanch.example.com
  link_lifetime: 48h
  signing_key_env: TEST_REPORT_KEY
  bearer_tokens_file: `+filepath.Join(dir, "tokens")+`
`)
	cfg, err := loadConfig(path)
	require.NoError(t, err)
	g := &globals{cfg: cfg}

	s, err := g.reportSigner()
	require.ErrorContains(t, err, "report.base_url is set ("+path+":3:13) but the report signing key is not ($TEST_REPORT_KEY)")
	require.ErrorContains(t, err, "openssl rand -hex 32")
	require.Nil(t, s)

	t.Setenv("TEST_REPORT_KEY", "too-short")
	_, err = g.reportSigner()
	require.ErrorContains(t, err, "$TEST_REPORT_KEY")
	require.ErrorContains(t, err, "has 9 bytes; it needs at least 32 (make one with: openssl rand -hex 32)")
	require.NotContains(t, err.Error(), "too-short", "the key is never repeated")

	t.Setenv("TEST_REPORT_KEY", testReportKey)
	s, err = g.reportSigner()
	require.NoError(t, err)
	require.Equal(t, 48*time.Hour, s.Lifetime())
	created := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	link := s.Link("run_01abc", created)
	require.True(t, strings.HasPrefix(link, "https://stanch.example.com/reports/./run_01abc?expires="), link)
	makeLink, err := g.recordLinks()
	require.NoError(t, err)
	require.Equal(t, link, makeLink("run_01abc", created))

	tokens, err := g.reportTokens()
	require.NoError(t, err)
	require.Equal(t, 2, tokens.Len())
	require.True(t, tokens.Match(strings.Repeat("b", 40)))

	// The variables win over the file.
	t.Setenv(envReportLinkLifetime, "1h")
	t.Setenv(envReportBaseURL, "http://127.0.0.1:8080/")
	s, err = g.reportSigner()
	require.NoError(t, err)
	require.Equal(t, time.Hour, s.Lifetime())
	require.True(t, strings.HasPrefix(s.Link("run_01abc", created), "http://127.0.0.1:8080/reports/./run_01abc?"))
	for v, want := range map[string]string{"0s": "must be above 0", "-1h": "must be above 0", "9000h": "at most", "soon": "is not a duration"} {
		t.Setenv(envReportLinkLifetime, v)
		_, err = g.reportSigner()
		require.ErrorContains(t, err, "$"+envReportLinkLifetime, v)
		require.ErrorContains(t, err, want, v)
	}
	t.Setenv(envReportLinkLifetime, "")

	// No base URL: a signer that verifies, and no links made.
	t.Setenv(envReportBaseURL, "")
	g = &globals{cfg: &fileConfig{at: cfg.at}}
	t.Setenv(envReportSigningKey, testReportKey)
	s, err = g.reportSigner()
	require.NoError(t, err)
	require.False(t, s.Makes())
	makeLink, err = g.recordLinks()
	require.NoError(t, err)
	require.Nil(t, makeLink)
	require.Equal(t, reportlink.DefaultLifetime, s.Lifetime())

	// Nothing set: nothing made, nothing refused.
	t.Setenv(envReportSigningKey, "")
	s, err = g.reportSigner()
	require.NoError(t, err)
	require.Nil(t, s)
	tokens, err = g.reportTokens()
	require.NoError(t, err)
	require.Nil(t, tokens)

	t.Setenv(envReportBearerTokens, strings.Repeat("c", 40)+",short")
	_, err = g.reportTokens()
	require.ErrorContains(t, err, "$"+envReportBearerTokens+": report bearer token 2 of 2 has 5 bytes")
}

func TestReportConfigErrors(t *testing.T) {
	planted := strings.Repeat("PlantedReportKey", 3)
	cases := map[string]string{
		"report:\n  base_url: stanch.example.com\n":                           `"stanch.example.com" is not a URL`,
		"report:\n  link_lifetime: 9000h\n":                                   "`report.link_lifetime` 9000h0m0s is not above 0 and at most a year",
		"report:\n  link_lifetime: -1h\n":                                     "is not a duration longer than zero",
		"report:\n  signing_key: " + planted + "\n":                           "unknown key `signing_key` in `report`",
		"report:\n  signing_key_env: " + planted + "=\n":                      "`report.signing_key_env` is not an environment variable's name",
		"report:\n  signing_key_env: A\n  signing_key_file: /run/k\n":         "give `report.signing_key_env` or `report.signing_key_file`, not both",
		"report:\n  bearer_tokens_env: A\n  bearer_tokens_file: /run/t\n":     "give `report.bearer_tokens_env` or `report.bearer_tokens_file`, not both",
		"report:\n  base_url: https://u:" + planted + "@stanch.example.com\n": "`report.base_url` holds credentials",
	}
	for body, want := range cases {
		_, err := loadConfig(writeConfig(t, body))
		require.ErrorContains(t, err, want, body)
		require.NotContains(t, err.Error(), planted, "a secret written in the file is not repeated")
	}
}
