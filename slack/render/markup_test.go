package render

import (
	"strings"
	"testing"

	slackapi "github.com/slack-go/slack"
	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/internal/slackfixture"
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

// The incident message links the run's incident record in its footer; a
// link that is not http(s), or would end the markup early, is not drawn
// as one.
func TestIncidentRecordLink(t *testing.T) {
	t.Parallel()
	rep := slackfixture.Report()
	footer := func(link string) string {
		m := IncidentWith(rep, "", IncidentOptions{RecordLink: link})
		ctx := m.Blocks[len(m.Blocks)-1].(*slackapi.ContextBlock)
		return ctx.ContextElements.Elements[0].(*slackapi.TextBlockObject).Text
	}
	link := "https://stanch.example.com/reports/./run_01TEST?expires=1796202000&mac=0a1b2c3d"
	require.Contains(t, footer(link), "stanch run `run_01TEST` · playbook `aws-key-leaked` · <https://stanch.example.com/reports/./run_01TEST?expires=1796202000&amp;mac=0a1b2c3d|Incident record> · updated ")
	require.NotContains(t, footer(""), "Incident record")
	require.NotContains(t, footer("javascript:alert(1)"), "Incident record")
	require.Contains(t, footer("https://stanch.example.com/reports/x|<!channel>"), "<https://stanch.example.com/reports/x%7C%3C%21channel%3E|Incident record>")
}
