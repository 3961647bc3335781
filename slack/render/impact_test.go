package render

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	slackapi "github.com/slack-go/slack"
	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/internal/planted"
	"github.com/stanchhq/stanch/internal/slackfixture"
	"github.com/stanchhq/stanch/slack"
)

var update = flag.Bool("update", false, "rewrite the expected renderings in testdata/impact")

// goldenFile is one case of testdata/impact: a comment, then sections
// "-- NAME --": steps.json (the run's steps: id, action, status, outputs)
// and the expected renderings, slack (the incident message's impact
// sections, as Slack receives their text) and text (Impact, as stanch runs
// show prints it).
type goldenFile struct {
	comment  string
	sections map[string]string
}

func readGolden(t *testing.T, path string) goldenFile {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	g := goldenFile{sections: map[string]string{}}
	name := ""
	var cur strings.Builder
	flush := func() {
		if name == "" {
			g.comment = cur.String()
		} else {
			g.sections[name] = cur.String()
		}
		cur.Reset()
	}
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if strings.HasPrefix(line, "-- ") && strings.HasSuffix(strings.TrimSpace(line), " --") {
			flush()
			name = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(line), "-- "), " --")
			continue
		}
		cur.WriteString(line)
	}
	flush()
	require.Contains(t, g.sections, "steps.json", path)
	return g
}

func (g goldenFile) bytes() []byte {
	var b strings.Builder
	b.WriteString(g.comment)
	for _, name := range []string{"steps.json", "slack", "text"} {
		fmt.Fprintf(&b, "-- %s --\n%s", name, g.sections[name])
	}
	return []byte(b.String())
}

func goldenSteps(t *testing.T, g goldenFile) []actions.StepReport {
	t.Helper()
	var in []struct {
		ID      string         `json:"id"`
		Action  string         `json:"action"`
		Status  string         `json:"status"`
		Outputs map[string]any `json:"outputs"`
	}
	dec := json.NewDecoder(strings.NewReader(g.sections["steps.json"]))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&in))
	steps := make([]actions.StepReport, len(in))
	for i, s := range in {
		steps[i] = actions.StepReport{ID: s.ID, Action: s.Action, Status: s.Status, Outputs: s.Outputs}
	}
	return steps
}

// impactSlack is the text of the incident message's impact sections:
// the sections after the response's.
func impactSlack(m slack.Message) string {
	var out []string
	response := false
	for _, b := range m.Blocks {
		sb, ok := b.(*slackapi.SectionBlock)
		if !ok || sb.Text == nil {
			continue
		}
		if response {
			out = append(out, sb.Text.Text)
		}
		response = response || strings.HasPrefix(sb.Text.Text, "*Response*")
	}
	return strings.Join(out, "\n\n")
}

// impactText is the run's impact section as stanch runs show prints it.
func impactText(parts []ImpactPart) string {
	var b strings.Builder
	for _, p := range parts {
		fmt.Fprintf(&b, "%s (step %s, %s)\n", p.Title, p.StepID, p.Action)
		for _, l := range p.Lines {
			fmt.Fprintf(&b, "  %s\n", l)
		}
	}
	return b.String()
}

