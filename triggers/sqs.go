package triggers

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// SQSPoller long-polls an SQS queue that an EventBridge rule (or an SNS
// subscription) feeds. A message is deleted only after its alerts are
// durably stored; events in it that cannot be acted on are logged with the
// reason; one in which nothing can be read (a poison message) is logged,
// counted, recorded where the sink keeps such things, and deleted, so it
// is not received forever.
type SQSPoller struct {
	Client   *sqs.Client
	QueueURL string
	Sink     Sink
	Log      *slog.Logger
	Now      func() time.Time
	// Meter, when set, is told what became of each message (endpoint
	// sqs; see Meter).
	Meter Meter

	received, accepted, ignored, poison atomic.Int64
}

// Stats are the poller's counters: messages received, alerts accepted,
// events ignored (read but not acted on) and poison messages.
type Stats struct{ Received, Accepted, Ignored, Poison int64 }

// Stats returns the counters so far.
func (p *SQSPoller) Stats() Stats {
	return Stats{Received: p.received.Load(), Accepted: p.accepted.Load(), Ignored: p.ignored.Load(), Poison: p.poison.Load()}
}

// Run polls until ctx ends.
func (p *SQSPoller) Run(ctx context.Context) {
	if p.Log == nil {
		p.Log = slog.New(slog.DiscardHandler)
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	for ctx.Err() == nil {
		start := time.Now()
		out, err := p.Client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:            aws.String(p.QueueURL),
			MaxNumberOfMessages: 10,
			WaitTimeSeconds:     20,
		})
		if err != nil {
			if ctx.Err() == nil {
				p.Log.Warn("SQS receive failed; retrying", "queue", p.QueueURL, "error", err)
				sleep(ctx, 2*time.Second)
			}
			continue
		}
		for _, m := range out.Messages {
			p.handle(ctx, aws.ToString(m.MessageId), aws.ToString(m.Body), aws.ToString(m.ReceiptHandle))
		}
		// An endpoint that answers a long poll at once (the sandbox, some
		// emulators) must not turn this loop into a busy one.
		if len(out.Messages) == 0 && time.Since(start) < time.Second {
			sleep(ctx, 250*time.Millisecond)
		}
	}
}

func (p *SQSPoller) handle(ctx context.Context, id, body, receipt string) {
	p.received.Add(1)
	rep, err := ParseEventBridge([]byte(unwrapSNS(body)), p.Now())
	if err != nil {
		p.poison.Add(1)
		p.Log.Error("poison SQS message deleted", "queue", p.QueueURL, "message", id, "reason", err.Error())
		if rec, ok := p.Sink.(UnactedRecorder); ok {
			// Kept where people look, not only in this log: the sender
			// is never told.
			if err := rec.RecordUnacted(ctx, "sqs", "sqs:"+p.QueueURL+":"+id, p.QueueURL+" message "+id, "no EventBridge event in it: "+err.Error()); err != nil {
				p.Log.Error("poison SQS message not recorded; it will be received again", "queue", p.QueueURL, "message", id, "error", err)
				p.count(ResultUnavailable)
				return
			}
		}
		p.count(ResultMalformed)
		p.delete(ctx, receipt)
		return
	}
	for _, a := range rep.Alerts {
		if err := p.Sink.Accept(ctx, a); err != nil {
			// Not stored: leave the message, SQS redelivers it after its
			// visibility timeout.
			p.Log.Error("alert not stored; the message will be received again", "queue", p.QueueURL, "dedup_key", a.DedupKey, "error", err)
			p.count(ResultUnavailable)
			return
		}
	}
	for _, s := range rep.Skipped {
		p.Log.Warn("event ignored", "queue", p.QueueURL, "message", id, "event", s.Where, "reason", s.Reason)
		rec, ok := p.Sink.(UnactedRecorder)
		if !s.Refused || !ok {
			continue
		}
		// An event stanch should act on but cannot as sent (a finding whose
		// key id field holds no one key id): nobody else is told, so it is
		// kept where people look.
		if err := rec.RecordUnacted(ctx, "sqs", "sqs:"+p.QueueURL+":"+id+":"+s.Where, p.QueueURL+" message "+id+", "+s.Where, s.Reason); err != nil {
			p.Log.Error("refused event not recorded; the message will be received again", "queue", p.QueueURL, "message", id, "error", err)
			p.count(ResultUnavailable)
			return
		}
	}
	p.accepted.Add(int64(len(rep.Alerts)))
	p.ignored.Add(int64(len(rep.Skipped)))
	switch {
	case len(rep.Alerts) > 0:
		p.count(ResultAccepted)
	case rep.refusedOnly():
		p.count(ResultMalformed)
	default:
		p.count(ResultIgnored)
	}
	p.delete(ctx, receipt)
}

func (p *SQSPoller) count(result string) {
	if p.Meter != nil {
		p.Meter.Request("sqs", result)
	}
}

// UnactedRecorder is implemented by sinks that durably keep what arrived
// but could not be acted on, so that it is shown where people look.
type UnactedRecorder interface {
	RecordUnacted(ctx context.Context, source, dedupKey, reference, reason string) error
}

func (p *SQSPoller) delete(ctx context.Context, receipt string) {
	if _, err := p.Client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(p.QueueURL), ReceiptHandle: aws.String(receipt)}); err != nil {
		// Redelivered later and deduplicated by the store.
		p.Log.Warn("SQS delete failed", "queue", p.QueueURL, "error", err)
	}
}

// unwrapSNS returns the EventBridge event inside an SNS notification that
// an SQS subscription delivered raw-message-delivery off, or body itself.
// No SNS signature is checked here: what reaches the queue was already
// authorised by IAM (the queue policy names who may send).
func unwrapSNS(body string) string {
	var n struct {
		Type    string `json:"Type"`
		Message string `json:"Message"`
	}
	if json.Unmarshal([]byte(body), &n) == nil && n.Type == "Notification" && n.Message != "" {
		return n.Message
	}
	return body
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
