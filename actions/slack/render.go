package slack

import (
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/alert"
)

// The incident message shows one run: what leaked and where, each step of
// the response as it happens, and what CloudTrail says the key was used
// for. It is rebuilt from the run's Report each time it changes, so the
// same function renders the first post and every update.

// statusMarks are how step and run statuses look in Slack.
var statusMarks = map[string]string{
	"pending":          "⚪",
	"running":          "🔄",
	"delayed":          "⏲️",
	"waiting_approval": "✋",
	"succeeded":        "✅",
	"failed":           "❌",
	"skipped":          "⏭️",
	"denied":           "🚫",
	"cancelled":        "🚫",
}

func mark(status string) string {
	if m, ok := statusMarks[status]; ok {
		return m
	}
	return "•"
}

// Slack's limits: header text 150 characters, section text 3,000, a
// field 2,000; fallback text is kept short.
const (
	maxHeader  = 150
	maxSection = 3000
	maxField   = 2000
)

func clip(s string, n int) string {
	if len([]rune(s)) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

// Escape makes text safe for Slack (it reads &, < and > as markup, in
// mrkdwn and plain_text alike: <!channel>, <https://…|Click here>) and
// redacts anything secret-looking. Every text that comes from outside goes
// through it, in every field: fallback text, headers, sections, context,
// confirmation dialogs, thread replies.
func Escape(s string) string { return escape(s) }

func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(alert.RedactText(s))
}

func mrkdwn(s string) *slackapi.TextBlockObject {
	return slackapi.NewTextBlockObject(slackapi.MarkdownType, s, false, false)
}

func plain(s string) *slackapi.TextBlockObject {
	return slackapi.NewTextBlockObject(slackapi.PlainTextType, s, false, false)
}

// IncidentTitle is the one-line summary of an alert.
func IncidentTitle(a alert.Alert) string {
	what := "Leaked credential"
	switch {
	case a.Credential.Provider == "aws" && a.Credential.Kind == alert.CredentialRoleSession:
		what = "Leaked AWS role session"
	case a.Credential.Provider == "aws":
		what = "Leaked AWS access key"
	case a.Credential.Provider != "":
		what = "Leaked " + a.Credential.Provider + " credential"
	}
	if a.Kind == alert.KindCredentialMisused {
		what = strings.Replace(what, "Leaked", "Misused", 1)
	}
	title := fmt.Sprintf("%s %s — %s", what, a.Credential.ID, strings.ToUpper(a.Severity))
	if a.Test {
		title = "[TEST] " + title
	}
	return title
}

