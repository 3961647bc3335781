package runner

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/stanchhq/stanch/alert"
)

// An alert that arrived but started no run (a GitHub alert GitHub will not
// show stanch, an AWS secret whose key id cannot be found, a resolution
// that failed its last attempt, a queue message with nothing readable in
// it) must not end as one log line: it is kept in stanch_unacted, logged
// at ERROR, listed by `stanch alerts list`, counted under `stanch runs
// list`, and posted once to Slack when Slack is configured.

// Unacted is an alert that started no run, with why.
type Unacted struct {
	DedupKey string
	// Source is where it came from: github, sqs, …
	Source string
	// Reference names it at its source, such as acme/api#7.
	Reference string
	// Reason says why stanch could not act on it and what to fix; it is
	// redacted before it is stored.
	Reason  string
	FirstAt time.Time
	LastAt  time.Time
	// Count is how many times it arrived and could not be acted on.
	Count int
	// Channel and TS are the Slack message that showed it, once posted.
	Channel, TS string
	// noticeAt is when a post was about to be made (the intent).
	noticeAt time.Time
}

// UnactedPoster shows an alert that started no run to people (Slack).
type UnactedPoster interface {
	// Post shows u once, even across crashes. notice holds the record of
	// its message, under u.DedupKey: Post keeps in it the intent to post
	// before it posts, and the message once posted, and finds the message
	// of an attempt that died in between instead of posting again.
	Post(ctx context.Context, u Unacted, notice Messages) error
}

const unactedColumns = `dedup_key, source, reference, reason, first_at, last_at, occurrences, notice_channel, notice_ts, notice_at`

// RecordUnacted keeps u, or counts one more occurrence of it (with its
// latest reason). Its text is redacted here, whoever calls.
func (s *Store) RecordUnacted(ctx context.Context, u Unacted) error {
	at := micros(s.now())
	return s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := s.exec(ctx, tx, `INSERT INTO stanch_unacted (dedup_key, source, reference, reason, first_at, last_at, occurrences) VALUES (?, ?, ?, ?, ?, ?, 1)
			ON CONFLICT (dedup_key) DO UPDATE SET reason = excluded.reason, last_at = excluded.last_at, occurrences = stanch_unacted.occurrences + 1`,
			alert.RedactText(u.DedupKey), alert.RedactText(u.Source), alert.RedactText(u.Reference), alert.RedactText(u.Reason), at, at)
		if err != nil {
			return fmt.Errorf("record unacted alert %s: %w", u.DedupKey, err)
		}
		return nil
	})
}

// Unacted returns the record of one alert, or ErrNotFound.
func (s *Store) Unacted(ctx context.Context, dedupKey string) (Unacted, error) {
	u, err := scanUnacted(s.db.SQL.QueryRowContext(ctx, s.db.rebind(`SELECT `+unactedColumns+` FROM stanch_unacted WHERE dedup_key = ?`), dedupKey))
	if errors.Is(err, sql.ErrNoRows) {
		return Unacted{}, fmt.Errorf("unacted alert %s: %w", dedupKey, ErrNotFound)
	}
	return u, err
}

// ListUnacted returns every alert that started no run, latest first.
func (s *Store) ListUnacted(ctx context.Context) ([]Unacted, error) {
	rows, err := s.db.SQL.QueryContext(ctx, `SELECT `+unactedColumns+` FROM stanch_unacted ORDER BY last_at DESC, dedup_key`)
	if err != nil {
		return nil, fmt.Errorf("list unacted alerts: %w", err)
	}
	defer rows.Close()
	var out []Unacted
	for rows.Next() {
		u, err := scanUnacted(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// CountUnacted returns how many alerts started no run.
func (s *Store) CountUnacted(ctx context.Context) (int, error) {
	var n int
	if err := s.db.SQL.QueryRowContext(ctx, `SELECT COUNT(*) FROM stanch_unacted`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count unacted alerts: %w", err)
	}
	return n, nil
}

// ForgetUnacted drops the record of an alert that was acted on after all
// (its webhook redelivered once the token was fixed).
func (s *Store) ForgetUnacted(ctx context.Context, dedupKey string) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := s.exec(ctx, tx, `DELETE FROM stanch_unacted WHERE dedup_key = ?`, dedupKey); err != nil {
			return fmt.Errorf("forget unacted alert %s: %w", dedupKey, err)
		}
		return nil
	})
}

func (s *Store) unactedNotice(ctx context.Context, dedupKey, channel, ts string, at time.Time) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := s.exec(ctx, tx, `UPDATE stanch_unacted SET notice_channel = ?, notice_ts = ?, notice_at = ? WHERE dedup_key = ?`, channel, ts, micros(at), dedupKey); err != nil {
			return fmt.Errorf("record the message of unacted alert %s: %w", dedupKey, err)
		}
		return nil
	})
}

type rowScanner interface{ Scan(dest ...any) error }

