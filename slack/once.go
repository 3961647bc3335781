package slack

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/stanchhq/stanch/internal/crashpoint"
)

// Record is what is known of one message stanch posts: before the post, the
// intent to post it (TS empty); after it, where the message is and what it
// last showed.
type Record struct {
	Key     string
	Channel string
	TS      string
	// Digest identifies the content last sent (see Digest), so that an
	// unchanged message is not updated again.
	Digest string
	// IntentAt is when the intent was recorded: a message that an
	// interrupted attempt posted is no older.
	IntentAt time.Time
}

// Records keeps the records of one owner's messages: a run's, in the
// runner's store; an alert's that started no run; or, for a slack.notify
// step, what its attempt knows from the journal.
type Records interface {
	// Record returns the record under key; ok is false when there is none.
	Record(ctx context.Context, key string) (rec Record, ok bool, err error)
	// Save records rec under rec.Key, replacing what was recorded, but
	// keeping the time of the intent.
	Save(ctx context.Context, rec Record) error
}

// Posting says how PostOnce came by a message.
type Posting int

const (
	// Recorded: an earlier call posted the message and recorded it.
	Recorded Posting = iota
	// Found: an interrupted attempt posted it and died before recording
	// it; it was found by its metadata and is recorded now.
	Found
	// Posted: this call posted it.
	Posted
)

// Once is a message to post once.
type Once struct {
	// RunID and Key name the message in its metadata and in its record.
	// A message of no run has another owner's name in RunID.
	RunID, Key string
	Message    Message
	// CrashPoint names the moment between the post and its record, where
	// the crash tests kill stanch (see internal/crashpoint).
	CrashPoint string
}

// PostOnce posts a message exactly once, even across crashes, and returns
// its record; every message stanch posts goes through it. It checks, posts
// and records, with the intent recorded before the post, which is safer
// after a crash than looking only at what was recorded:
//   - a message already recorded is not posted again (Recorded);
//   - without a record, the intent is recorded, then the message posted;
//   - an intent without a message means an attempt died between its post
//     and its record: that attempt's message is looked for by its metadata
//     in o.Message's channel (and thread) since the intent, and recorded
//     when found (Found) instead of posted again;
//   - a posted message is recorded with its digest (Posted).
//
// A Recorded or Found message shows what it showed when it was posted:
// updating it is the caller's, who knows whether it should.
func (c *Client) PostOnce(ctx context.Context, records Records, o Once) (Record, Posting, error) {
	rec, ok, err := records.Record(ctx, o.Key)
	if err != nil {
		return Record{}, 0, err
	}
	switch {
	case ok && rec.TS != "":
		return rec, Recorded, nil
	case ok:
		channel, ts, err := c.Find(ctx, o.Message.Channel, o.Message.ThreadTS, o.RunID, o.Key, rec.IntentAt)
		if err != nil {
			return Record{}, 0, err
		}
		if ts != "" {
			found := Record{Key: o.Key, Channel: channel, TS: ts, IntentAt: rec.IntentAt}
			return found, Found, records.Save(ctx, found)
		}
	default:
		rec = Record{Key: o.Key, Channel: o.Message.Channel}
		if err := records.Save(ctx, rec); err != nil {
			return Record{}, 0, err
		}
	}
	channel, ts, err := c.Post(ctx, o.RunID, o.Key, o.Message)
	if err != nil {
		return Record{}, 0, err
	}
	crashpoint.Hit(o.CrashPoint)
	posted := Record{Key: o.Key, Channel: channel, TS: ts, Digest: Digest(o.Message), IntentAt: rec.IntentAt}
	return posted, Posted, records.Save(ctx, posted)
}

// Digest identifies what m shows.
func Digest(m Message) string {
	sum := sha256.Sum256([]byte(m.Text + "\x00" + BlocksJSON(m)))
	return hex.EncodeToString(sum[:12])
}
