package triggers

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRecognise(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		`{"source":"manual","credential":{"id":"AKIAIOSFODNN7EXAMPLE"}}`:                               FormatAlert,
		`{"action":"created","alert":{"number":42},"repository":{"full_name":"o/r"}}`:                  FormatGitHub,
		`{"version":"0","detail-type":"GuardDuty Finding","source":"aws.guardduty","detail":{}}`:       FormatEventBridge,
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

func TestParseDocument(t *testing.T) {
	t.Parallel()
	a, err := ParseDocument([]byte(`{"source":"manual","credential":{"id":"AKIAIOSFODNN7EXAMPLE"}}`), time.Now())
	require.NoError(t, err)
	require.Equal(t, "AKIAIOSFODNN7EXAMPLE", a.Credential.ID)

	_, err = ParseDocument([]byte(`{"version":"0","detail-type":"AWS Health Event","source":"aws.health","detail":{}}`), time.Now())
	require.ErrorIs(t, err, ErrUnsupportedFormat)
	require.Contains(t, err.Error(), "EventBridge event")
	require.Contains(t, err.Error(), "docs/alerts.md")
}
