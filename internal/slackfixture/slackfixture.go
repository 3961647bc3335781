// Package slackfixture is what the Slack tests share: a run's report with
// a planted secret in it (and one with planted secrets everywhere), and a
// recorder of posts behind slack-go's own
// test server (slacktest), for the tests that check the wire against an
// implementation other than stanch's sandbox.
package slackfixture

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack/slacktest"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/internal/planted"
)

// Report is a running run's report: identified, contained (with
// planted.Random in a step's message), its impact known, a slack.notify step running and a
// deletion to come.
func Report() actions.Report {
	return actions.Report{
		RunID: "run_01TEST", Playbook: "aws-key-leaked", Status: "running", StartedAt: time.Now().Add(-time.Minute),
		Alert: alert.Alert{Source: "github", Kind: alert.KindCredentialExposed, Severity: "critical", ReceivedAt: time.Now(),
			Credential: alert.Credential{Provider: "aws", Kind: alert.CredentialAccessKey, ID: "AKIAIOSFODNN7EXAMPLE", Account: "111122223333"},
			Location:   alert.Location{Repo: "acme/payments", Path: "config/prod.env", Line: 12, URL: "https://github.com/acme/payments/security/secret-scanning/7"}},
		Steps: []actions.StepReport{
			{ID: "identify", Action: "aws.identify_key", Status: "succeeded", Outcome: "done", Message: "owned by ci-bot", Outputs: map[string]any{"user_name": "ci-bot", "account": "111122223333"}},
			{ID: "deactivate", Action: "aws.deactivate_key", Status: "succeeded", Outcome: "done", Message: "AKIAIOSFODNN7EXAMPLE deactivated; secret was " + planted.Random},
			{ID: "tell", Action: "slack.notify", Status: "running"},
			{ID: "impact", Action: "aws.cloudtrail_impact", Status: "succeeded", Outputs: map[string]any{"events": 128, "regions": []string{"us-east-1", "us-west-2"},
				"finding_counts": map[string]int{"persistence": 3}, "findings": []map[string]any{{"event": "CreateAccessKey", "category": "persistence", "region": "us-east-1", "time": "2026-11-28T10:00:00Z", "source_ip": "198.51.100.7"}},
				"derived_credentials": []map[string]any{{"access_key_id": "AKIABACKDOORKEY00001", "kind": "access_key", "created_by_event": "CreateAccessKey"}}}},
			{ID: "delete", Action: "aws.delete_key", Status: "pending"},
		},
	}
}

