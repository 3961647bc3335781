package triggers

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/stanchhq/stanch/alert"
)

// truffleHogResult is one line of `trufflehog … --json`.
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
	ExtraData    map[string]string `json:"ExtraData"`
}

// ParseTruffleHog turns truffleHog JSON lines into alerts, one per finding.
// The secret itself is read only to find the key id (or, for other secret
// types, a fingerprint) and never leaves this function.
func ParseTruffleHog(data []byte, now time.Time) ([]alert.Alert, error) {
	var out []alert.Alert
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var r truffleHogResult
		if err := json.Unmarshal(line, &r); err != nil {
			return nil, fmt.Errorf("truffleHog line %d: %w", n, err)
		}
		if r.DetectorName == "" {
			return nil, fmt.Errorf("truffleHog line %d: no DetectorName; is this `trufflehog --json` output?", n)
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
		cred := scannedCredential(r.DetectorName, r.Raw+" "+r.RawV2)
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
			return nil, fmt.Errorf("truffleHog line %d: %w", n, err)
		}
		out = append(out, a)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read truffleHog output: %w", err)
	}
	return out, nil
}

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

// ParseGitleaks turns a gitleaks JSON report into alerts.
func ParseGitleaks(data []byte, now time.Time) ([]alert.Alert, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("gitleaks report (a JSON array): %w", err)
	}
	var out []alert.Alert
	for i, entry := range raw {
		var f gitleaksFinding
		if err := json.Unmarshal(entry, &f); err != nil {
			return nil, fmt.Errorf("gitleaks finding %d: %w", i, err)
		}
		if f.RuleID == "" {
			return nil, fmt.Errorf("gitleaks finding %d: no RuleID; is this `gitleaks … --report-format json` output?", i)
		}
		cred := scannedCredential(f.RuleID, f.Secret+" "+f.Match)
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
			Title:      fmt.Sprintf("gitleaks rule %s matched in %s", f.RuleID, f.File),
			Raw:        alert.RedactJSON(entry),
		}
		if err := finish(&a, now); err != nil {
			return nil, fmt.Errorf("gitleaks finding %d: %w", i, err)
		}
		out = append(out, a)
	}
	return out, nil
}

// scannedCredential identifies what a scanner found: an AWS key by its id,
// anything else by a fingerprint of the secret (identifies, reveals
// nothing), under the detector's name.
func scannedCredential(detector, secretText string) alert.Credential {
	if id := alert.AWSKeyID.FindString(secretText); id != "" {
		return alert.Credential{Provider: "aws", ID: id}
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(secretText)))
	return alert.Credential{Provider: strings.ToLower(detector), Kind: alert.CredentialToken, ID: "sha256:" + hex.EncodeToString(sum[:8])}
}

// repoName turns a clone URL into owner/name.
func repoName(url string) string {
	url = strings.TrimSuffix(strings.TrimSuffix(url, "/"), ".git")
	parts := strings.Split(url, "/")
	if len(parts) >= 2 {
		return parts[len(parts)-2] + "/" + parts[len(parts)-1]
	}
	return url
}
