package triggers

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/alert"
)

var now = time.Date(2026, 11, 28, 12, 30, 0, 0, time.UTC)

// planted are secret values present in the test payloads; no alert may
// carry them anywhere.
var planted = []string{"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "ghp_EXAMPLEexampleEXAMPLEexample0123456789"}

func load(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	require.NoError(t, err)
	return data
}

func parse(t *testing.T, name string) []alert.Alert {
	t.Helper()
	rep, err := ParseDocument(load(t, name), now, SourceFiles{})
	require.NoError(t, err)
	require.Empty(t, rep.Skipped)
	alerts := rep.Alerts
	for _, a := range alerts {
		for _, secret := range planted {
			require.NotContains(t, string(a.Raw), secret)
			require.NotContains(t, a.Title+a.Credential.ID, secret)
		}
	}
	return alerts
}

func TestRecognise(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		`{"source":"manual","credential":{"id":"AKIAIOSFODNN7EXAMPLE"}}`:                               FormatAlert,
		`{"action":"created","alert":{"number":42},"repository":{"full_name":"o/r"}}`:                  FormatGitHub,
		`{"version":"0","detail-type":"GuardDuty Finding","source":"aws.guardduty","detail":{}}`:       FormatEventBridge,
		`[{"version":"0","detail-type":"GuardDuty Finding","source":"aws.guardduty","detail":{}}]`:     FormatEventBridge,
		`{"Type":"Notification","TopicArn":"arn:aws:sns:us-east-1:111122223333:t","Message":"{}"}`:     FormatSNS,
		`{"SourceMetadata":{},"DetectorName":"AWS","Verified":true}` + "\n" + `{"DetectorName":"AWS"}`: FormatTruffleHog,
		`[{"RuleID":"aws-access-token","File":"a.py","StartLine":3}]`:                                  FormatGitleaks,
		`{"hello":"world"}`: FormatUnknown,
		`not json`:          FormatUnknown,
	}
	for doc, want := range cases {
		require.Equal(t, want, Recognise([]byte(doc)), doc)
	}
}

func TestStanchAlert(t *testing.T) {
	t.Parallel()
	rep, err := ParseDocument([]byte(`{"source":"manual","credential":{"id":"AKIAIOSFODNN7EXAMPLE"}}`), now, SourceFiles{})
	require.NoError(t, err)
	require.Len(t, rep.Alerts, 1)
	require.Equal(t, "AKIAIOSFODNN7EXAMPLE", rep.Alerts[0].Credential.ID)

	_, err = ParseDocument([]byte(`{"action":"created","alert":{"number":42},"repository":{}}`), now, SourceFiles{})
	require.ErrorIs(t, err, ErrUnsupportedFormat)
	require.Contains(t, err.Error(), "GitHub secret_scanning_alert webhook")
}

func TestGuardDutyAccessKeyFinding(t *testing.T) {
	t.Parallel()
	alerts := parse(t, "guardduty-accesskey.json")
	require.Len(t, alerts, 1)
	a := alerts[0]
	require.Equal(t, alert.SourceGuardDuty, a.Source)
	require.Equal(t, alert.KindCredentialMisused, a.Kind)
	require.Equal(t, alert.Credential{Provider: "aws", Kind: alert.CredentialAccessKey, ID: "AKIAIOSFODNN7EXAMPLE", Account: "111122223333", Principal: "ci-bot"}, a.Credential)
	require.Equal(t, "high", a.Severity)
	require.Equal(t, "guardduty:111122223333:5ac5a4d1e6d0c3b0a9f8e7d6c5b4a392", a.DedupKey)
	require.False(t, a.Test)
	require.Contains(t, a.Title, "UnauthorizedAccess:IAMUser/MaliciousIPCaller")
}

func TestGuardDutyInstanceCredentialsAreRoleSessions(t *testing.T) {
	t.Parallel()
	a := parse(t, "guardduty-instance-exfiltration.json")[0]
	require.Equal(t, alert.CredentialRoleSession, a.Credential.Kind)
	require.Equal(t, "ASIAIOSFODNN7SESSION", a.Credential.ID)
	require.Equal(t, "app-server", a.Credential.Principal)
}

func TestGuardDutySampleFindingsAreTests(t *testing.T) {
	t.Parallel()
	a := parse(t, "guardduty-sample.json")[0]
	require.True(t, a.Test, "sample findings must never contain anything real")
	require.Equal(t, "GeneratedFindingAccessKeyId", a.Credential.ID)
	require.Equal(t, "medium", a.Severity)
}

