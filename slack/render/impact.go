package render

import (
	"fmt"
	"sort"
	"strings"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/alert"
)

// The run's impact section says what each provider can tell of the leaked
// credential's use: CloudTrail's events for an AWS key, the organisation
// audit log for a GitHub token, the token's lookup for Vault, and for
// Slack, GitLab and npm that they keep no usage history by token. It is
// rendered from the outputs of the steps that ask, for Slack (the incident
// message) and for a terminal (stanch runs show).

// ImpactPart is what one step tells of the credential's use.
type ImpactPart struct {
	// StepID and Action are the step's.
	StepID, Action string
	// Title is the part's heading, such as "What the key was used for".
	Title string
	// Lines are the part's lines, in plain text (redacted) for Impact and
	// in Slack mrkdwn (escaped) for the incident message.
	Lines []string
}

// Impact is the run's impact section as plain text, for a terminal: one
// part per step that tells something, in the steps' order. Every text from
// outside is redacted; control characters are the caller's to escape.
func Impact(steps []actions.StepReport) []ImpactPart {
	return impactParts(steps, plainStyle)
}

// maxImpactParts is how many parts the incident message shows, so that
// its blocks stay within Slack's 50.
const maxImpactParts = 6

// impactBlocks are the incident message's impact sections.
func impactBlocks(rep actions.Report) []slackapi.Block {
	parts := impactParts(rep.Steps, slackStyle)
	var blocks []slackapi.Block
	for i, p := range parts {
		if i == maxImpactParts {
			blocks = append(blocks, slackapi.NewSectionBlock(mrkdwn(fmt.Sprintf("…and %d more step(s) tell of the credential's use: `stanch runs show %s`", len(parts)-maxImpactParts, escape(rep.RunID))), nil, nil))
			break
		}
		blocks = append(blocks, slackapi.NewSectionBlock(mrkdwn(clip("*"+p.Title+"*\n"+strings.Join(p.Lines, "\n"), maxSection)), nil, nil))
	}
	return blocks
}

// style is how impact lines show text from outside: escaped, identifiers
// as code, for Slack; redacted and bare for a terminal.
type style struct {
	text func(string) string
	code func(string) string
}

var (
	slackStyle = style{text: escape, code: func(s string) string { return "`" + escape(s) + "`" }}
	plainStyle = style{text: alert.RedactText, code: alert.RedactText}
)

// noHistory names the providers that keep no usage history by token, by
// the action that revokes their tokens.
var noHistory = map[string]string{
	"slack.revoke_token":  "Slack",
	"gitlab.revoke_token": "GitLab",
	"npm.revoke_token":    "npm",
}

func impactParts(steps []actions.StepReport, st style) []ImpactPart {
	var parts []ImpactPart
	cloudTrail := false
	for _, s := range steps {
		part := ImpactPart{StepID: s.ID, Action: s.Action}
		switch {
		case s.Action == "aws.cloudtrail_impact" && s.Status == "succeeded" && !cloudTrail:
			// The first CloudTrail search that succeeded, as ever.
			cloudTrail = true
			part.Title, part.Lines = "What the key was used for", cloudTrailLines(normalise(s.Outputs), st)
		case s.Action == "github.token_impact" && s.Status == "succeeded":
			part.Title, part.Lines = "What the GitHub token was used for", gitHubLines(normalise(s.Outputs), st)
		case s.Action == "vault.revoke_token" && s.Status == "succeeded":
			part.Title, part.Lines = "What the Vault token could do", vaultLines(normalise(s.Outputs), st)
		case noHistory[s.Action] != "" && (s.Status == "succeeded" || s.Status == "failed"):
			// A fact of the provider: true whether or not the revocation
			// went through.
			part.Title, part.Lines = "What the "+noHistory[s.Action]+" token was used for", noHistoryLines(noHistory[s.Action], normalise(s.Outputs), st)
		default:
			continue
		}
		parts = append(parts, part)
	}
	return parts
}

