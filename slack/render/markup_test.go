package render

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/alert"
)

// Only http(s) locations become links, and their URL cannot end the link
// early or carry markup; anything else is shown as text.
func TestLocationLinks(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]string{
		"https://github.com/acme/api/security/secret-scanning/7": "<https://github.com/acme/api/security/secret-scanning/7|acme/api>",
		"https://example.com/a?x=1&y=2|<!channel>":               "<https://example.com/a?x=1&amp;y=2%7C%3C!channel%3E|acme/api>",
		"javascript:alert(1)":                                    "acme/api javascript:alert(1)",
		"JavaScript://example.com/%0aalert(1)":                   "acme/api JavaScript://example.com/%0aalert(1)",
		"slack://channel?id=C0X":                                 "acme/api slack://channel?id=C0X",
		"https://user:pass@example.com/":                         "acme/api https://user:pass@example.com/",
	} {
		got := whereLeaked(alert.Location{Repo: "acme/api", URL: raw})
		require.Equal(t, want, got, raw)
		if !strings.HasPrefix(want, "<http") {
			require.NotContains(t, got, "<", raw)
		}
	}
}
