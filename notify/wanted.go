package notify

import (
	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/runner"
	"github.com/stanchhq/stanch/slack"
	"github.com/stanchhq/stanch/slack/render"
)

// wanted is a message a run should have in Slack.
type wanted struct {
	// Key names the message among the run's (slack.NotifyKey, ThreadKey,
	// ApprovalKey), in its metadata and in the run's records.
	Key string
	// Message is what it should show, and where.
	Message slack.Message
	// TS is set for a message that exists already and is only kept up to
	// date: the incident message a slack.notify step posted, which the
	// journal holds in the step's outputs (Message.Channel is then the
	// channel's id).
	TS string
}

// wantedMessages is the first stage of a sync, and pure: the messages the
// run's report calls for, in the order they are reconciled. They are the
// incident message of each slack.notify step that posted one; a line in
// the thread of the first of them for each finished step; and each
// approval request (in its channel, else in that thread; nowhere, and so
// decided with stanch approve only, without either), with its escalation.
// recordLink, when not empty, is the link to the run's incident record the
// incident messages show.
func wantedMessages(rep actions.Report, tokens *slack.Tokens, recordLink string) []wanted {
	var out []wanted
	// The first incident message: threads hang off it.
	var threadChannel, threadTS string
	for _, st := range rep.Steps {
		if st.Action != "slack.notify" || runner.StepStatus(st.Status) != runner.StepSucceeded {
			continue
		}
		channel, _ := st.Outputs["channel"].(string)
		ts, _ := st.Outputs["ts"].(string)
		if channel == "" || ts == "" {
			continue
		}
		title, _ := st.Outputs["title"].(string)
		m := render.IncidentWith(rep, title, render.IncidentOptions{RecordLink: recordLink})
		m.Channel = channel
		out = append(out, wanted{Key: slack.NotifyKey(st.ID), Message: m, TS: ts})
		if threadTS == "" {
			threadChannel, threadTS = channel, ts
		}
	}
	if threadTS != "" {
		for _, st := range rep.Steps {
			if st.Action == "slack.notify" || !finished(st.Status) {
				continue
			}
			m := render.StepDetail(st)
			m.Channel, m.ThreadTS = threadChannel, threadTS
			out = append(out, wanted{Key: slack.ThreadKey(st.ID), Message: m})
		}
	}
	for _, st := range rep.Steps {
		ap := st.Approval
		if ap == nil {
			continue
		}
		first := render.Approval(rep, st, tokens, false)
		switch {
		case ap.Channel != "":
			first.Channel = ap.Channel
		case threadTS != "":
			first.Channel, first.ThreadTS = threadChannel, threadTS
		default:
			continue // nowhere to ask: stanch approve only
		}
		out = append(out, wanted{Key: slack.ApprovalKey(st.ID, ap.Generation, 0), Message: first})
		if ap.EscalatedTo != "" {
			second := render.Approval(rep, st, tokens, true)
			second.Channel = ap.EscalatedTo
			out = append(out, wanted{Key: slack.ApprovalKey(st.ID, ap.Generation, 1), Message: second})
		}
	}
	return out
}

func finished(status string) bool {
	switch runner.StepStatus(status) {
	case runner.StepSucceeded, runner.StepFailed, runner.StepDenied:
		return true
	}
	return false
}