// cloudTrailLines describe the output of aws.cloudtrail_impact.
func cloudTrailLines(out map[string]any, st style) []string {
	var lines []string
	lines = append(lines, fmt.Sprintf("%v event(s) in %d region(s), first %s, last %s; %v denied", st.text(fmt.Sprint(num(out["events"]))), len(list(out["regions"])), st.text(or(str(out["first_used"]), "—")), st.text(or(str(out["last_used"]), "—")), st.text(fmt.Sprint(num(out["denied"])))))
	if l := findingCounts(out, st); l != "" {
		lines = append(lines, l)
	}
	for i, f := range list(out["findings"]) {
		if i == 5 {
			lines = append(lines, fmt.Sprintf("…and %d more", len(list(out["findings"]))-5))
			break
		}
		m, _ := f.(map[string]any)
		lines = append(lines, fmt.Sprintf("• %s %s in %s from %s (%s)", st.code(str(m["event"])), st.text(str(m["time"])), st.text(str(m["region"])), st.text(or(str(m["source_ip"]), "?")), label(str(m["category"]), st)))
	}
	if derived := list(out["derived_credentials"]); len(derived) > 0 {
		var ids []string
		for _, d := range derived {
			m, _ := d.(map[string]any)
			ids = append(ids, fmt.Sprintf("%s (%s via %s)", st.code(str(m["access_key_id"])), st.text(str(m["kind"])), st.text(str(m["created_by_event"]))))
		}
		lines = append(lines, "Derived credentials: "+strings.Join(ids, ", "))
	}
	if failed, ok := out["regions_failed"].(map[string]any); ok && len(failed) > 0 {
		lines = append(lines, fmt.Sprintf("⚠️ %d region(s) could not be read: %s", len(failed), st.text(strings.Join(sortedKeys(failed), ", "))))
	}
	return lines
}

// findingCounts is the line of finding counts by category, or "".
func findingCounts(out map[string]any, st style) string {
	counts, ok := out["finding_counts"].(map[string]any)
	if !ok || len(counts) == 0 {
		return ""
	}
	var parts []string
	for _, k := range sortedKeys(counts) {
		parts = append(parts, fmt.Sprintf("%s %s", label(k, st), st.text(fmt.Sprint(num(counts[k])))))
	}
	return "Findings: " + strings.Join(parts, ", ")
}

// Lists in the GitHub part show at most so many names each.
const (
	maxNames    = 10
	maxFindings = 5
	maxIPs      = 3
)

// gitHubLines describe the output of github.token_impact: the audit log's
// events, repositories cloned and pushed, findings by class, top source
// IPs, organisations not read.
func gitHubLines(out map[string]any, st style) []string {
	var lines []string
	orgs := strings.Join(strs(out["orgs"]), ", ")
	if fmt.Sprint(num(out["events"])) == "0" {
		lines = append(lines, "No event with the token in the audit log of "+st.text(or(orgs, "the organisation")))
	} else {
		repos := len(list(out["repositories"]))
		lines = append(lines, fmt.Sprintf("%v event(s) in %d %s, first %s, last %s", st.text(fmt.Sprint(num(out["events"]))), repos, plural(repos, "repository", "repositories"), st.text(or(str(out["first_used"]), "—")), st.text(or(str(out["last_used"]), "—"))))
	}
	if cloned := strs(out["cloned"]); len(cloned) > 0 {
		lines = append(lines, "Cloned: "+names(cloned, st))
	}
	if pushed := strs(out["pushed"]); len(pushed) > 0 {
		lines = append(lines, "Pushed to: "+names(pushed, st))
	}
	if l := findingCounts(out, st); l != "" {
		lines = append(lines, l)
	}
	findings := list(out["findings"])
	for i, f := range findings {
		if i == maxFindings {
			lines = append(lines, fmt.Sprintf("…and %d more", len(findings)-maxFindings))
			break
		}
		m, _ := f.(map[string]any)
		line := fmt.Sprintf("• %s %s in %s", st.code(str(m["event"])), st.text(str(m["time"])), st.text(or(str(m["repo"]), str(m["org"]))))
		if ip := str(m["source_ip"]); ip != "" {
			line += " from " + st.text(ip)
		}
		line += " (" + label(str(m["category"]), st)
		if sev := str(m["severity"]); sev != "" {
			line += ", " + st.text(sev)
		}
		lines = append(lines, line+")")
	}
	if ips, ok := out["by_source_ip"].(map[string]any); ok && len(ips) > 0 {
		lines = append(lines, "Top source IPs: "+topCounts(ips, maxIPs, st))
	} else if fmt.Sprint(num(out["events"])) != "0" {
		lines = append(lines, "Source IPs: not in the audit log (GitHub gives them where the organisation enabled IP disclosure)")
	}
	if failed, ok := out["orgs_failed"].(map[string]any); ok && len(failed) > 0 {
		lines = append(lines, fmt.Sprintf("⚠️ %d organisation(s) could not be read: %s", len(failed), st.text(strings.Join(sortedKeys(failed), ", "))))
	}
	return lines
}

