package alert

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// A token glued to the word before it ("policy-xoxb-…") is still a token:
// redaction once missed those, because the run started with the word.
func TestTokensGluedToAWordAreRedacted(t *testing.T) {
	tokens := []string{
		"xoxb-1234567890123-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
		"glpat-Zx9Yw8Vu7Ts6Rq5Po4Nm",
		"ghp_aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dF3hJ5",
		"npm_aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dF3hJ5",
		"hvs.CAESIAbcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRST",
	}
	for _, tok := range tokens {
		for _, glued := range []string{"policy-" + tok, "us_" + tok, "team." + tok, "x-" + tok + " done"} {
			got := RedactText(glued)
			require.NotContains(t, got, tok[len(tok)-16:], "%q redacted to %q", glued, got)
		}
	}
	// A prefix inside a word is not a token's start.
	require.Equal(t, "unglpat-ishword", RedactText("unglpat-ishword"))
	require.True(t, strings.HasPrefix(RedactText("policy-xoxb-1234567890123-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"), "policy-"), "the word before the token stays")
}
