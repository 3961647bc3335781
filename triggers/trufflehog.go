package triggers

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/stanchhq/stanch/alert"
)

// truffleHogResult is one finding line of `trufflehog … --json`. Raw and
// RawV2 are plain strings in current releases; early 3.x releases wrote Raw
// as a Go []byte, which encoding/json turns into base64, had no RawV2, and
// the AWS detector put the key id in plain text in Redacted.
type truffleHogResult struct {
	SourceMetadata struct {
		Data struct {
			Git *struct {
				Commit     string `json:"commit"`
				File       string `json:"file"`
				Repository string `json:"repository"`
				Line       int    `json:"line"`
			} `json:"Git"`
			Github *struct {
				Commit     string `json:"commit"`
				File       string `json:"file"`
				Repository string `json:"repository"`
				Link       string `json:"link"`
				Line       int    `json:"line"`
			} `json:"Github"`
			Filesystem *struct {
				File string `json:"file"`
				Line int    `json:"line"`
			} `json:"Filesystem"`
		} `json:"Data"`
	} `json:"SourceMetadata"`
	DetectorName string            `json:"DetectorName"`
	Verified     bool              `json:"Verified"`
	Raw          string            `json:"Raw"`
	RawV2        string            `json:"RawV2"`
	Redacted     string            `json:"Redacted"`
	ExtraData    map[string]string `json:"ExtraData"`
}

// maxTruffleHogLine bounds one line; truffleHog's findings are far smaller.
const maxTruffleHogLine = 4 << 20

// ParseTruffleHog turns truffleHog JSON lines into alerts, one per finding.
// truffleHog's own log lines, mixed in when its stderr is redirected to the
// same file, are counted as lines that are not findings; a finding that
// cannot be read or names no credential is skipped with the reason, and
// the other findings are still read. The secret itself is read only to
// find the key id (or, for other secret types, a fingerprint) and never
// leaves this function.
func ParseTruffleHog(data []byte, now time.Time) (Report, error) {
	var rep Report
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), maxTruffleHogLine)
	n := 0
	for sc.Scan() {
		n++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		a, skipped := truffleHogLine(line, n, now)
		if skipped != nil {
			rep.Skipped = append(rep.Skipped, *skipped)
			continue
		}
		rep.Alerts = append(rep.Alerts, a)
	}
	if err := sc.Err(); err != nil {
		rep.skip(fmt.Sprintf("line %d and after", n+1), "a line longer than %d bytes; the rest of the output was not read", maxTruffleHogLine)
	}
	return rep.redacted(), nil
}

// truffleHogLine reads one non-empty line: an alert, or why it is none.
func truffleHogLine(line []byte, n int, now time.Time) (alert.Alert, *Skipped) {
	where := fmt.Sprintf("line %d", n)
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(line, &fields); err != nil {
		if bytes.Contains(line, []byte(`"DetectorName"`)) || bytes.Contains(line, []byte(`"SourceMetadata"`)) {
			return alert.Alert{}, &Skipped{Where: where, Reason: "a truffleHog finding that is not valid JSON (cut short or corrupted)"}
		}
		return alert.Alert{}, &Skipped{Where: where, Reason: "not JSON: truffleHog's banner or plain-text log output", NotAFinding: true}
	}
	if !has(fields, "DetectorName") {
		if has(fields, "logger") && has(fields, "msg") {
			return alert.Alert{}, &Skipped{Where: where, Reason: "a truffleHog log line", NotAFinding: true}
		}
		return alert.Alert{}, &Skipped{Where: where, Reason: "a JSON line without DetectorName", NotAFinding: true}
	}
	var r truffleHogResult
	if err := json.Unmarshal(line, &r); err != nil {
		return alert.Alert{}, &Skipped{Where: where, Reason: "a finding whose fields do not have the types truffleHog writes"}
	}
	var loc alert.Location
	switch d := r.SourceMetadata.Data; {
	case d.Git != nil:
		loc = alert.Location{Repo: repoName(d.Git.Repository), Path: d.Git.File, Line: d.Git.Line, Commit: d.Git.Commit}
	case d.Github != nil:
		loc = alert.Location{Repo: repoName(d.Github.Repository), Path: d.Github.File, Line: d.Github.Line, Commit: d.Github.Commit, URL: d.Github.Link}
	case d.Filesystem != nil:
		loc = alert.Location{Path: d.Filesystem.File, Line: d.Filesystem.Line}
	}
	where = fmt.Sprintf("line %d (%s, %s)", n, place(loc), r.DetectorName)
	cred, err := truffleHogCredential(r)
	if err != nil {
		return alert.Alert{}, &Skipped{Where: where, Reason: err.Error()}
	}
	if cred.Provider == "aws" {
		cred.Account = r.ExtraData["account"]
		if arn := r.ExtraData["arn"]; arn != "" {
			cred.Principal = arn[strings.LastIndexByte(arn, '/')+1:]
		}
	}
	severity := "high"
	if r.Verified {
		severity = "critical"
	}
	a := alert.Alert{
		Source:     alert.SourceTruffleHog,
		Kind:       alert.KindCredentialExposed,
		ReceivedAt: now,
		DedupKey:   fmt.Sprintf("trufflehog:%s:%s:%s:%d", cred.ID, loc.Commit, loc.Path, loc.Line),
		Credential: cred,
		Location:   loc,
		Severity:   severity,
		Title:      fmt.Sprintf("truffleHog found a %s secret in %s", r.DetectorName, firstNonEmpty(loc.Path, loc.Repo, "a scanned source")),
		Raw:        alert.RedactJSON(line),
	}
	if err := finish(&a, now); err != nil {
		return alert.Alert{}, &Skipped{Where: where, Reason: alert.RedactText(err.Error())}
	}
	return a, nil
}

// truffleHogCredential identifies a finding's credential. For AWS
// detectors it fails when no one key id can be found: such a finding names
// nothing stanch can contain.
func truffleHogCredential(r truffleHogResult) (alert.Credential, error) {
	cred, err := scannedCredential(r.DetectorName, truffleHogDetectors, r.Raw+" "+r.RawV2)
	if _, isKey := alert.KeyID(cred.ID); err != nil || isKey || !strings.Contains(strings.ToLower(r.DetectorName), "aws") {
		return cred, err
	}
	// Early 3.x output: Raw is base64, and the key id is in Redacted.
	for _, text := range []string{r.Redacted, fromBase64(r.Raw), fromBase64(r.RawV2)} {
		switch id, n := alert.KeyIDIn(text); {
		case n == 1:
			return alert.Credential{Provider: "aws", ID: id}, nil
		case n > 1:
			return alert.Credential{}, errMoreThanOneKeyID
		}
	}
	return cred, errors.New("an AWS finding without an access key id in Raw, RawV2 or Redacted")
}

func fromBase64(s string) string {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return ""
	}
	return string(b)
}

// place names where a finding was, for people.
func place(loc alert.Location) string {
	switch {
	case loc.Path != "" && loc.Line > 0:
		return fmt.Sprintf("%s:%d", loc.Path, loc.Line)
	case loc.Path != "":
		return loc.Path
	case loc.Repo != "":
		return loc.Repo
	}
	return "no location"
}
