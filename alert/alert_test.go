package alert

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var now = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func TestParseFillsDefaults(t *testing.T) {
	t.Parallel()
	a, err := Parse([]byte(`{"source":"manual","credential":{"id":"AKIAIOSFODNN7EXAMPLE"}}`), now)
	require.NoError(t, err)
	require.Equal(t, "aws", a.Credential.Provider)
	require.Equal(t, CredentialAccessKey, a.Credential.Kind)
	require.Equal(t, KindCredentialExposed, a.Kind)
	require.Equal(t, "high", a.Severity)
	require.Equal(t, "manual:aws:AKIAIOSFODNN7EXAMPLE", a.DedupKey)
	require.Equal(t, now, a.ReceivedAt)

	s, err := Parse([]byte(`{"source":"guardduty","credential":{"id":"ASIAIOSFODNN7EXAMPLE"}}`), now)
	require.NoError(t, err)
	require.Equal(t, CredentialRoleSession, s.Credential.Kind)
}

func TestParseReportsEveryProblem(t *testing.T) {
	t.Parallel()
	_, err := Parse([]byte(`{"credential":{"provider":"aws","id":"AKIA123","account":"12"},"severity":"urgent"}`), now)
	require.ErrorIs(t, err, ErrInvalid)
	msg := err.Error()
	for _, want := range []string{"source is required", `credential.id is not an AWS access key id`, `credential.account "12" is not a 12-digit`, `severity "urgent"`} {
		require.Contains(t, msg, want)
	}
}

func TestParseRejectsUnknownFields(t *testing.T) {
	t.Parallel()
	_, err := Parse([]byte(`{"source":"manual","credentail":{"id":"AKIAIOSFODNN7EXAMPLE"}}`), now)
	require.ErrorIs(t, err, ErrInvalid)
	require.Contains(t, err.Error(), "credentail")
}

func TestParseRedactsRaw(t *testing.T) {
	t.Parallel()
	const secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	raw := `{"source":"manual","credential":{"id":"AKIAIOSFODNN7EXAMPLE"},"raw":{"secret":"` + secret + `","note":"leaked ` + secret + ` here","key":"AKIAIOSFODNN7EXAMPLE","commit":"4f1c9d2a7e3b5c6d8e9f0a1b2c3d4e5f6a7b8c9d"}}`
	a, err := Parse([]byte(raw), now)
	require.NoError(t, err)
	require.NotContains(t, string(a.Raw), secret)
	require.Contains(t, string(a.Raw), "AKIAIOSFODNN7EXAMPLE", "key ids identify and are kept")
	require.Contains(t, string(a.Raw), "4f1c9d2a7e3b5c6d8e9f0a1b2c3d4e5f6a7b8c9d", "commit SHAs are not secrets")
	require.Equal(t, 2, strings.Count(string(a.Raw), Redacted))
}

func TestRedactJSONKeepsBareKeyIDInSecretField(t *testing.T) {
	t.Parallel()
	out := RedactJSON([]byte(`{"secret":"AKIAIOSFODNN7EXAMPLE","token":"ghp_abcdef"}`))
	require.JSONEq(t, `{"secret":"AKIAIOSFODNN7EXAMPLE","token":"[REDACTED]"}`, string(out))
	require.JSONEq(t, `"[REDACTED]"`, string(RedactJSON([]byte(`not json wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY`))))
}
