package alert

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// A credential.id is one key id, with at most whitespace around it: the
// red-team pass found " AKIA… ", "key=AKIA…", "AKIA… AKIA…" and
// "x\nAKIA…" accepted, after which the run failed to identify the key and
// it stayed active.
func TestParseNormalisesOrRefusesKeyIDs(t *testing.T) {
	t.Parallel()
	const key = "AKIAIOSFODNN7EXAMPLE"
	parse := func(id string) (Alert, error) {
		return Parse([]byte(`{"source":"manual","credential":{"id":`+quote(id)+`}}`), now)
	}
	for _, id := range []string{" " + key + " ", "\t" + key + "\n", key} {
		a, err := parse(id)
		require.NoError(t, err, "%q", id)
		require.Equal(t, key, a.Credential.ID, "whitespace around the id is trimmed")
		require.Equal(t, "aws", a.Credential.Provider)
		require.Equal(t, CredentialAccessKey, a.Credential.Kind)
		require.Equal(t, "manual:aws:"+key, a.DedupKey)
	}
	for _, id := range []string{
		"key=" + key,
		key + " " + "AKIAI44QH8DHBEXAMPLE",
		"x\n" + key,
		key + "\x1b[2J",
		"\x1b]0;pwned\x07" + key,
		key + "\u202e",
		"xAKIAIOSFODNN7EXAMPLE",
		"AKIAIOSFODNN7EXAMPLEX",
		"akiaiosfodnn7example",
		"AKIA123",
	} {
		_, err := parse(id)
		require.ErrorIs(t, err, ErrInvalid, "%q must be refused", id)
		require.Contains(t, err.Error(), "credential.id", "the error names the field")
		if id != "akiaiosfodnn7example" && id != "AKIA123" && !strings.HasPrefix(id, "xAKIA") && !strings.HasSuffix(id, "EXAMPLEX") {
			require.NotContains(t, err.Error(), id, "the error never quotes the value")
		}
		require.NotContains(t, err.Error(), "\x1b", "nothing of the value reaches a terminal")
	}
	// An explicit provider does not make a malformed id acceptable.
	_, err := Parse([]byte(`{"source":"manual","credential":{"provider":"aws","id":"key=`+key+`"}}`), now)
	require.ErrorIs(t, err, ErrInvalid)
}

// The key's prefix decides its kind.
func TestKindFollowsThePrefix(t *testing.T) {
	t.Parallel()
	_, err := Parse([]byte(`{"source":"manual","credential":{"id":"AKIAIOSFODNN7EXAMPLE","kind":"role_session"}}`), now)
	require.ErrorIs(t, err, ErrInvalid)
	require.Contains(t, err.Error(), `credential.kind "role_session" does not match credential.id`)
	a, err := Parse([]byte(`{"source":"manual","credential":{"id":"ASIAIOSFODNN7EXAMPLE"}}`), now)
	require.NoError(t, err)
	require.Equal(t, CredentialRoleSession, a.Credential.Kind)
}

func TestKeyIDIn(t *testing.T) {
	t.Parallel()
	id, n := KeyIDIn("aws_access_key_id = AKIAIOSFODNN7EXAMPLE # AKIAIOSFODNN7EXAMPLE")
	require.Equal(t, 1, n)
	require.Equal(t, "AKIAIOSFODNN7EXAMPLE", id, "the same id twice is one id")
	id, n = KeyIDIn("AKIAIOSFODNN7EXAMPLE AKIAI44QH8DHBEXAMPLE")
	require.Equal(t, 2, n)
	require.Empty(t, id, "two different ids name no one key")
	_, n = KeyIDIn("no key here")
	require.Zero(t, n)
}

func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteString(`\` + string(r))
		case r < 0x20:
			b.WriteString(`\u00` + string("0123456789abcdef"[r>>4]) + string("0123456789abcdef"[r&15]))
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
