package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/internal/planted"
	"github.com/stanchhq/stanch/reportlink"
)

// tellPlaybook contains the key and tells Slack.
const tellPlaybook = `
name: contain-and-tell
on:
  providers: [aws]
steps:
  - id: identify
    action: aws.identify_key
    with:
      access_key_id: ${{ alert.credential.id }}
  - id: deactivate
    action: aws.deactivate_key
    with:
      access_key_id: ${{ alert.credential.id }}
      user_name: ${{ steps.identify.outputs.user_name }}
      account: ${{ steps.identify.outputs.account }}
  - id: tell
    action: slack.notify
    with:
      channel: "#sec-incidents"
`

// reportsPlaybook is tellPlaybook that also resolves the GitHub alert with
// the default comment: the message and the comment carry the link to the
// report.
const reportsPlaybook = tellPlaybook + `  - id: resolve
    action: github.resolve_alert
    with:
      repository: ${{ alert.location.repo }}
      alert_number: ${{ alert.location.alert_number }}
`

// publicBase is the public URL stanch serve is told it has: links carry
// it; the test asks the process where it really listens.
const publicBase = "https://stanch.example.com"

var recordLinkRe = regexp.MustCompile(`<(` + regexp.QuoteMeta(publicBase) + `/reports/[^|>]+)\|Incident record>`)

// stanch serve serves the report of a run at the link its Slack incident
// message and its GitHub resolution comment carry; a changed run id,
// expiry or signature, an expired link, no credentials and a run that does
// not exist all get one and the same 404; a bearer token reads any report.
func TestServeReportsAtSignedLinks(t *testing.T) {
	t.Parallel()
	e := newE2EWithSeed(t, slackSeed(t))
	token := strings.Repeat("r", 20) + "-bearer-token-for-reports"
	e.env = append(e.slackEnv(), envReportBaseURL+"="+publicBase, envReportSigningKey+"="+testReportKey, envReportBearerTokens+"="+token)
	playbook := filepath.Join(e.dir, "reports.yaml")
	require.NoError(t, os.WriteFile(playbook, []byte(reportsPlaybook), 0o600))
	base, _, stderr := e.startServeWith(t, playbook, "unused-eventbridge-secret")

	// Before any run: what a made-up run with a made-up signature gets.
	refused := getReport(t, base+"/reports/run_01jdzzzzzzzzzzzzzzzzzzzzzz?expires=4102444800&mac="+strings.Repeat("0", 64), "")
	require.Equal(t, http.StatusNotFound, refused.status)

	created := []byte(`{"action":"created","alert":{"number":42,"secret_type":"aws_access_key_id","secret_type_display_name":"Amazon AWS Access Key ID","html_url":"https://github.com/acme/payments-service/security/secret-scanning/42"},
"repository":{"id":1,"name":"payments-service","full_name":"acme/payments-service","private":true},"organization":{"login":"acme"},"sender":{"login":"octocat"}}`)
	require.Equal(t, http.StatusOK, signedGitHub(t, base+"/hooks/github", "secret_scanning_alert", "d-1", created, githubSecret))

	// The Slack message and the GitHub comment carry the same link.
	var link, comment string
	require.Eventually(t, func() bool {
		a, ok := e.sb.GitHubAlert("acme/payments-service", 42)
		comment = a.ResolutionComment
		if !ok || a.State != "resolved" {
			return false
		}
		for _, m := range e.sb.SlackMessages(slackChannel) {
			for _, s := range slackStrings(t, m) {
				if found := recordLinkRe.FindStringSubmatch(s); found != nil {
					link = strings.ReplaceAll(found[1], "&amp;", "&")
				}
			}
		}
		return link != ""
	}, 60*time.Second, 20*time.Millisecond, "no incident message with a link, or the alert is not resolved; log:\n%s", stderr.String())
	runID := runIDPattern.FindString(link)
	require.NotEmpty(t, runID, link)
	require.Equal(t, "Resolved by stanch run "+runID+" — incident record: "+link, e.anchored(t, runID, comment))

	u, err := url.Parse(link)
	require.NoError(t, err)
	q := u.Query()
	at := func(path string, query url.Values) string { return base + path + "?" + query.Encode() }
	ok := getReport(t, base+strings.TrimPrefix(link, publicBase), "")
	require.Equal(t, http.StatusOK, ok.status, ok.body)
	require.Contains(t, ok.body, "<!doctype html>")
	require.Contains(t, ok.body, runID)
	require.Equal(t, "text/html; charset=utf-8", ok.header.Get("Content-Type"))
	require.Equal(t, "default-src 'none'; style-src 'unsafe-inline'; img-src data:", ok.header.Get("Content-Security-Policy"))
	require.Equal(t, "nosniff", ok.header.Get("X-Content-Type-Options"))
	require.Equal(t, "no-referrer", ok.header.Get("Referrer-Policy"))
	require.Equal(t, "private, no-store", ok.header.Get("Cache-Control"))

	with := func(key, value string) url.Values {
		c := url.Values{"expires": {q.Get("expires")}, "mac": {q.Get("mac")}}
		c.Set(key, value)
		return c
	}
	signer, err := reportlink.NewSigner([]byte(testReportKey), time.Hour, publicBase)
	require.NoError(t, err)
	expired := strings.TrimPrefix(signer.SignedLink(runID, time.Now().Add(-time.Second)), publicBase)
	otherRun := strings.Replace(runID, runID[len(runID)-4:], "zzzz", 1)
	for name, got := range map[string]served{
		"changed run id":    getReport(t, at("/reports/"+otherRun, q), ""),
		"changed expiry":    getReport(t, at("/reports/"+runID, with("expires", "4102444800")), ""),
		"changed signature": getReport(t, at("/reports/"+runID, with("mac", strings.Repeat("ab", 32))), ""),
		"expired":           getReport(t, base+expired, ""),
		"no credentials":    getReport(t, base+"/reports/"+runID, ""),
		"wrong token":       getReport(t, base+"/reports/"+runID, token+"x"),
		"unknown run":       getReport(t, base+strings.TrimPrefix(signer.Link(otherRun, time.Now()), publicBase), ""),
	} {
		require.Equal(t, refused.status, got.status, name)
		require.Equal(t, refused.body, got.body, name)
	}

	byToken := getReport(t, base+"/reports/"+runID, token)
	require.Equal(t, http.StatusOK, byToken.status)
	require.Equal(t, ok.body, byToken.body)
	require.Equal(t, http.StatusNotFound, getReport(t, base+"/reports/"+otherRun, token).status, "a token may learn a run does not exist")

	// Nothing of the link's signature or the token reaches the log.
	log := stderr.String()
	require.Contains(t, log, "report request refused")
	require.NotContains(t, log, q.Get("mac"))
	require.NotContains(t, log, token)
	require.NotContains(t, log, testReportKey)
	planted.RequireNone(t, "the log", log)
	var list []map[string]any
	res := e.stanch(nil, "runs", "list", "--json", "--database", e.db)
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &list), res.stdout)
	require.Len(t, list, 1)
}