// Incident renders the incident message of a run. title, when not empty,
// replaces the default header.
func Incident(rep actions.Report, channelTitle string) Message {
	a := rep.Alert
	title := IncidentTitle(a)
	if channelTitle != "" {
		title = channelTitle
	}
	blocks := []slackapi.Block{slackapi.NewHeaderBlock(plain(clip("🚨 "+escape(title), maxHeader)))}

	owner, account := a.Credential.Principal, a.Credential.Account
	for _, s := range rep.Steps {
		if s.Action == "aws.identify_key" && s.Status == "succeeded" {
			if v := str(s.Outputs["user_name"]); v != "" {
				owner = v
			}
			if v := str(s.Outputs["account"]); v != "" {
				account = v
			}
		}
	}
	fields := []*slackapi.TextBlockObject{
		mrkdwn(fmt.Sprintf("*Credential*\n`%s` (%s)", escape(a.Credential.ID), escape(or(a.Credential.Kind, "unknown kind")))),
		mrkdwn(fmt.Sprintf("*Owner*\n%s", escape(or(owner, "not known yet")))),
		mrkdwn(fmt.Sprintf("*Account*\n%s", escape(or(account, "not known yet")))),
		mrkdwn(fmt.Sprintf("*Reported by*\n%s, %s", escape(a.Source), a.ReceivedAt.UTC().Format("2006-01-02 15:04:05Z"))),
	}
	if where := whereLeaked(a.Location); where != "" {
		fields = append(fields, mrkdwn("*Where*\n"+clip(where, maxField-10)))
	}
	status := fmt.Sprintf("*Status*\n%s %s", mark(rep.Status), escape(strings.ReplaceAll(rep.Status, "_", " ")))
	if rep.Generation > 0 {
		status += fmt.Sprintf(" (retried %d×)", rep.Generation)
	}
	if rep.Ended != "" && rep.Status == "cancelled" {
		status += " — " + escape(clip(rep.Ended, 300))
	}
	if rep.Closed != nil {
		status += fmt.Sprintf("\n🔒 closed by %s: %s", escape(rep.Closed.By), escape(clip(rep.Closed.Note, 500)))
	}
	fields = append(fields, mrkdwn(clip(status, maxField)))
	blocks = append(blocks, slackapi.NewSectionBlock(nil, fields, nil))

	var steps []string
	for _, s := range rep.Steps {
		line := fmt.Sprintf("%s *%s* `%s`", mark(s.Status), escape(s.ID), escape(s.Action))
		switch {
		case s.Status == "waiting_approval":
			line += " — waiting for approval"
		case s.Error != "" && s.Status != "succeeded":
			line += " — " + escape(clip(s.Error, 200))
		case s.Message != "":
			line += " — " + escape(clip(s.Message, 200))
		}
		if ap := s.Approval; ap != nil && ap.Decision != "" {
			line += fmt.Sprintf(" (%s by %s)", ap.Decision, Mention(ap.DecidedBy))
		}
		steps = append(steps, line)
	}
	blocks = append(blocks, slackapi.NewSectionBlock(mrkdwn(clip("*Response*\n"+strings.Join(steps, "\n"), maxSection)), nil, nil))

	if impact := impactSummary(rep); impact != "" {
		blocks = append(blocks, slackapi.NewSectionBlock(mrkdwn(clip("*What the key was used for*\n"+impact, maxSection)), nil, nil))
	}
	footer := fmt.Sprintf("stanch run `%s` · playbook `%s` · updated %s", escape(rep.RunID), escape(rep.Playbook), time.Now().UTC().Format("15:04:05Z"))
	blocks = append(blocks, slackapi.NewContextBlock("", mrkdwn(footer)))
	return Message{Text: clip(escape(title)+" ("+escape(strings.ReplaceAll(rep.Status, "_", " "))+")", 300), Blocks: blocks}
}

func whereLeaked(l alert.Location) string {
	if l.Repo == "" && l.URL == "" && l.Path == "" {
		return ""
	}
	where := l.Repo
	if l.Path != "" {
		where = strings.TrimPrefix(where+"/"+l.Path, "/")
		if l.Line > 0 {
			where += fmt.Sprintf(":%d", l.Line)
		}
	}
	where = escape(where)
	if target, ok := linkTarget(l.URL); ok {
		where = fmt.Sprintf("<%s|%s>", target, or(where, "link"))
	} else if l.URL != "" {
		// Another scheme (javascript:, file:, a Slack command) is never
		// a link: it is shown as text.
		where = strings.TrimSpace(where + " " + escape(l.URL))
	}
	if l.Commit != "" {
		where += fmt.Sprintf(" (commit `%s`)", escape(clip(l.Commit, 12)))
	}
	return where
}

// linkTarget returns raw as the target of a Slack link when it is an
// http(s) URL with a host, escaped so that it cannot end the link early.
func linkTarget(raw string) (string, bool) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return "", false
	}
	return strings.NewReplacer("&", "&amp;", "<", "%3C", ">", "%3E", "|", "%7C").Replace(alert.RedactText(u.String())), true
}

