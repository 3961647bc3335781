package runner

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Message is a message stanch posts about a run. A message with an empty
// TS is one stanch was about to post when it last looked: it may or may not
// have reached the channel.
type Message struct {
	Key     string
	Channel string
	TS      string
	// Digest identifies the content last sent, so unchanged messages are
	// not updated again.
	Digest   string
	PostedAt time.Time
}

// Message returns the message recorded under key, or ErrNotFound.
func (s *Store) Message(ctx context.Context, runID, key string) (Message, error) {
	m := Message{Key: key}
	var posted int64
	err := s.db.SQL.QueryRowContext(ctx, s.db.rebind(`SELECT channel, ts, digest, posted_at FROM stanch_messages WHERE run_id = ? AND key = ?`), runID, key).Scan(&m.Channel, &m.TS, &m.Digest, &posted)
	if errors.Is(err, sql.ErrNoRows) {
		return Message{}, fmt.Errorf("message %s of run %s: %w", key, runID, ErrNotFound)
	}
	if err != nil {
		return Message{}, fmt.Errorf("message %s of run %s: %w", key, runID, err)
	}
	m.PostedAt = fromMicros(posted)
	return m, nil
}

// SaveMessage records a message (or the intent to post it, with an empty
// TS), replacing what was recorded under its key.
func (s *Store) SaveMessage(ctx context.Context, runID string, m Message) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := s.exec(ctx, tx, `INSERT INTO stanch_messages (run_id, key, channel, ts, digest, posted_at) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (run_id, key) DO UPDATE SET channel = excluded.channel, ts = excluded.ts, digest = excluded.digest`,
			runID, m.Key, m.Channel, m.TS, m.Digest, micros(s.now()))
		if err != nil {
			return fmt.Errorf("record message %s of run %s: %w", m.Key, runID, err)
		}
		return nil
	})
}
