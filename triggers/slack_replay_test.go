package triggers

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/internal/testkit"
	"github.com/stanchhq/stanch/runner"
	"github.com/stanchhq/stanch/sandbox"
	"github.com/stanchhq/stanch/slack"
)

// genuineClick returns one signed click: its body and headers.
func genuineClick(t *testing.T, tokens *slack.Tokens) ([]byte, http.Header) {
	t.Helper()
	value := tokens.Sign(slack.ButtonValue{RunID: "run_replay", StepID: "destroy", Decision: "approved"})
	req, err := sandbox.SlackClick{URL: "http://stanch.invalid/hooks/slack/interactions", SigningSecret: fuzzSigningSecret, User: "U0ALICE",
		Channel: "C0SECINCIDENTS", MessageTS: "1764300000.000100", ActionID: slack.ActionApprove, BlockID: "stanch_approval", Value: value}.Request(context.Background())
	require.NoError(t, err)
	body, err := io.ReadAll(req.Body)
	require.NoError(t, err)
	return body, req.Header
}

func send(h http.Handler, body []byte, header http.Header) int {
	r := httptest.NewRequest(http.MethodPost, "/hooks/slack/interactions", bytes.NewReader(body))
	r.Header = header.Clone()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec.Code
}

// caseVariants returns the signature header with the hex digits' letters
// in other cases: each verifies, as the verifier decodes the hex.
func caseVariants(sig string, n int) []string {
	hexPart := strings.TrimPrefix(sig, "v0=")
	var out []string
	for mask := 1; len(out) < n && mask < 1<<16; mask++ {
		b := []rune(hexPart)
		letter := 0
		for i, r := range b {
			if unicode.IsLetter(r) {
				if mask&(1<<(letter%16)) != 0 {
					b[i] = unicode.ToUpper(r)
				}
				letter++
			}
		}
		if v := "v0=" + string(b); v != sig && !contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestSlackReplayIgnoresHexCase: the replay memory keyed on the header's
// text, so the same click with its signature's letters in another case
// verified again (20 variants from one real click). The signature's bytes
// are what is remembered.
func TestSlackReplayIgnoresHexCase(t *testing.T) {
	t.Parallel()
	tokens, err := slack.NewTokens([]byte("replay approval token key 012345"))
	require.NoError(t, err)
	d := &decisions{}
	h := NewSlackInteractions(fuzzSigningSecret, tokens, d, slack.NewClient(slack.Options{}), nil)
	body, header := genuineClick(t, tokens)
	require.Equal(t, http.StatusOK, send(h, body, header))
	h.Wait()
	variants := caseVariants(header.Get("X-Slack-Signature"), 20)
	require.Len(t, variants, 20)
	for _, v := range variants {
		replay := header.Clone()
		replay.Set("X-Slack-Signature", v)
		require.Equal(t, http.StatusUnauthorized, send(h, body, replay), v)
	}
	h.Wait()
	require.Equal(t, 1, d.calls, "one click, one decision")
}

// TestSlackReplayRefusedAfterRestart: a captured click replayed after a
// restart (a new endpoint on the same store) within its five minutes is
// refused, in any case.
func TestSlackReplayRefusedAfterRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := runner.OpenDatabase(ctx, testkit.SQLiteURL(t))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	store := runner.NewStore(db, nil)
	require.NoError(t, store.Migrate(ctx))

	tokens, err := slack.NewTokens([]byte("replay approval token key 012345"))
	require.NoError(t, err)
	d := &decisions{}
	first := NewSlackInteractions(fuzzSigningSecret, tokens, d, slack.NewClient(slack.Options{}), nil)
	first.RememberIn(store)
	body, header := genuineClick(t, tokens)
	require.Equal(t, http.StatusOK, send(first, body, header))
	first.Wait()

	restarted := NewSlackInteractions(fuzzSigningSecret, tokens, d, slack.NewClient(slack.Options{}), nil)
	restarted.RememberIn(runner.NewStore(db, nil))
	require.Equal(t, http.StatusUnauthorized, send(restarted, body, header), "the exact replay")
	upper := header.Clone()
	upper.Set("X-Slack-Signature", "v0="+strings.ToUpper(strings.TrimPrefix(header.Get("X-Slack-Signature"), "v0=")))
	require.Equal(t, http.StatusUnauthorized, send(restarted, body, upper), "the replay in upper case")
	restarted.Wait()
	require.Equal(t, 1, d.calls)

	// Another genuine click is not a replay.
	other, otherHeader := genuineClick(t, tokens)
	require.NotEqual(t, header.Get("X-Slack-Signature"), otherHeader.Get("X-Slack-Signature"))
	require.Equal(t, http.StatusOK, send(restarted, other, otherHeader))
	restarted.Wait()
	require.Equal(t, 2, d.calls)
}