// TestImpactGolden renders each case of testdata/impact for Slack and for
// a terminal; go test -run TestImpactGolden -update rewrites them. The
// CloudTrail cases were written by the renderer before the other
// providers had parts, and must not change.
func TestImpactGolden(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/impact/*.txt")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, path := range files {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txt"), func(t *testing.T) {
			t.Parallel()
			g := readGolden(t, path)
			steps := goldenSteps(t, g)
			rep := slackfixture.Report()
			rep.Steps = steps
			gotSlack := impactSlack(Incident(rep, ""))
			if gotSlack != "" {
				gotSlack += "\n"
			}
			gotText := impactText(Impact(steps))
			planted.RequireNone(t, path, gotSlack, gotText)
			if *update {
				g.sections["slack"], g.sections["text"] = gotSlack, gotText
				require.NoError(t, os.WriteFile(path, g.bytes(), 0o644))
				return
			}
			require.Equal(t, g.sections["slack"], gotSlack, "the incident message's impact sections")
			require.Equal(t, g.sections["text"], gotText, "the impact section of stanch runs show")
		})
	}
}

// The fixture's CloudTrail impact still renders as it always has.
func TestImpactCloudTrailUnchanged(t *testing.T) {
	t.Parallel()
	got := impactSlack(Incident(slackfixture.Report(), ""))
	require.Equal(t, "*What the key was used for*\n"+
		"128 event(s) in 2 region(s), first —, last —; 0 denied\n"+
		"Findings: persistence 3\n"+
		"• `CreateAccessKey` 2026-11-28T10:00:00Z in us-east-1 from 198.51.100.7 (persistence)\n"+
		"Derived credentials: `AKIABACKDOORKEY00001` (access_key via CreateAccessKey)", got)
}

// Outputs as careless code could hand them over, a planted secret or
// token in every string the impact parts show, render none of it, for
// Slack or for a terminal.
func TestImpactShowsNoPlantedSecret(t *testing.T) {
	t.Parallel()
	secrets := append(append([]string{}, planted.All...), planted.AllTokens...)
	next := 0
	// A secret follows its prefix after a space: a token glued to a
	// word (policy-xoxb-…) is alert.RedactText's to find, and is not
	// rendering's concern.
	leak := func(prefix string) string {
		s := secrets[next%len(secrets)]
		next++
		if prefix == "" {
			return s
		}
		return strings.TrimSuffix(prefix, " ") + " " + s
	}
	// Enough rounds that each secret lands in each field at least once.
	for range len(secrets) {
		steps := []actions.StepReport{
			{ID: "github_impact", Action: "github.token_impact", Status: "succeeded", Outputs: map[string]any{
				"events": 3, "first_used": leak(""), "last_used": leak("at "), "orgs": []string{leak("acme-")},
				"repositories": []string{leak("acme/")}, "cloned": []string{leak("acme/")}, "pushed": []string{leak("acme/")},
				"finding_counts": map[string]int{leak("code_change "): 1},
				"findings": []map[string]any{{"event": leak("git.push "), "time": leak(""), "repo": leak("acme/"), "org": "acme",
					"source_ip": leak("198.51.100.7 "), "category": leak("code_change "), "severity": leak("high ")}},
				"by_source_ip": map[string]int{leak("198.51.100.7 "): 3}, "orgs_failed": map[string]string{leak("acme-labs "): leak("")},
			}},
			{ID: "github_impact_none", Action: "github.token_impact", Status: "succeeded", Outputs: map[string]any{"events": 0, "orgs": []string{leak("acme-")}}},
			{ID: "vault", Action: "vault.revoke_token", Status: "succeeded", Outputs: map[string]any{
				"display_name": leak("github-"), "token_type": leak("service "), "accessor": leak(""), "path": leak("auth/"),
				"policies": []string{leak("policy-")}, "creation_time": leak(""), "expire_time": leak(""), "ttl_seconds": 60,
				"impact": leak("Vault says "), "revoked": true,
			}},
			{ID: "gitlab", Action: "gitlab.revoke_token", Status: "succeeded", Outputs: map[string]any{"last_used_at": leak(""), "impact": leak("")}},
			{ID: "slack", Action: "slack.revoke_token", Status: "failed", Outputs: map[string]any{"impact": leak("")}},
			{ID: "npm", Action: "npm.revoke_token", Status: "succeeded", Outputs: map[string]any{"impact": leak("")}},
			{ID: "cloudtrail", Action: "aws.cloudtrail_impact", Status: "succeeded", Outputs: map[string]any{
				"events": 1, "first_used": leak(""), "regions_failed": map[string]string{leak("us-"): leak("")},
				"findings": []map[string]any{{"event": leak("CreateUser "), "region": leak("us-"), "source_ip": leak(""), "category": leak("")}},
			}},
		}
		rep := slackfixture.Report()
		rep.Steps = steps
		m := Incident(rep, "")
		text := impactText(Impact(steps))
		require.Contains(t, text, "What the GitHub token was used for")
		require.Contains(t, text, "Slack keeps no usage history by token")
		planted.RequireNone(t, "the incident message", m.Text, slack.BlocksJSON(m), slack.PlainText(m))
		planted.RequireNone(t, "the impact section for a terminal", text)
	}
}

// A run with many steps that tell of the credential's use keeps the
// incident message within Slack's block limit and points to the rest.
func TestImpactPartsAreCapped(t *testing.T) {
	t.Parallel()
	rep := slackfixture.Report()
	rep.Steps = nil
	for i := range maxImpactParts + 3 {
		rep.Steps = append(rep.Steps, actions.StepReport{ID: fmt.Sprintf("revoke%d", i), Action: "npm.revoke_token", Status: "succeeded"})
	}
	got := impactSlack(Incident(rep, ""))
	require.Equal(t, maxImpactParts, strings.Count(got, "*What the npm token was used for*"))
	require.True(t, strings.HasSuffix(got, "…and 3 more step(s) tell of the credential's use: `stanch runs show run_01TEST`"), got)
	require.Len(t, Impact(rep.Steps), maxImpactParts+3, "a terminal shows them all")
}
