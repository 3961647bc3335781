package notify

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/internal/planted"
	"github.com/stanchhq/stanch/internal/slackfixture"
	"github.com/stanchhq/stanch/runner"
	"github.com/stanchhq/stanch/slack"
)

// memMessages keeps message records in memory, as the runner's store does.
type memMessages struct {
	mu   sync.Mutex
	byID map[string]runner.Message
}

func (s *memMessages) Message(_ context.Context, key string) (runner.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.byID[key]
	if !ok {
		return runner.Message{}, fmt.Errorf("message %s: %w", key, runner.ErrNotFound)
	}
	return m, nil
}

func (s *memMessages) SaveMessage(_ context.Context, m runner.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byID == nil {
		s.byID = map[string]runner.Message{}
	}
	if old, ok := s.byID[m.Key]; ok {
		m.PostedAt = old.PostedAt
	}
	s.byID[m.Key] = m
	return nil
}

// Whatever a run's report carries, a sync of its messages (posts and
// updates) and the message about an alert that started no run send Slack
// no planted secret, and log none.
func TestSlackSendsNoPlantedSecret(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rc := &slackfixture.Recorder{}
	client := slack.NewClient(slack.Options{Token: "xoxb-test", APIURL: rc.Start(t)})
	tokens, err := slack.NewTokens([]byte("0123456789abcdef0123"))
	require.NoError(t, err)
	var logs bytes.Buffer // the notifiers log from this goroutine only
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	rep := slackfixture.LeakyReport()
	want := wantedMessages(rep, tokens, "")
	require.NotEmpty(t, want)
	for _, w := range want {
		planted.RequireNone(t, "wanted message "+w.Key, w.Message.Text, slack.BlocksJSON(w.Message))
	}
	records := &memMessages{}
	require.NoError(t, NewSlack(client, tokens, log).Sync(ctx, rep, records))

	// The dedup key is the alert's, redacted when the alert came in: the
	// message's metadata holds it, to find the message again.
	u := runner.Unacted{DedupKey: "github:acme/api#7", Source: "github", Reference: "acme/" + planted.InPath + "#7",
		Reason: "GitHub answered 404 (token " + planted.Random + "): give it that permission"}
	unacted := NewUnacted(client, "#sec-incidents", log)
	m := unacted.Message(u)
	planted.RequireNone(t, "the unacted alert's message", m.Text, slack.BlocksJSON(m))
	require.NoError(t, unacted.Post(ctx, u, &memMessages{}))

	require.Len(t, rc.Posts, len(want)-1+1, "every wanted message but the incident one (updated) is posted, and the unacted alert's")
	require.NotEmpty(t, rc.Updates, "the incident message is updated")
	for _, sent := range append(rc.Posts, rc.Updates...) {
		planted.RequireNone(t, "what Slack was sent", sent.Get("text"), sent.Get("blocks"), sent.Get("metadata"))
	}
	planted.RequireNone(t, "the message records", records.byID)
	planted.RequireNone(t, "the notifiers' logs", logs.String())
}