// vaultLines describe the token's lookup in the output of
// vault.revoke_token: what it could reach, for how long, and its family.
func vaultLines(out map[string]any, st style) []string {
	const history = "Vault keeps no usage history by token that stanch can read: what the token did is in Vault's audit devices, keyed by its HMAC"
	if str(out["accessor"]) == "" && str(out["creation_time"]) == "" && len(list(out["policies"])) == 0 {
		return []string{"Vault refused the token before stanch could look it up: what it could reach is not known", history}
	}
	var lines []string
	who := "Token"
	if name := str(out["display_name"]); name != "" {
		who += " " + st.code(name)
	}
	var about []string
	if t := str(out["token_type"]); t != "" {
		about = append(about, st.text(t))
	}
	if acc := str(out["accessor"]); acc != "" {
		about = append(about, "accessor "+st.code(acc))
	}
	if len(about) > 0 {
		who += " (" + strings.Join(about, ", ") + ")"
	}
	if path := str(out["path"]); path != "" {
		who += " from " + st.code(path)
	}
	lines = append(lines, who)
	if policies := strs(out["policies"]); len(policies) > 0 {
		var ps []string
		for _, p := range policies {
			ps = append(ps, st.code(p))
		}
		lines = append(lines, "Policies: "+strings.Join(ps, ", "))
	} else {
		lines = append(lines, "Policies: none")
	}
	life := "Created " + st.text(or(str(out["creation_time"]), "at a time not known"))
	ttl := time.Duration(intOf(out["ttl_seconds"])) * time.Second
	switch exp := str(out["expire_time"]); {
	case exp != "" && ttl > 0:
		life += fmt.Sprintf("; expires %s (TTL left %s)", st.text(exp), ttl)
	case exp != "":
		life += "; expires " + st.text(exp)
	case ttl > 0:
		life += fmt.Sprintf("; TTL left %s", ttl)
	default:
		life += "; no expiry (no TTL)"
	}
	lines = append(lines, life)
	family := "Orphan: no (it has a parent)"
	if b, _ := out["orphan"].(bool); b {
		family = "Orphan: yes (no parent)"
	}
	switch n, ok := children(out); {
	case ok:
		family += fmt.Sprintf("; children: %d", n)
	case out["revoked"] == true:
		family += "; children: not known (revoking it revoked them too)"
	default:
		family += "; children: not known"
	}
	lines = append(lines, family)
	use := "Renewable: no"
	if b, _ := out["renewable"].(bool); b {
		use = "Renewable: yes"
	}
	if n := intOf(out["num_uses"]); n > 0 {
		use += fmt.Sprintf("; uses left: %d", n)
	} else {
		use += "; uses left: unlimited"
	}
	lines = append(lines, use)
	return append(lines, history)
}

// children is how many child tokens the outputs say the token has, when
// they say.
func children(out map[string]any) (int, bool) {
	for _, k := range []string{"num_children", "children"} {
		switch v := out[k].(type) {
		case float64:
			return int(v), true
		case []any:
			return len(v), true
		}
	}
	return 0, false
}

// noHistoryLines is the one line for a provider that keeps no usage
// history by token, with when it last saw the token used if it says.
func noHistoryLines(provider string, out map[string]any, st style) []string {
	line := provider + " keeps no usage history by token: what the token did cannot be listed"
	if last := str(out["last_used_at"]); last != "" {
		line += "; it was last used at " + st.text(last)
	}
	return []string{line}
}

// label shows an identifier such as persistence or code_change as words.
// It is redacted first: a token's own underscores (github_pat_) are part
// of its shape.
func label(s string, st style) string {
	return strings.ReplaceAll(st.text(s), "_", " ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// strs are the strings of a list output.
func strs(v any) []string {
	var out []string
	for _, e := range list(v) {
		if s := str(e); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func intOf(v any) int {
	f, _ := v.(float64)
	return int(f)
}

// names lists names as code, at most maxNames of them.
func names(l []string, st style) string {
	var parts []string
	for i, n := range l {
		if i == maxNames {
			parts = append(parts, fmt.Sprintf("and %d more", len(l)-maxNames))
			break
		}
		parts = append(parts, st.code(n))
	}
	return strings.Join(parts, ", ")
}

// topCounts lists the n keys with the highest counts, each with its count.
func topCounts(m map[string]any, n int, st style) string {
	keys := sortedKeys(m)
	sort.SliceStable(keys, func(i, j int) bool { return intOf(m[keys[i]]) > intOf(m[keys[j]]) })
	var parts []string
	for i, k := range keys {
		if i == n {
			parts = append(parts, fmt.Sprintf("and %d more", len(keys)-n))
			break
		}
		parts = append(parts, fmt.Sprintf("%s (%d)", st.text(k), intOf(m[k])))
	}
	return strings.Join(parts, ", ")
}
