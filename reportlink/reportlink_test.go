package reportlink

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/alert"
)

var (
	testKey = []byte("0123456789abcdef0123456789abcdef-report-links")
	created = time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
)

func signer(t *testing.T, key []byte, lifetime time.Duration) *Signer {
	t.Helper()
	s, err := NewSigner(key, lifetime, "https://stanch.example.com/")
	require.NoError(t, err)
	return s
}

// parts splits a link into what a request carries.
func parts(t *testing.T, link string) (runID, expires, sig string) {
	t.Helper()
	u, err := url.Parse(link)
	require.NoError(t, err)
	runID, ok := strings.CutPrefix(u.Path, linkPath)
	require.True(t, ok, link)
	return runID, u.Query().Get(paramExpires), u.Query().Get(paramMAC)
}

func TestLinkIsStableAndAnchoredOnCreation(t *testing.T) {
	t.Parallel()
	s := signer(t, testKey, 48*time.Hour)
	link := s.Link("run_01ABC", created)
	require.Equal(t, link, s.Link("run_01ABC", created), "the same run always gets the same link")
	require.True(t, strings.HasPrefix(link, "https://stanch.example.com/reports/./run_01ABC?expires="), link)
	run, exp, sig := parts(t, link)
	require.Equal(t, "run_01ABC", run)
	require.Equal(t, strconv.FormatInt(created.Add(48*time.Hour).Unix(), 10), exp, "created + 48h")
	require.Len(t, sig, 64)
	require.NoError(t, s.Verify(run, exp, sig, created.Add(47*time.Hour)))

	require.Empty(t, s.Link("run_01ABC", time.Time{}), "no creation time: no link")
	noBase, err := NewSigner(testKey, 0, "")
	require.NoError(t, err)
	require.Empty(t, noBase.Link("run_01ABC", created), "no base URL: no link")
	require.Equal(t, DefaultLifetime, noBase.Lifetime())
}

func TestVerifyRefuses(t *testing.T) {
	t.Parallel()
	s := signer(t, testKey, time.Hour)
	run, exp, sig := parts(t, s.Link("run_01ABC", created))
	now := created.Add(time.Minute)
	other, err := NewSigner([]byte(strings.Repeat("k", 32)), time.Hour, "https://stanch.example.com")
	require.NoError(t, err)
	later := s.SignedLink("run_01ABC", created.Add(24*time.Hour))
	_, _, laterSig := parts(t, later)

	for name, c := range map[string]struct {
		run, exp, sig string
		now           time.Time
		signer        *Signer
		want          error
	}{
		"tampered run id":           {run: "run_01ABD", exp: exp, sig: sig, want: ErrBadSignature},
		"run id as a prefix":        {run: "run_01AB", exp: "C" + exp, sig: sig, want: ErrMalformed},
		"tampered expiry":           {run: run, exp: exp + "0", sig: sig, want: ErrBadSignature},
		"another link's expiry":     {run: run, exp: exp, sig: laterSig, want: ErrBadSignature},
		"expiry with leading zero":  {run: run, exp: "0" + exp, sig: sig, want: ErrMalformed},
		"expiry with a sign":        {run: run, exp: "+" + exp, sig: sig, want: ErrMalformed},
		"tampered signature":        {run: run, exp: exp, sig: strings.Repeat("0", 64), want: ErrBadSignature},
		"signature not hex":         {run: run, exp: exp, sig: "zz" + sig[2:], want: ErrMalformed},
		"truncated signature":       {run: run, exp: exp, sig: sig[:32], want: ErrBadSignature},
		"no signature":              {run: run, exp: exp, want: ErrBadSignature},
		"expired":                   {run: run, exp: exp, sig: sig, now: created.Add(time.Hour), want: ErrExpired},
		"wrong key":                 {run: run, exp: exp, sig: sig, signer: other, want: ErrBadSignature},
		"no signer":                 {run: run, exp: exp, sig: sig, signer: (*Signer)(nil), want: ErrRefused},
		"uppercase hex is the same": {run: run, exp: exp, sig: strings.ToUpper(sig)},
	} {
		t.Run(name, func(t *testing.T) {
			v, at := s, now
			if c.signer != nil || name == "no signer" {
				v = c.signer
			}
			if !c.now.IsZero() {
				at = c.now
			}
			err := v.Verify(c.run, c.exp, c.sig, at)
			if c.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, c.want)
			require.ErrorIs(t, err, ErrRefused, "every refusal is one kind to the handler")
		})
	}
}

func TestSignerRefusesWeakSettings(t *testing.T) {
	t.Parallel()
	_, err := NewSigner([]byte("short"), time.Hour, "")
	require.ErrorContains(t, err, "openssl rand -hex 32")
	require.ErrorContains(t, err, "5 bytes")
	for _, d := range []time.Duration{-time.Second, MaxLifetime + time.Second} {
		_, err = NewSigner(testKey, d, "")
		require.ErrorContains(t, err, "lifetime", d)
	}
	_, err = NewSigner(testKey, MaxLifetime, "")
	require.NoError(t, err)
	for _, base := range []string{"ftp://x", "stanch.example.com", "https://u:p@stanch.example.com", "https://stanch.example.com/?a=b"} {
		_, err = NewSigner(testKey, time.Hour, base)
		require.Error(t, err, base)
	}
}

func TestBearerTokens(t *testing.T) {
	t.Parallel()
	good := strings.Repeat("a", 40)
	second := strings.Repeat("b", 64)
	tokens, err := NewTokens(SplitTokens(good + ",\n " + second + "\n"))
	require.NoError(t, err)
	require.Equal(t, 2, tokens.Len())
	require.True(t, tokens.Match(good))
	require.True(t, tokens.Match(second))
	for _, bad := range []string{"", good[:39], good + "a", strings.Repeat("c", 40), second + good} {
		require.False(t, tokens.Match(bad), bad)
	}
	var none *Tokens
	require.False(t, none.Match(good), "no tokens match nothing")

	empty, err := NewTokens([]string{" ", ""})
	require.NoError(t, err)
	require.Nil(t, empty)

	_, err = NewTokens([]string{good, "too-short-token"})
	require.ErrorContains(t, err, "token 2 of 2 has 15 bytes")
	require.NotContains(t, err.Error(), "too-short-token", "a token is never repeated")
}

// Whatever stanch sends to Slack is redacted: a link must come through it
// whole, for every run id stanch makes and every sort of base URL.
func TestLinksSurviveRedaction(t *testing.T) {
	t.Parallel()
	for _, base := range []string{"https://stanch.example.com", "http://127.0.0.1:8080", "https://security.example.com/tools/stanch/", "https://incident-response-automation.internal.example.org:8443"} {
		s, err := NewSigner(testKey, DefaultLifetime, base)
		require.NoError(t, err)
		for i := range 500 {
			link := s.Link(randomRunID(), created.Add(time.Duration(i)*time.Minute))
			require.Equal(t, link, alert.RedactText(link))
			mrkdwn := "<" + strings.ReplaceAll(link, "&", "&amp;") + "|Incident record>"
			require.Equal(t, mrkdwn, alert.RedactText(mrkdwn))
		}
	}
}

// randomRunID makes an id as the runner does: "run_", then a millisecond
// time and 80 random bits in lower-case Crockford base32.
func randomRunID() string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixMilli())<<16)
	_, _ = rand.Read(b[6:])
	enc := base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)
	return "run_" + enc.EncodeToString(b[:])
}
