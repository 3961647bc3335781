package render

import (
	"fmt"
	"strings"

	slackapi "github.com/slack-go/slack"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/slack"
)

// Approval renders the message that asks for a step's approval (with
// buttons while it waits) or shows how it ended. escalatedHere is true for
// the message of the second round.
func Approval(rep actions.Report, step actions.StepReport, tokens *slack.Tokens, secondRound bool) slack.Message {
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
		whoList = append(whoList, slack.Mention(p))
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
		by := slack.Mention(ap.DecidedBy)
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
		approve := slackapi.NewButtonBlockElement(slack.ActionApprove, tokens.Sign(slack.ButtonValue{RunID: rep.RunID, StepID: step.ID, Decision: "approved"}), plain("Approve")).
			WithStyle(slackapi.StylePrimary).
			WithConfirm(slackapi.NewConfirmationBlockObject(plain("Approve "+clip(escape(step.ID), 60)+"?"), plain(clip(confirmText(rep, step), 300)), plain("Approve"), plain("Cancel")))
		deny := slackapi.NewButtonBlockElement(slack.ActionDeny, tokens.Sign(slack.ButtonValue{RunID: rep.RunID, StepID: step.ID, Decision: "denied"}), plain("Deny")).
			WithStyle(slackapi.StyleDanger).
			WithConfirm(slackapi.NewConfirmationBlockObject(plain("Deny "+clip(escape(step.ID), 60)+"?"), plain(clip("The step will not run.", 300)), plain("Deny"), plain("Cancel")).WithStyle(slackapi.StyleDanger))
		blocks = append(blocks, slackapi.NewActionBlock("stanch_approval", approve, deny))
		blocks = append(blocks, slackapi.NewContextBlock("", mrkdwn(fmt.Sprintf("Times out %s; then %s", ap.Deadline.UTC().Format("2006-01-02 15:04:05Z"), timeoutText[ap.OnTimeout]))))
	}
	blocks = append(blocks, slackapi.NewContextBlock("", mrkdwn(fmt.Sprintf("stanch run `%s` · step `%s`", escape(rep.RunID), escape(step.ID)))))
	return slack.Message{Text: clip(text, 300), Blocks: blocks}
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
	if slack.IsChannelID(ch) {
		return "<#" + ch + ">"
	}
	return "#" + escape(strings.TrimPrefix(ch, "#"))
}