// LeakyReport is a report as careless upstream code could hand it over: a
// planted secret (each of planted.All in turn, as written, URL-encoded or
// in a path) in every text it carries, the alert's included, and steps in
// every state a message shows, an approval waiting and escalated among
// them.
func LeakyReport() actions.Report {
	next := 0
	leak := func(prefix string) string {
		s := planted.All[next%len(planted.All)]
		next++
		return prefix + s
	}
	inURL := func() string {
		return "https://ci.example.com/job/7/console?AWS_SECRET_ACCESS_KEY=" + url.QueryEscape(leak("")) + "&branch=main"
	}
	now := time.Now()
	return actions.Report{
		RunID: "run_01LEAKY", Playbook: "aws-key-leaked", Status: "failed", StartedAt: now.Add(-time.Minute), FinishedAt: now,
		Ended:  leak("cancelled by alice: the secret was "),
		Closed: &actions.Closure{By: "alice", At: now, Note: leak("rotated; old secret ")},
		Owner:  actions.Owner{Account: "111122223333", User: leak("ci-bot/"), Credential: "AKIAIOSFODNN7EXAMPLE", By: "identify"},
		Alert: alert.Alert{Source: "github", Kind: alert.KindCredentialExposed, Severity: "critical", ReceivedAt: now, DedupKey: leak("github:acme/api#"),
			Title:      leak("Credentials used: "),
			Credential: alert.Credential{Provider: "aws", Kind: alert.CredentialAccessKey, ID: "AKIAIOSFODNN7EXAMPLE", Account: "111122223333", Principal: leak("ci-bot/")},
			Location:   alert.Location{Repo: "acme/payments", Path: "deploy/" + leak("") + "/settings.py", Line: 12, Commit: leak(""), URL: inURL()},
			Raw:        json.RawMessage(`{"Secret":"` + leak("") + `"}`)},
		Steps: []actions.StepReport{
			{ID: "identify", Action: "aws.identify_key", Status: "succeeded", Outcome: "done", Message: leak("owned by ci-bot; secret "),
				Outputs: map[string]any{"user_name": leak("ci-bot/"), "account": "111122223333", "nested": map[string]any{"note": inURL()}, "list": []string{leak("")}}},
			{ID: "tell", Action: "slack.notify", Status: "succeeded", Outcome: "done", Message: "posted",
				Outputs: map[string]any{"channel": "C0SECINCIDENTS", "ts": "1764300000.000001", "title": leak("Leak of ")}},
			{ID: "impact", Action: "aws.cloudtrail_impact", Status: "succeeded", Outcome: "done",
				Outputs: map[string]any{"events": 3, "regions": []string{"us-east-1"}, "finding_counts": map[string]int{"persistence": 1},
					"findings":            []map[string]any{{"event": leak("CreateUser "), "category": "persistence", "region": "us-east-1", "time": "2026-11-28T10:00:00Z", "source_ip": "198.51.100.7"}},
					"derived_credentials": []map[string]any{{"access_key_id": "AKIABACKDOORKEY00001", "kind": "access_key", "created_by_event": leak("CreateAccessKey ")}}}},
			{ID: "revoke", Action: "aws.revoke_sessions", Status: "failed", Error: leak("access denied for ")},
			{ID: "delete", Action: "aws.delete_key", Status: "waiting_approval", Approval: &actions.ApprovalReport{
				Approvers: []string{"U0ALICE", leak("group-")}, Message: leak("Delete the key? It was "), Deadline: now.Add(time.Hour), OnTimeout: "escalate",
				Channel: "C0SECINCIDENTS", EscalatedTo: "C0SECLEADS", EscalatedAt: now,
				Effects: []actions.Effect{{Description: leak("delete access key AKIAIOSFODNN7EXAMPLE of user ci-bot/"), Irreversible: true}, {Description: "store " + inURL()}},
				Plan:    leak("would delete; secret "), OnDeny: "stop"}},
			{ID: "rotate", Action: "aws.rotate_key", Status: "denied", Approval: &actions.ApprovalReport{
				Approvers: []string{"U0ALICE"}, Message: leak("Rotate? "), Deadline: now, OnTimeout: "deny", Decision: "denied", DecidedBy: leak("U0BOB "), DecidedAt: now, Via: "slack"}},
			{ID: "resolve", Action: "github.resolve_alert", Status: "skipped", Message: leak("skipped: ")},
		},
	}
}

// Recorder is a chat.postMessage for slack-go's slacktest server that keeps
// what was posted, as slacktest itself only queues it for its RTM feed.
type Recorder struct {
	mu    sync.Mutex
	Posts []url.Values
	// Updates are the chat.update requests, in order.
	Updates []url.Values
	// Limited answers this many posts with 429 first.
	Limited int
}

// Start serves the Web API with the recorder until the test ends, and
// returns its URL.
func (rc *Recorder) Start(t *testing.T) string {
	t.Helper()
	srv := slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/chat.postMessage", rc.postMessage)
		c.Handle("/conversations.history", rc.history)
		c.Handle("/chat.update", func(w http.ResponseWriter, r *http.Request) {
			_ = r.ParseForm()
			rc.mu.Lock()
			rc.Updates = append(rc.Updates, r.PostForm)
			rc.mu.Unlock()
			_, _ = w.Write([]byte(`{"ok":true,"channel":"C0SECINCIDENTS","ts":"1764300000.000001"}`))
		})
		c.Handle("/conversations.list", func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(`{"ok":true,"channels":[{"id":"C0SECINCIDENTS","name":"sec-incidents"}],"response_metadata":{"next_cursor":""}}`))
		})
	})
	srv.Start()
	t.Cleanup(srv.Stop)
	return srv.GetAPIURL()
}

func (rc *Recorder) postMessage(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.Limited > 0 {
		rc.Limited--
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(`{"ok":false,"error":"ratelimited"}`))
		return
	}
	rc.Posts = append(rc.Posts, r.PostForm)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": "C0SECINCIDENTS", "ts": fmt.Sprintf("1764300000.%06d", len(rc.Posts))})
}

// history answers conversations.history with what was posted, metadata
// included, as Slack does with include_all_metadata.
func (rc *Recorder) history(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var msgs []map[string]any
	for i, p := range rc.Posts {
		var md map[string]any
		_ = json.Unmarshal([]byte(p.Get("metadata")), &md)
		msgs = append(msgs, map[string]any{"type": "message", "ts": fmt.Sprintf("1764300000.%06d", i+1), "text": p.Get("text"), "metadata": md})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "messages": msgs, "has_more": false})
}
