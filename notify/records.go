package notify

import (
	"context"
	"errors"

	"github.com/stanchhq/stanch/runner"
	"github.com/stanchhq/stanch/slack"
)

// records are the message records the runner hands in (a run's, or an
// unacted alert's), as slack.PostOnce reads and writes them.
type records struct{ msgs runner.Messages }

func (r records) Record(ctx context.Context, key string) (slack.Record, bool, error) {
	m, err := r.msgs.Message(ctx, key)
	if errors.Is(err, runner.ErrNotFound) {
		return slack.Record{}, false, nil
	}
	if err != nil {
		return slack.Record{}, false, err
	}
	return slack.Record{Key: key, Channel: m.Channel, TS: m.TS, Digest: m.Digest, IntentAt: m.PostedAt}, true, nil
}

func (r records) Save(ctx context.Context, rec slack.Record) error {
	return r.msgs.SaveMessage(ctx, runner.Message{Key: rec.Key, Channel: rec.Channel, TS: rec.TS, Digest: rec.Digest, PostedAt: rec.IntentAt})
}
