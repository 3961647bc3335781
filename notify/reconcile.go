package notify

import (
	"context"
	"errors"

	"github.com/stanchhq/stanch/slack"
)

// reconcile is the second stage of a sync: it brings Slack in step with
// the wanted messages, in order. A message that exists is updated when
// what it should show changed; any other is posted once (slack.PostOnce)
// and, when an earlier sync had posted it, updated likewise. One message's
// failure does not hold back the others.
func (s *Slack) reconcile(ctx context.Context, runID string, recs slack.Records, want []wanted) error {
	var errs []error
	for _, w := range want {
		if err := s.reconcileOne(ctx, runID, recs, w); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *Slack) reconcileOne(ctx context.Context, runID string, recs slack.Records, w wanted) error {
	rec := slack.Record{Key: w.Key, Channel: w.Message.Channel, TS: w.TS}
	if w.TS == "" {
		var how slack.Posting
		var err error
		rec, how, err = s.client.PostOnce(ctx, recs, slack.Once{RunID: runID, Key: w.Key, Message: w.Message, CrashPoint: "slack:sync-posted"})
		if err != nil {
			return err
		}
		switch how {
		case slack.Posted:
			return nil
		case slack.Found:
			s.log.Info("found a message an interrupted sync posted", "run", runID, "key", w.Key, "ts", rec.TS)
		}
	}
	return s.update(ctx, recs, rec, w.Message)
}

// update sends m to a message stanch knows was posted, unless it already
// shows exactly that.
func (s *Slack) update(ctx context.Context, recs slack.Records, rec slack.Record, m slack.Message) error {
	d := slack.Digest(m)
	if known, ok, err := recs.Record(ctx, rec.Key); err == nil && ok && known.TS == rec.TS && known.Digest == d {
		return nil
	}
	if err := s.client.Update(ctx, rec.Channel, rec.TS, m); err != nil {
		return err
	}
	rec.Digest = d
	return recs.Save(ctx, rec)
}
