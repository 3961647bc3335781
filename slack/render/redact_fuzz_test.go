package render

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/alert"
	plant "github.com/stanchhq/stanch/internal/planted"
	"github.com/stanchhq/stanch/slack"
)

// fuzzSecrets are planted around fuzzed text.
var fuzzSecrets = plant.All

// FuzzRedactAlert puts a planted secret, with fuzzed text before and after
// it, in every field of an alert (and, as a second alert, in one field
// only, read through alert.Parse as a stanch Alert document), then checks
// that no 16 characters of the secret survive redaction, normalisation and
// what is made of the alert: the Slack incident and approval messages (text
// and blocks), the journal lines about the alert, and the JSON stored.
func FuzzRedactAlert(f *testing.F) {
	for _, seed := range []struct {
		before, after string
		which, field  uint8
	}{
		{"", "", 0, 0},
		{"AKIAIOSFODNN7EXAMPLE", "", 0, 3},
		{"https://ci.example.com/job/7?AWS_SECRET_ACCESS_KEY=", "&x=1", 1, 7},
		{"deploy/config/", "/settings.py", 2, 5},
		{"GuardDuty: key ", " was used", 0, 1},
		{"x%2F", "%2Fy", 1, 8},
		{"\"token\": \"", "\"", 2, 2},
		{"ci-bot", "", 0, 4},
	} {
		f.Add(seed.before, seed.after, seed.which, seed.field)
	}
	tokens, err := slack.NewTokens([]byte("0123456789abcdef0123"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, before, after string, which, field uint8) {
		start := time.Now()
		defer func() {
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("took %s", d)
			}
		}()
		secret := fuzzSecrets[int(which)%len(fuzzSecrets)]
		if sharesPiece(before, secret, 8) || sharesPiece(after, secret, 8) {
			t.Skip("the fuzzed text holds part of the secret itself")
		}
		text := before + secret + after
		// Every field at once.
		a := alert.Alert{Source: text, Kind: text, DedupKey: text, Severity: text, Title: text,
			Credential: alert.Credential{Provider: text, Kind: text, ID: text, Account: text, Principal: text},
			Location:   alert.Location{Repo: text, Path: text, Commit: text, URL: text, Line: 3, AlertNumber: 7},
			Raw:        json.RawMessage(`{"f":` + quoteJSON(text) + `}`)}
		a.Redact()
		// Redacting again changes nothing: the triggers, the runner and the
		// store each redact, and must agree (on the dedup key above all).
		once, _ := json.Marshal(a)
		again := a
		again.Redact()
		if twice, _ := json.Marshal(again); string(twice) != string(once) {
			t.Fatalf("redacting twice changed the alert:\n%s\n%s", once, twice)
		}
		a.Normalise(time.Now())
		check(t, secret, "the alert with every field planted", rendered(t, a, tokens))

		// One field, through a stanch Alert document.
		doc := map[string]any{"source": "manual", "title": "leak", "credential": map[string]any{"id": "AKIAIOSFODNN7EXAMPLE"},
			"location": map[string]any{"repo": "acme/api"}}
		fields := []string{"source", "title", "dedup_key", "credential.id", "credential.principal", "credential.account",
			"location.path", "location.url", "location.commit", "location.repo", "severity", "raw"}
		name := fields[int(field)%len(fields)]
		switch outer, inner, nested := strings.Cut(name, "."); {
		case name == "raw":
			doc["raw"] = map[string]any{"note": text}
		case nested:
			doc[outer].(map[string]any)[inner] = text
		default:
			doc[name] = text
		}
		data, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		parsed, err := alert.Parse(data, time.Now())
		if err != nil {
			check(t, secret, "the error about a document with "+name+" planted", err.Error())
			return
		}
		check(t, secret, "the parsed alert with "+name+" planted", rendered(t, parsed, tokens))
	})
}

// rendered is everything stanch makes of an alert that leaves it: the
// stored JSON, journal lines, and Slack messages.
func rendered(t *testing.T, a alert.Alert, tokens *slack.Tokens) string {
	t.Helper()
	stored, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	rep := actions.Report{RunID: "run_01fuzz", Playbook: "aws-key-leaked", Status: "waiting_approval", Alert: a,
		Steps: []actions.StepReport{{ID: "delete", Action: "aws.delete_key", Status: "waiting_approval",
			Approval: &actions.ApprovalReport{Approvers: []string{"U0ALICE"}, Message: "Delete the leaked key " + a.Credential.ID + " of " + a.Credential.Principal + "?",
				Deadline: time.Now().Add(time.Hour), OnTimeout: "deny",
				Effects: []actions.Effect{{Description: "delete access key " + a.Credential.ID + " of " + a.Credential.Principal, Irreversible: true}}}}}}
	var out []string
	out = append(out, string(stored),
		alert.RedactText("alert "+a.DedupKey+" matched playbook aws-key-leaked"),
		alert.RedactText("alert "+a.DedupKey+" from "+a.Source+" about the same credential joined this run"))
	for _, m := range []slack.Message{Incident(rep, ""), Approval(rep, rep.Steps[0], tokens, false)} {
		blocks, err := json.Marshal(m.Blocks)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m.Text, string(blocks), slack.PlainText(m))
	}
	return strings.Join(out, "\n")
}

func check(t *testing.T, secret, where, text string) {
	t.Helper()
	// JSON escapes nothing a secret is made of, but be sure.
	text += "\n" + strings.NewReplacer(`\u002b`, "+", `\/`, "/").Replace(text)
	if decoded, err := url.QueryUnescape(text); err == nil {
		text += "\n" + decoded
	}
	for i := 0; i+16 <= len(secret); i++ {
		if strings.Contains(text, secret[i:i+16]) {
			t.Fatalf("%q (characters %d-%d of the planted secret) survived in %s:\n%s", secret[i:i+16], i, i+16, where, text)
		}
	}
}

// sharesPiece reports whether s, as it is or URL-decoded, holds n
// characters in a row of secret.
func sharesPiece(s, secret string, n int) bool {
	readings := []string{s}
	for _, unescape := range []func(string) (string, error){url.QueryUnescape, url.PathUnescape} {
		d := s
		for range 4 {
			next, err := unescape(d)
			if err != nil || next == d {
				break
			}
			d = next
			readings = append(readings, d)
		}
	}
	for _, r := range readings {
		for i := 0; i+n <= len(secret); i++ {
			if strings.Contains(r, secret[i:i+n]) {
				return true
			}
		}
	}
	return false
}

func quoteJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
