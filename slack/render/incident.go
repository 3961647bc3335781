package render

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/slack"
)

// The incident message shows one run: what leaked and where, each step of
// the response as it happens, and what each provider can tell of the
// credential's use (impact.go). It is rebuilt from the run's Report each
// time it changes, so the same function renders the first post and every
// update.

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

// IncidentOptions are what the incident message shows beyond the report.
type IncidentOptions struct {
	// RecordLink is the link to the run's incident record (stanch serve's
	// report, signed); "" shows none.
	RecordLink string
}

// Incident renders the incident message of a run. title, when not empty,
// replaces the default header.
func Incident(rep actions.Report, channelTitle string) slack.Message {
	return IncidentWith(rep, channelTitle, IncidentOptions{})
}

// IncidentWith is Incident with what o adds.
func IncidentWith(rep actions.Report, channelTitle string, o IncidentOptions) slack.Message {
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
			line += fmt.Sprintf(" (%s by %s)", ap.Decision, slack.Mention(ap.DecidedBy))
		}
		steps = append(steps, line)
	}
	blocks = append(blocks, slackapi.NewSectionBlock(mrkdwn(clip("*Response*\n"+strings.Join(steps, "\n"), maxSection)), nil, nil))

	blocks = append(blocks, impactBlocks(rep)...)
	footer := fmt.Sprintf("stanch run `%s` · playbook `%s`", escape(rep.RunID), escape(rep.Playbook))
	if target, ok := linkTarget(o.RecordLink); ok {
		footer += fmt.Sprintf(" · <%s|Incident record>", target)
	}
	footer += " · updated " + time.Now().UTC().Format("15:04:05Z")
	blocks = append(blocks, slackapi.NewContextBlock("", mrkdwn(footer)))
	if !rep.FinishedAt.IsZero() && rep.Journal.Hash != "" {
		// Slack keeps what the journal said when the run ended: a copy
		// outside stanch's store that shows later whether anything up
		// to it was rewritten.
		blocks = append(blocks, slackapi.NewContextBlock("", mrkdwn(fmt.Sprintf("Journal to entry %d: sha256 `%s` · check with `stanch runs verify %s --anchor %s`",
			rep.Journal.Seq, escape(rep.Journal.Hash), escape(rep.RunID), escape(rep.Journal.String())))))
	}
	return slack.Message{Text: clip(escape(title)+" ("+escape(strings.ReplaceAll(rep.Status, "_", " "))+")", 300), Blocks: blocks}
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
