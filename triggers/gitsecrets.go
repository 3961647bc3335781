package triggers

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/stanchhq/stanch/alert"
)

// git-secrets (awslabs/git-secrets) prints each line that matches a
// prohibited pattern as git grep does, path:line:content, or
// commit:path:line:content for --scan-history, then a blank line and
// "[ERROR] Matched one or more prohibited patterns" with a list of
// mitigations. It names no rule: the line is all there is, so the
// credential is read from the line by its shape (an AWS key id, or a
// token of a kind stanch knows), and the line itself is never kept.

// gitSecretsError is the line git-secrets prints after its findings.
const gitSecretsError = "[ERROR] Matched one or more prohibited patterns"

// gitSecretsLine is one finding line: an optional commit, the path, the
// line number and the content. The path is taken up to the first
// ":<digits>:", so a path with a colon followed by digits is misread; git
// grep prints no quoting that would tell.
var gitSecretsLine = regexp.MustCompile(`^(?:([0-9a-f]{40}):)?([^:]+(?::[^:0-9][^:]*)*):([0-9]+):(.*)$`)

// maxGitSecretsLine bounds one line of the output.
const maxGitSecretsLine = 4 << 20

// looksLikeGitSecrets reports whether text is git-secrets' output.
func looksLikeGitSecrets(text string) bool {
	return strings.Contains(text, gitSecretsError) || strings.Contains(text, "[ERROR] Matched prohibited pattern")
}

// ParseGitSecrets turns the output of `git secrets --scan` (or
// --scan-history, or a hook's refusal) into alerts: one per credential on
// each matched line. A token of a kind stanch knows is identified by the
// fingerprint of its value, which this process remembers (leaked.Process)
// for the action that revokes it; an AWS key by its id. A line that holds
// neither still becomes an alert, so that it is reported, but it names
// nothing stanch can act on, and its title says so.
func ParseGitSecrets(data []byte, now time.Time) (Report, error) {
	var rep Report
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), maxGitSecretsLine)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.HasPrefix(line, "Possible mitigations:") {
			break // the rest is advice
		}
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "[ERROR]") {
			continue
		}
		m := gitSecretsLine.FindStringSubmatch(line)
		if m == nil {
			rep.Skipped = append(rep.Skipped, Skipped{Where: fmt.Sprintf("line %d", n), Reason: "not a git-secrets finding (path:line:content)", NotAFinding: true})
			continue
		}
		number, _ := strconv.Atoi(m[3])
		loc := alert.Location{Commit: m[1], Path: m[2], Line: number}
		alerts, skipped := gitSecretsAlerts(loc, m[4], n, now)
		rep.Alerts = append(rep.Alerts, alerts...)
		if skipped != nil {
			rep.Skipped = append(rep.Skipped, *skipped)
		}
	}
	if err := sc.Err(); err != nil {
		rep.skip(fmt.Sprintf("line %d and after", n+1), "a line longer than %d bytes; the rest of the output was not read", maxGitSecretsLine)
	}
	return rep.redacted(), nil
}

// gitSecretsAlerts makes the alerts of one matched line.
func gitSecretsAlerts(loc alert.Location, content string, n int, now time.Time) ([]alert.Alert, *Skipped) {
	where := fmt.Sprintf("line %d (%s)", n, place(loc))
	var creds []alert.Credential
	switch id, count := alert.KeyIDIn(content); {
	case count == 1:
		creds = append(creds, awsCredential(id))
	case count > 1:
		return nil, &Skipped{Where: where, Reason: "the matched line holds more than one AWS access key id, so which one leaked is not known; give each to stanch run --alert"}
	}
	// Each token on the line leaked: one alert for each.
	for _, token := range alert.TokensIn(content) {
		cred, _, _ := tokenCredential(token)
		creds = append(creds, cred)
	}
	// The matched line as the record keeps it: where, and the content
	// under a secret's name, so redaction removes all of it.
	raw, _ := json.Marshal(map[string]any{"file": loc.Path, "line": loc.Line, "commit": loc.Commit, "match": content})
	at := place(loc)
	if len(creds) == 0 {
		a := alert.Alert{
			Source:     alert.SourceGitSecrets,
			Kind:       alert.KindCredentialExposed,
			ReceivedAt: now,
			DedupKey:   fmt.Sprintf("git-secrets:%s:%s:%d:%s", loc.Commit, loc.Path, loc.Line, alert.Fingerprint(content)),
			Credential: alert.Credential{Kind: alert.CredentialToken, ID: alert.Fingerprint(content)},
			Location:   loc,
			Severity:   "high",
			Title:      fmt.Sprintf("git-secrets matched a prohibited pattern in %s, but the line holds no credential stanch knows (an AWS key id or a marked token): reported only, nothing can be revoked automatically; rotate it by hand", at),
			Raw:        alert.RedactJSON(raw),
		}
		if err := finish(&a, now); err != nil {
			return nil, &Skipped{Where: where, Reason: alert.RedactText(err.Error())}
		}
		return []alert.Alert{a}, nil
	}
	var out []alert.Alert
	for _, cred := range creds {
		what := "an AWS access key"
		if cred.Provider != "aws" {
			k, _ := alert.TokenKindNamed(cred.Provider, cred.TokenType)
			what = fmt.Sprintf("a %s %s (%s…)", cred.Provider, cred.TokenType, k.Prefix)
		}
		a := alert.Alert{
			Source:     alert.SourceGitSecrets,
			Kind:       alert.KindCredentialExposed,
			ReceivedAt: now,
			DedupKey:   fmt.Sprintf("git-secrets:%s:%s:%d:%s", loc.Commit, loc.Path, loc.Line, cred.ID),
			Credential: cred,
			Location:   loc,
			Severity:   "high",
			Title:      fmt.Sprintf("git-secrets found %s in %s", what, at),
			Raw:        alert.RedactJSON(raw),
		}
		if err := finish(&a, now); err != nil {
			return out, &Skipped{Where: where, Reason: alert.RedactText(err.Error())}
		}
		out = append(out, a)
	}
	return out, nil
}