// impactSummary describes the output of the run's CloudTrail step.
func impactSummary(rep actions.Report) string {
	for _, s := range rep.Steps {
		if s.Action != "aws.cloudtrail_impact" || s.Status != "succeeded" {
			continue
		}
		out := normalise(s.Outputs)
		var lines []string
		lines = append(lines, fmt.Sprintf("%v event(s) in %d region(s), first %s, last %s; %v denied", escape(fmt.Sprint(num(out["events"]))), len(list(out["regions"])), escape(or(str(out["first_used"]), "—")), escape(or(str(out["last_used"]), "—")), escape(fmt.Sprint(num(out["denied"])))))
		if counts, ok := out["finding_counts"].(map[string]any); ok && len(counts) > 0 {
			var parts []string
			for _, k := range sortedKeys(counts) {
				parts = append(parts, fmt.Sprintf("%s %s", escape(strings.ReplaceAll(k, "_", " ")), escape(fmt.Sprint(num(counts[k])))))
			}
			lines = append(lines, "Findings: "+strings.Join(parts, ", "))
		}
		for i, f := range list(out["findings"]) {
			if i == 5 {
				lines = append(lines, fmt.Sprintf("…and %d more", len(list(out["findings"]))-5))
				break
			}
			m, _ := f.(map[string]any)
			lines = append(lines, fmt.Sprintf("• `%s` %s in %s from %s (%s)", escape(str(m["event"])), escape(str(m["time"])), escape(str(m["region"])), escape(or(str(m["source_ip"]), "?")), escape(strings.ReplaceAll(str(m["category"]), "_", " "))))
		}
		if derived := list(out["derived_credentials"]); len(derived) > 0 {
			var ids []string
			for _, d := range derived {
				m, _ := d.(map[string]any)
				ids = append(ids, fmt.Sprintf("`%s` (%s via %s)", escape(str(m["access_key_id"])), escape(str(m["kind"])), escape(str(m["created_by_event"]))))
			}
			lines = append(lines, "Derived credentials: "+strings.Join(ids, ", "))
		}
		if failed, ok := out["regions_failed"].(map[string]any); ok && len(failed) > 0 {
			lines = append(lines, fmt.Sprintf("⚠️ %d region(s) could not be read: %s", len(failed), escape(strings.Join(sortedKeys(failed), ", "))))
		}
		return strings.Join(lines, "\n")
	}
	return ""
}

// Approval renders the message that asks for a step's approval (with
// buttons while it waits) or shows how it ended. escalatedHere is true for
// the message of the second round.
func Approval(rep actions.Report, step actions.StepReport, tokens *Tokens, secondRound bool) Message {
	ap := step.Approval
	header := fmt.Sprintf("✋ Approval needed: %s (%s)", step.ID, step.Action)
	if secondRound {
		header = "⏫ Escalated: " + header[len("✋ "):]
	}
	header = escape(header)
	blocks := []slackapi.Block{slackapi.NewHeaderBlock(plain(clip(header, maxHeader)))}
	body := escape(ap.Message)
	body += fmt.Sprintf("\n\n*Incident*: %s", escape(IncidentTitle(rep.Alert)))
	var whoList []string
	for _, p := range ap.Approvers {
		whoList = append(whoList, Mention(p))
	}
	body += "\n*Approvers*: " + strings.Join(whoList, ", ")
	blocks = append(blocks, slackapi.NewSectionBlock(mrkdwn(clip(body, maxSection)), nil, nil))
	if effects := effectsText(ap); effects != "" {
		blocks = append(blocks, slackapi.NewSectionBlock(mrkdwn(clip(effects, maxSection)), nil, nil))
	}

	var state string
	switch {
	case ap.Decision != "":
		verb := "Approved"
		if ap.Decision == "denied" {
			verb = "Denied"
		}
		by := Mention(ap.DecidedBy)
		if ap.Via == "timeout" {
			by = "timeout (nobody decided in time)"
		}
		state = fmt.Sprintf("%s by %s at %s", verb, by, ap.DecidedAt.UTC().Format("2006-01-02 15:04:05Z"))
		if ap.Via == "cli" {
			state += " with `stanch approve`"
		}
	case !secondRound && ap.EscalatedTo != "":
		state = fmt.Sprintf("Nobody decided in time; escalated to %s at %s", channelRef(ap.EscalatedTo), ap.EscalatedAt.UTC().Format("2006-01-02 15:04:05Z"))
	case rep.Status != "waiting_approval" && rep.Status != "running" && rep.Status != "pending":
		state = "The run ended (" + escape(rep.Status) + ") before a decision"
	}
	text := header
	if state != "" {
		blocks = append(blocks, slackapi.NewSectionBlock(mrkdwn(state), nil, nil))
		text += " — " + state
	} else if tokens == nil {
		// Without a signing secret a click could not be verified: no
		// buttons, only the command that decides.
		blocks = append(blocks, slackapi.NewSectionBlock(mrkdwn(fmt.Sprintf("Decide with `stanch approve %s %s --by NAME` (or `--deny`)", escape(rep.RunID), escape(step.ID))), nil, nil))
	} else {
		approve := slackapi.NewButtonBlockElement(ActionApprove, tokens.Sign(ButtonValue{RunID: rep.RunID, StepID: step.ID, Decision: "approved"}), plain("Approve")).
			WithStyle(slackapi.StylePrimary).
			WithConfirm(slackapi.NewConfirmationBlockObject(plain("Approve "+clip(escape(step.ID), 60)+"?"), plain(clip(confirmText(rep, step), 300)), plain("Approve"), plain("Cancel")))
		deny := slackapi.NewButtonBlockElement(ActionDeny, tokens.Sign(ButtonValue{RunID: rep.RunID, StepID: step.ID, Decision: "denied"}), plain("Deny")).
			WithStyle(slackapi.StyleDanger).
			WithConfirm(slackapi.NewConfirmationBlockObject(plain("Deny "+clip(escape(step.ID), 60)+"?"), plain(clip("The step will not run.", 300)), plain("Deny"), plain("Cancel")).WithStyle(slackapi.StyleDanger))
		blocks = append(blocks, slackapi.NewActionBlock("stanch_approval", approve, deny))
		blocks = append(blocks, slackapi.NewContextBlock("", mrkdwn(fmt.Sprintf("Times out %s; then %s", ap.Deadline.UTC().Format("2006-01-02 15:04:05Z"), timeoutText[ap.OnTimeout]))))
	}
	blocks = append(blocks, slackapi.NewContextBlock("", mrkdwn(fmt.Sprintf("stanch run `%s` · step `%s`", escape(rep.RunID), escape(step.ID)))))
	return Message{Text: clip(text, 300), Blocks: blocks}
}