// Without report settings the route answers every request as an unknown
// path does: nothing says that reports exist.
func TestServeReportsOffRefusesAlike(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	base, _, _ := e.startServe(t, "unused-eventbridge-secret")
	unknownPath := getReport(t, base+"/no-such-path", "")
	for _, target := range []string{"/reports/run_01jdzzzzzzzzzzzzzzzzzzzzzz?expires=4102444800&mac=" + strings.Repeat("0", 64), "/reports/run_01jdzzzzzzzzzzzzzzzzzzzzzz"} {
		got := getReport(t, base+target, strings.Repeat("t", 40))
		require.Equal(t, http.StatusNotFound, got.status)
		require.Equal(t, unknownPath.body, got.body)
	}
}

type served struct {
	status int
	body   string
	header http.Header
}

func getReport(t *testing.T, target, bearer string) served {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, target, nil)
	require.NoError(t, err)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	var b strings.Builder
	_, err = io.Copy(&b, res.Body)
	require.NoError(t, err)
	return served{res.StatusCode, b.String(), res.Header}
}

// stanch config show lists the report settings and where the key and the
// tokens are read, never them; config check notes a key it cannot find.
func TestConfigShowsReportSettingsNotSecrets(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "stanch.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("report:\n  base_url: https://stanch.example.com\n  signing_key_file: report-key\n"), 0o600))
	token := strings.Repeat("s", 40)
	res := e.stanch([]string{envReportLinkLifetime + "=48h", envReportBearerTokens + "=" + token, envReportSigningKey + "=" + testReportKey}, "config", "show", "--config", cfg)
	require.Equal(t, 0, res.code, "stderr:\n%s", res.stderr)
	rows := map[string][2]string{}
	for _, l := range strings.Split(res.stdout, "\n") {
		if f := strings.Fields(l); len(f) == 4 {
			rows[f[0]] = [2]string{f[2], f[3]}
		}
	}
	require.Equal(t, [2]string{"https://stanch.example.com", cfg + ":2:13"}, rows["report.base_url"])
	require.Equal(t, [2]string{"48h", "$" + envReportLinkLifetime}, rows["report.link_lifetime"])
	require.Equal(t, [2]string{filepath.Join(dir, "report-key"), cfg + ":3:21"}, rows["report.signing_key_file"])
	require.Equal(t, [2]string{envReportSigningKey, "default"}, rows["report.signing_key_env"])
	require.Equal(t, [2]string{envReportBearerTokens, "default"}, rows["report.bearer_tokens_env"])
	require.NotContains(t, res.stdout+res.stderr, token)
	require.NotContains(t, res.stdout+res.stderr, testReportKey)

	res = e.stanch(nil, "config", "check", cfg)
	require.Equal(t, 0, res.code, "stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
	require.Contains(t, res.stderr, "note: report signing key (links to reports): file "+filepath.Join(dir, "report-key")+" is not readable here")

	// A command that makes links refuses a key it cannot read, saying where
	// it looked.
	res = e.stanch(nil, "run", "--config", cfg, "--playbook", "testdata/contain.yaml", "--alert", e.example("alerts/manual-aws-key.json"), "--database", e.db)
	require.NotEqual(t, 0, res.code)
	require.Contains(t, res.stderr, "read the report signing key ("+filepath.Join(dir, "report-key")+")")
}
