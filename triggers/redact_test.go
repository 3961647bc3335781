package triggers

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/alert"
	plant "github.com/stanchhq/stanch/internal/planted"
	"github.com/stanchhq/stanch/internal/testkit"
	"github.com/stanchhq/stanch/sandbox"
)

// leakyURL is a CI URL with a secret in its query, URL-encoded.
var leakyURL = "https://ci.example.com/job/7/console?AWS_SECRET_ACCESS_KEY=" + url.QueryEscape(plant.InURL) + "&branch=main"

// requireClean fails if a piece of a planted secret is anywhere in what a
// parser made of a document: its alerts, its skipped entries, its error.
func requireClean(t *testing.T, what string, rep Report, err error) {
	t.Helper()
	if err != nil {
		plant.RequireNone(t, what+": the error", err)
	}
	for _, a := range rep.Alerts {
		plant.RequireNone(t, what+": an alert", a)
	}
	for _, s := range rep.Skipped {
		plant.RequireNone(t, what+": a skipped entry", s)
	}
}

// Every parser redacts every field of what it makes, and of what it
// skips: a finding's title, a path, a URL with a secret in its query
// (URL-encoded), a secret right after its key id, a principal.
func TestParsersRedactEveryField(t *testing.T) {
	t.Parallel()
	finding := string(load(t, "guardduty-accesskey.json"))
	titled := strings.Replace(finding, `"title": "API ListAccessKeys was invoked from a known malicious IP address."`,
		`"title": "Credentials `+plant.InTitle+` used from a known malicious IP address."`, 1)
	titled = strings.Replace(titled, `"userName": "ci-bot"`, `"userName": "ci-bot/`+plant.NoDigit+`"`, 1)
	require.NotEqual(t, finding, titled)
	secretKey := strings.Replace(finding, `"accessKeyId": "AKIAIOSFODNN7EXAMPLE"`, `"accessKeyId": "`+plant.Random+`"`, 1)
	secretKey = strings.Replace(secretKey, "c8b1b3d0-5f1e-4a4f-9b1e-3c2d1e0f9a8b", "key-field", 1)
	health := strings.ReplaceAll(string(load(t, "health-credentials-exposed.json")), "https://github.com/acme/payments-service/blob/4f1c9d2/deploy/settings.py", leakyURL)

	rep, err := ParseEventBridge([]byte("["+titled+","+secretKey+","+health+"]"), now)
	require.NoError(t, err)
	require.Len(t, rep.Alerts, 2)
	requireClean(t, "an EventBridge batch", rep, err)
	require.Contains(t, rep.Alerts[0].Title, alert.Redacted)
	require.Equal(t, "https://ci.example.com/job/7/console?AWS_SECRET_ACCESS_KEY="+alert.Redacted+"&branch=main", rep.Alerts[1].Location.URL)
	require.Len(t, rep.Skipped, 1)

	gitleaks := `[{"RuleID":"aws-access-token","File":"deploy/` + plant.InPath + `/settings.py","StartLine":3,"Commit":"4f1c9d2a7e3b5c6d8e9f0a1b2c3d4e5f6a7b8c9d",
		"Link":"` + leakyURL + `","Match":"AKIAIOSFODNN7EXAMPLE` + plant.AfterKeyID + `","Secret":"AKIAIOSFODNN7EXAMPLE"},
		{"RuleID":"aws-access-token","File":"config/` + plant.InPath + `.env","StartLine":5,"Match":"x","Secret":"REDACTED"}]`
	rep, err = ParseGitleaks([]byte(gitleaks), now, SourceFiles{})
	require.NoError(t, err)
	require.Len(t, rep.Alerts, 1)
	require.Len(t, rep.Skipped, 1, "the redacted finding whose file is not here")
	requireClean(t, "a gitleaks report", rep, err)

	trufflehog := `{"SourceMetadata":{"Data":{"Github":{"commit":"4f1c9d2a7e3b5c6d8e9f0a1b2c3d4e5f6a7b8c9d","file":"src/` + plant.InPath + `/main.go","repository":"https://github.com/acme/api.git","link":"` + leakyURL + `","line":4}}},` +
		`"DetectorName":"AWS","Verified":true,"Raw":"AKIAIOSFODNN7EXAMPLE","RawV2":"AKIAIOSFODNN7EXAMPLE` + plant.AfterKeyID + `","Redacted":"AKIAIOSFODNN7EXAMPLE","ExtraData":{"arn":"arn:aws:iam::111122223333:user/` + plant.NoUpper + `"}}` + "\n" +
		`{"SourceMetadata":{"Data":{"Filesystem":{"file":"/srv/` + plant.InPath + `/.env","line":3}}},"DetectorName":"AWS","Raw":"` + plant.Random + `"}`
	rep, err = ParseTruffleHog([]byte(trufflehog), now)
	require.NoError(t, err)
	require.Len(t, rep.Alerts, 1)
	require.Len(t, rep.Skipped, 1, "the AWS finding without a key id")
	requireClean(t, "truffleHog output", rep, err)

	doc := `{"source":"manual","title":"` + plant.InTitle + `","credential":{"id":"AKIAIOSFODNN7EXAMPLE"},"location":{"url":"` + leakyURL + `"}}`
	rep, err = ParseDocument([]byte(doc), now, SourceFiles{})
	require.NoError(t, err)
	requireClean(t, "a stanch Alert", rep, err)
	for _, bad := range []string{
		`{"source":"manual","credential":{"id":"AKIAIOSFODNN7EXAMPLE` + plant.AfterKeyID + `"}}`,
		`{"source":"manual","credential":{"provider":"aws","id":"` + plant.Random + `"}}`,
		`{"source":"manual","credential":{"id":"AKIAIOSFODNN7EXAMPLE"},"` + plant.NoUpper + `":1}`,
	} {
		rep, err := ParseDocument([]byte(bad), now, SourceFiles{})
		require.Error(t, err)
		requireClean(t, "a refused stanch Alert", rep, err)
	}
}