// effectsText says what the step will change if approved, from its plan:
// every effect, with its account and principal, irreversible ones marked.
func effectsText(ap *actions.ApprovalReport) string {
	if len(ap.Effects) == 0 {
		if ap.Plan != "" {
			return "*If approved*: " + escape(ap.Plan)
		}
		return ""
	}
	lines := []string{"*If approved, stanch will:*"}
	for _, e := range ap.Effects {
		if e.Irreversible {
			lines = append(lines, "• ⚠️ "+escape(e.Description)+" — *cannot be undone*")
		} else {
			lines = append(lines, "• "+escape(e.Description))
		}
	}
	switch ap.OnDeny {
	case "skip":
		lines = append(lines, "_If denied, the step is skipped and the run goes on._")
	default:
		lines = append(lines, "_If denied, the run stops here (cancelled)._")
	}
	return strings.Join(lines, "\n")
}

var timeoutText = map[string]string{
	"deny":     "the step is denied",
	"approve":  "the step is approved",
	"escalate": "it is escalated",
	"":         "the step is denied",
}

// confirmText is the approve button's confirmation: the irreversible
// effects first, since they are what a person must not click through.
func confirmText(rep actions.Report, step actions.StepReport) string {
	var irreversible []string
	for _, e := range step.Approval.Effects {
		if e.Irreversible {
			irreversible = append(irreversible, escape(e.Description))
		}
	}
	if len(irreversible) > 0 {
		return "This cannot be undone: " + strings.Join(irreversible, "; ") + "."
	}
	return "stanch will run " + escape(step.Action) + " for run " + escape(rep.RunID) + "."
}

func channelRef(ch string) string {
	if isChannelID(ch) {
		return "<#" + ch + ">"
	}
	return "#" + escape(strings.TrimPrefix(ch, "#"))
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func str(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return ""
}

func num(v any) any {
	if f, ok := v.(float64); ok && f == float64(int64(f)) {
		return int64(f)
	}
	if v == nil {
		return 0
	}
	return v
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

// normalise gives outputs the JSON shapes they have after the store, so
// fresh and stored outputs render alike.
func normalise(m map[string]any) map[string]any {
	b, err := json.Marshal(m)
	if err != nil {
		return m
	}
	var out map[string]any
	if json.Unmarshal(b, &out) != nil {
		return m
	}
	return out
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
