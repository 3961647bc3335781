package triggers

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/stanchhq/stanch/alert"
)

// gitleaksFinding is one entry of a gitleaks JSON report.
type gitleaksFinding struct {
	RuleID      string `json:"RuleID"`
	Description string `json:"Description"`
	StartLine   int    `json:"StartLine"`
	Match       string `json:"Match"`
	Secret      string `json:"Secret"`
	File        string `json:"File"`
	Commit      string `json:"Commit"`
	Link        string `json:"Link"`
	Fingerprint string `json:"Fingerprint"`
}

// gitleaksRedacted is what `gitleaks --redact` writes instead of a secret;
// --redact=N (a percentage) keeps the start of it and appends "...".
const gitleaksRedacted = "REDACTED"

// redacted reports whether gitleaks hid the finding's secret, and returns
// the part it kept visible.
func (f gitleaksFinding) redacted() (visible string, ok bool) {
	if f.Secret == gitleaksRedacted {
		return "", true
	}
	if kept, partial := strings.CutSuffix(f.Secret, "..."); partial && strings.Contains(f.Match, f.Secret) {
		return kept, true
	}
	return "", false
}

// ParseGitleaks turns a gitleaks JSON report into alerts. When the report
// hides the secrets (gitleaks --redact), the key id is read again from the
// scanned file, found through files, at the finding's line or close to it;
// a finding whose credential cannot be identified is skipped with the
// reason, and the other findings are still read.
func ParseGitleaks(data []byte, now time.Time, files SourceFiles) (Report, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return Report{}, fmt.Errorf("gitleaks report (a JSON array): %w", err)
	}
	var rep Report
	for i, entry := range raw {
		a, skipped := gitleaksAlert(entry, i+1, now, files)
		if skipped != nil {
			rep.Skipped = append(rep.Skipped, *skipped)
			continue
		}
		rep.Alerts = append(rep.Alerts, a)
	}
	return rep.redacted(), nil
}

func gitleaksAlert(entry json.RawMessage, n int, now time.Time, files SourceFiles) (alert.Alert, *Skipped) {
	var f gitleaksFinding
	if err := json.Unmarshal(entry, &f); err != nil {
		return alert.Alert{}, &Skipped{Where: fmt.Sprintf("finding %d", n), Reason: "not a gitleaks finding (an object with RuleID, File and StartLine)"}
	}
	if f.RuleID == "" {
		return alert.Alert{}, &Skipped{Where: fmt.Sprintf("finding %d", n), Reason: "no RuleID; is this `gitleaks … --report-format json` output?"}
	}
	where := fmt.Sprintf("finding %d (%s:%d, %s)", n, f.File, f.StartLine, f.RuleID)
	title := fmt.Sprintf("gitleaks rule %s matched in %s", f.RuleID, f.File)
	var cred alert.Credential
	_, tokenRule := gitleaksRules[f.RuleID]
	if visible, ok := f.redacted(); ok && tokenRule {
		token, err := files.tokenOn(f.File, f.StartLine, visible)
		if err != nil {
			return alert.Alert{}, &Skipped{Where: where, Reason: alert.RedactText("the report hides the token (gitleaks --redact) and " + err.Error())}
		}
		cred, _, _ = tokenCredential(token)
		title += " (token read from the scanned file)"
	} else if ok {
		id, err := files.keyIDNear(f.File, f.StartLine, visible)
		if err != nil {
			return alert.Alert{}, &Skipped{Where: where, Reason: alert.RedactText("the report hides the secret (gitleaks --redact) and " + err.Error())}
		}
		cred = alert.Credential{Provider: "aws", ID: id}
		title += " (key id read from the scanned file)"
	} else {
		var err error
		if cred, err = scannedCredential(f.RuleID, gitleaksRules, f.Secret+" "+f.Match); err != nil {
			return alert.Alert{}, &Skipped{Where: where, Reason: err.Error()}
		}
	}
	dedup := f.Fingerprint
	if dedup == "" {
		dedup = fmt.Sprintf("%s:%s:%s:%d", f.Commit, f.File, f.RuleID, f.StartLine)
	}
	a := alert.Alert{
		Source:     alert.SourceGitleaks,
		Kind:       alert.KindCredentialExposed,
		ReceivedAt: now,
		DedupKey:   "gitleaks:" + dedup,
		Credential: cred,
		Location:   alert.Location{Path: f.File, Line: f.StartLine, Commit: f.Commit, URL: f.Link},
		Severity:   "high",
		Title:      title,
		Raw:        alert.RedactJSON(entry),
	}
	if err := finish(&a, now); err != nil {
		return alert.Alert{}, &Skipped{Where: where, Reason: alert.RedactText(err.Error())}
	}
	return a, nil
}