// The GitHub resolver: the literal, a location's path and everything the
// fetched alert holds are redacted in the alert it makes.
func TestGitHubResolverRedactsTheLiteralAndLocations(t *testing.T) {
	t.Parallel()
	sb := testkit.Sandbox(t, testkit.Seed(t, `
accounts:
  - id: "111122223333"
    users: [`+sandbox.ResponderSeedUser+`]
github:
  token: ghp_resolver
  alerts:
    - repo: acme/api
      number: 5
      secret_type: aws_access_key_id
      secret: AKIAIOSFODNN7EXAMPLE
      locations: [{path: "deploy/`+plant.InPath+`/settings.py", line: 4, commit: 1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e}]
    - repo: acme/api
      number: 6
      secret_type: aws_secret_access_key
      secret: "`+plant.InLiteral+`"
      locations: [{path: "deploy/`+plant.InPath+`/settings.py", line: 5, commit: 1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e}]
`))
	client := sb.GitHubClient(t, "ghp_resolver")
	r := &GitHubResolver{Client: client}
	alerts, err := r.Resolve(context.Background(), []byte(`{"repo":"acme/api","number":6,"action":"created"}`))
	require.NoError(t, err)
	require.Len(t, alerts, 1)
	require.Equal(t, "AKIAIOSFODNN7EXAMPLE", alerts[0].Credential.ID, "the key id of the paired alert")
	requireClean(t, "a resolved GitHub alert", Report{Alerts: alerts}, nil)
	require.Equal(t, alert.Redacted+".py", alerts[0].Location.Path, "the whole run the secret was in")
}

// A rejected or ignored event is answered, and logged, without quoting
// the body: a finding whose accessKeyId holds a secret got a 400 that
// quoted it.
func TestEventBridgeAnswersQuoteNoSecret(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer // ServeHTTP is called from this goroutine only
	h := NewEventBridge("X-Stanch-Token", []byte("s3cret"), &accepted{}, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	finding := string(load(t, "guardduty-accesskey.json"))
	for _, body := range []string{
		strings.Replace(finding, `"accessKeyId": "AKIAIOSFODNN7EXAMPLE"`, `"accessKeyId": "`+plant.Random+`"`, 1),
		strings.Replace(finding, `"accessKeyId": "AKIAIOSFODNN7EXAMPLE"`, `"accessKeyId": "AKIAIOSFODNN7EXAMPLE`+plant.AfterKeyID+`"`, 1),
		strings.Replace(finding, `"id": "c8b1b3d0-5f1e-4a4f-9b1e-3c2d1e0f9a8b"`, `"id": "`+plant.NoDigit+`"`, 1),
		`{"source":"aws.ec2","detail-type":"` + plant.NoUpper + `","detail":{}}`,
		`[{"source":"` + plant.InTitle + `","detail-type":"x","detail":{}}]`,
		`{"` + plant.InPath + `":1}`,
		`not json ` + plant.InURL,
	} {
		req := httptest.NewRequest(http.MethodPost, "/hooks/aws/eventbridge", bytes.NewReader([]byte(body)))
		req.Header.Set("X-Stanch-Token", "s3cret")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		answer, err := io.ReadAll(rec.Body)
		require.NoError(t, err)
		plant.RequireNone(t, "the answer", string(answer))
	}
	plant.RequireNone(t, "the log", logs.String())
}

// An SNS message that fails verification is refused without quoting it.
func TestSNSRefusalsQuoteNoSecret(t *testing.T) {
	t.Parallel()
	signer, err := sandbox.NewSNSSigner()
	require.NoError(t, err)
	var logs bytes.Buffer // ServeHTTP is called from this goroutine only
	h := NewSNS([]string{topic}, &accepted{}, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	h.FetchCert = func(string) (*x509.Certificate, error) { return signer.Cert, nil }
	msg := signer.Notification(topic, `{"source":"aws.health"}`, 1)
	var m map[string]any
	require.NoError(t, json.Unmarshal(msg, &m))
	m["SignatureVersion"] = plant.Random
	bad, err := json.Marshal(m)
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/hooks/aws/sns", bytes.NewReader(bad)))
	require.Equal(t, http.StatusUnauthorized, rec.Code)
	plant.RequireNone(t, "the answer", rec.Body.String())
	plant.RequireNone(t, "the log", logs.String())
}