func scanUnacted(row rowScanner) (Unacted, error) {
	var u Unacted
	var first, last, notice int64
	if err := row.Scan(&u.DedupKey, &u.Source, &u.Reference, &u.Reason, &first, &last, &u.Count, &u.Channel, &u.TS, &notice); err != nil {
		return Unacted{}, err
	}
	u.FirstAt, u.LastAt, u.noticeAt = fromMicros(first), fromMicros(last), fromMicros(notice)
	return u, nil
}

// recordUnacted keeps an alert that started no run, logs it at ERROR and,
// when something shows such alerts to people, schedules that once per
// alert (on the notify queue, so a slow chat service never holds the
// worker that recorded it).
func (r *Runner) recordUnacted(ctx context.Context, u Unacted) error {
	u.DedupKey, u.Source, u.Reference, u.Reason = alert.RedactText(u.DedupKey), alert.RedactText(u.Source), alert.RedactText(u.Reference), alert.RedactText(u.Reason)
	if err := r.store.RecordUnacted(ctx, u); err != nil {
		return err
	}
	r.log.Error("alert cannot be acted on; it started no run", "source", u.Source, "dedup_key", u.DedupKey, "reference", u.Reference, "reason", u.Reason)
	r.emit(Event{Kind: EventAlertUnacted, Source: u.Source})
	if r.cfg.UnactedPoster == nil {
		return nil
	}
	if _, err := r.client.Insert(ctx, UnactedNoticeArgs{DedupKey: u.DedupKey}, nil); err != nil {
		return fmt.Errorf("schedule the message of unacted alert %s: %w", u.DedupKey, err)
	}
	return nil
}

// RecordUnacted keeps what a trigger received but could not act on (an SQS
// message with nothing readable in it).
func (d *Dispatcher) RecordUnacted(ctx context.Context, source, dedupKey, reference, reason string) error {
	return d.Runner.recordUnacted(ctx, Unacted{Source: source, DedupKey: dedupKey, Reference: reference, Reason: reason})
}

// UnactedNoticeArgs is the job that shows one alert that started no run to
// people. It is inserted once per alert, ever.
type UnactedNoticeArgs struct {
	DedupKey string `json:"dedup_key" river:"unique"`
}

// Kind is the job kind stored by River.
func (UnactedNoticeArgs) Kind() string { return "stanch.unacted_notice" }

// InsertOpts keeps one message per alert.
func (UnactedNoticeArgs) InsertOpts() river.InsertOpts { return onceEver(QueueNotify) }

type unactedNoticeWorker struct {
	river.WorkerDefaults[UnactedNoticeArgs]
	r *Runner
}

func addUnactedWorker(workers *river.Workers, r *Runner) error {
	if err := river.AddWorkerSafely(workers, &unactedNoticeWorker{r: r}); err != nil {
		return fmt.Errorf("register unacted notice worker: %w", err)
	}
	return nil
}

// Work has the poster show the alert, handing it the record of the
// alert's message.
func (w *unactedNoticeWorker) Work(ctx context.Context, job *river.Job[UnactedNoticeArgs]) error {
	poster := w.r.cfg.UnactedPoster
	if poster == nil {
		return nil
	}
	u, err := w.r.store.Unacted(ctx, job.Args.DedupKey)
	if errors.Is(err, ErrNotFound) {
		return nil // acted on since
	}
	if err != nil {
		return err
	}
	if err := poster.Post(ctx, u, &unactedNotice{r: w.r, u: u}); err != nil {
		return w.failed(job, err)
	}
	return nil
}

// unactedNotice is the record of the one message about an unacted alert,
// kept in the alert's row.
type unactedNotice struct {
	r *Runner
	u Unacted
}

func (n *unactedNotice) Message(_ context.Context, key string) (Message, error) {
	if key != n.u.DedupKey || (n.u.TS == "" && n.u.noticeAt.IsZero()) {
		return Message{}, fmt.Errorf("message of unacted alert %s: %w", key, ErrNotFound)
	}
	return Message{Key: key, Channel: n.u.Channel, TS: n.u.TS, PostedAt: n.u.noticeAt}, nil
}

func (n *unactedNotice) SaveMessage(ctx context.Context, m Message) error {
	if m.Key != n.u.DedupKey {
		return fmt.Errorf("record message %s as that of unacted alert %s: not its key", m.Key, n.u.DedupKey)
	}
	if n.u.noticeAt.IsZero() {
		n.u.noticeAt = n.r.cfg.Now()
	}
	channel := m.Channel
	if m.TS == "" {
		// The alert shows a channel only once it has a message there.
		channel = ""
	}
	if err := n.r.store.unactedNotice(ctx, n.u.DedupKey, channel, m.TS, n.u.noticeAt); err != nil {
		return err
	}
	n.u.Channel, n.u.TS = channel, m.TS
	return nil
}

func (w *unactedNoticeWorker) failed(job *river.Job[UnactedNoticeArgs], err error) error {
	var later RetryAfter
	if errors.As(err, &later) {
		return river.JobSnooze(max(later.RetryAfter(), time.Second))
	}
	w.r.log.Warn("message about an unacted alert not posted; retrying", "dedup_key", job.Args.DedupKey, "attempt", job.Attempt, "error", err)
	return err
}