func TestHealthCredentialsExposed(t *testing.T) {
	t.Parallel()
	alerts := parse(t, "health-credentials-exposed.json")
	require.Len(t, alerts, 1)
	a := alerts[0]
	require.Equal(t, alert.SourceHealth, a.Source)
	require.Equal(t, alert.Credential{Provider: "aws", Kind: alert.CredentialAccessKey, ID: "AKIAIOSFODNN7EXAMPLE", Account: "111122223333", Principal: "ci-bot"}, a.Credential)
	require.Equal(t, "https://github.com/acme/payments-service/blob/4f1c9d2/deploy/settings.py", a.Location.URL)
	require.Equal(t, "critical", a.Severity)
	require.True(t, strings.HasPrefix(a.DedupKey, "health:arn:aws:health:us-east-1::event/RISK/AWS_RISK_CREDENTIALS_EXPOSED/"))

	// The key id is found wherever a sample puts it.
	doc := string(load(t, "health-credentials-exposed.json"))
	doc = strings.ReplaceAll(doc, `"publicKey": "AKIAIOSFODNN7EXAMPLE",`, ``)
	doc = strings.Replace(doc, `"entityValue": "AKIAIOSFODNN7EXAMPLE"`, `"entityValue": "IAM_USER/ci-bot/AKIAIOSFODNN7EXAMPLE"`, 1)
	again, err := ParseDocument([]byte(doc), now, SourceFiles{})
	require.NoError(t, err)
	require.Equal(t, "AKIAIOSFODNN7EXAMPLE", again.Alerts[0].Credential.ID)
}

func TestEventBridgeBatch(t *testing.T) {
	t.Parallel()
	batch := "[" + string(load(t, "guardduty-accesskey.json")) + "," + string(load(t, "health-credentials-exposed.json")) + "]"
	rep, err := ParseDocument([]byte(batch), now, SourceFiles{})
	require.NoError(t, err)
	alerts := rep.Alerts
	require.Len(t, alerts, 2)
	require.Equal(t, alert.SourceGuardDuty, alerts[0].Source)
	require.Equal(t, alert.SourceHealth, alerts[1].Source)
}

func TestTruffleHog(t *testing.T) {
	t.Parallel()
	alerts := parse(t, "trufflehog.jsonl")
	require.Len(t, alerts, 2)
	aws := alerts[0]
	require.Equal(t, alert.Credential{Provider: "aws", Kind: alert.CredentialAccessKey, ID: "AKIAIOSFODNN7EXAMPLE", Account: "111122223333", Principal: "ci-bot"}, aws.Credential)
	require.Equal(t, alert.Location{Repo: "acme/payments-service", Path: "deploy/settings.py", Line: 12, Commit: "4f1c9d2a7e3b5c6d8e9f0a1b2c3d4e5f6a7b8c9d"}, aws.Location)
	require.Equal(t, "critical", aws.Severity, "verified secrets are critical")
	gh := alerts[1]
	require.Equal(t, "github", gh.Credential.Provider)
	require.Regexp(t, `^sha256:[0-9a-f]{16}$`, gh.Credential.ID, "other secrets are identified by a fingerprint")
	require.Equal(t, "/srv/app/.env", gh.Location.Path)
}

func TestGitleaks(t *testing.T) {
	t.Parallel()
	alerts := parse(t, "gitleaks.json")
	require.Len(t, alerts, 2)
	require.Equal(t, "AKIAIOSFODNN7EXAMPLE", alerts[0].Credential.ID)
	require.Equal(t, alert.Location{Path: "deploy/settings.py", Line: 12, Commit: "4f1c9d2a7e3b5c6d8e9f0a1b2c3d4e5f6a7b8c9d", URL: "https://github.com/acme/payments-service/blob/4f1c9d2a7e3b5c6d8e9f0a1b2c3d4e5f6a7b8c9d/deploy/settings.py#L12"}, alerts[0].Location)
	require.Equal(t, "gitleaks:4f1c9d2a7e3b5c6d8e9f0a1b2c3d4e5f6a7b8c9d:deploy/settings.py:aws-access-token:12", alerts[0].DedupKey)
	require.Equal(t, "generic-api-key", alerts[1].Credential.Provider)
}

// FuzzParseDocument feeds every parser arbitrary input: it may refuse it,
// but must not panic, and what it accepts must be a valid alert without
// the planted secrets.
func FuzzParseDocument(f *testing.F) {
	for _, name := range []string{"guardduty-accesskey.json", "guardduty-instance-exfiltration.json", "guardduty-sample.json", "guardduty-s3-exfiltration.json", "guardduty-s3-sample.json",
		"health-credentials-exposed.json", "trufflehog.jsonl", "trufflehog-mixed.jsonl", "gitleaks.json", "gitleaks-git.json", "gitleaks-git-redacted.json"} {
		data, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"source":"manual","credential":{"id":"AKIAIOSFODNN7EXAMPLE"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := ParseDocument(data, now, SourceFiles{})
		if err != nil {
			return
		}
		for _, a := range rep.Alerts {
			if err := a.Validate(); err != nil {
				t.Fatalf("accepted an invalid alert: %v", err)
			}
			for _, secret := range planted {
				if strings.Contains(string(a.Raw), secret) {
					t.Fatalf("secret kept in raw: %s", a.Raw)
				}
			}
		}
	})
}
