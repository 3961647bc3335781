package triggers

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stanchhq/stanch/sandbox"
	"github.com/stanchhq/stanch/slack"
)

const fuzzSigningSecret = "fuzz-signing-secret-0123456789abcdef"

// decisions records what reached the decider.
type decisions struct {
	mu    sync.Mutex
	calls int
}

func (d *decisions) Approvers(context.Context, string, string) ([]string, error) {
	return []string{"U0ALICE"}, nil
}

func (d *decisions) Decide(context.Context, string, string, string, Approver, []string) (Decided, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls++
	return Decided{First: true}, nil
}

// FuzzSlackInteractions sends the endpoint bodies signed for one genuine
// click: anything but that exact body must be refused before it can
// decide, and nothing may panic.
func FuzzSlackInteractions(f *testing.F) {
	tokens, err := slack.NewTokens([]byte("fuzz approval token key 0123456789"))
	if err != nil {
		f.Fatal(err)
	}
	value := tokens.Sign(slack.ButtonValue{RunID: "run_fuzz", StepID: "destroy", Decision: "approved"})
	click := sandbox.SlackClick{URL: "http://stanch.invalid/hooks/slack/interactions", SigningSecret: fuzzSigningSecret, User: "U0ALICE",
		Channel: "C0SECINCIDENTS", MessageTS: "1764300000.000100", ActionID: slack.ActionApprove, BlockID: "stanch_approval", Value: value}
	req, err := click.Request(context.Background())
	if err != nil {
		f.Fatal(err)
	}
	genuine, err := io.ReadAll(req.Body)
	if err != nil {
		f.Fatal(err)
	}
	header := req.Header.Clone()
	f.Add(genuine)
	f.Add([]byte("payload=%7B%22type%22%3A%22block_actions%22%7D"))
	f.Add([]byte("payload=not json"))
	f.Fuzz(func(t *testing.T, body []byte) {
		d := &decisions{}
		// No Slack client is configured: answers to people fail quietly.
		h := NewSlackInteractions(fuzzSigningSecret, tokens, d, slack.NewClient(slack.Options{}), nil)
		r := httptest.NewRequest(http.MethodPost, "/hooks/slack/interactions", bytes.NewReader(body))
		r.Header = header.Clone()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		h.Wait()
		if !bytes.Equal(body, genuine) {
			if w.Code != http.StatusUnauthorized {
				t.Fatalf("a body that is not the signed one got %d", w.Code)
			}
			if d.calls > 0 {
				t.Fatal("a body that is not the signed one reached the decider")
			}
			return
		}
		if w.Code != http.StatusOK || d.calls != 1 {
			t.Fatalf("the genuine click: status %d, %d decision(s)", w.Code, d.calls)
		}
		// The same request again is a replay.
		again := httptest.NewRecorder()
		r2 := httptest.NewRequest(http.MethodPost, "/hooks/slack/interactions", bytes.NewReader(body))
		r2.Header = header.Clone()
		h.ServeHTTP(again, r2)
		h.Wait()
		if again.Code != http.StatusUnauthorized || d.calls != 1 {
			t.Fatalf("a replay: status %d, %d decision(s)", again.Code, d.calls)
		}
	})
}

// The five-minute window is measured on the request's own timestamp.
func TestSlackInteractionsRefuseStaleClicks(t *testing.T) {
	tokens, _ := slack.NewTokens([]byte("fuzz approval token key 0123456789"))
	d := &decisions{}
	h := NewSlackInteractions(fuzzSigningSecret, tokens, d, slack.NewClient(slack.Options{}), nil)
	for _, age := range []time.Duration{6 * time.Minute, -6 * time.Minute} {
		req, err := sandbox.SlackClick{URL: "http://stanch.invalid/", SigningSecret: fuzzSigningSecret, User: "U0ALICE", Channel: "C0X",
			ActionID: slack.ActionApprove, Value: "v1.x.y", At: time.Now().Add(-age)}.Request(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusUnauthorized {
			t.Fatalf("a click %s old got %d", age, w.Code)
		}
	}
	if d.calls != 0 {
		t.Fatal("a stale click reached the decider")
	}
}
