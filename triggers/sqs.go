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
// durably stored; one that can never be read (a poison message) is logged,
// counted and deleted, so it is not received forever.
type SQSPoller struct {
	Client   *sqs.Client
	QueueURL string
	Sink     Sink
	Log      *slog.Logger
	Now      func() time.Time

	received, accepted, poison atomic.Int64
}

// Stats are the poller's counters.
type Stats struct{ Received, Accepted, Poison int64 }

// Stats returns the counters so far.
func (p *SQSPoller) Stats() Stats {
	return Stats{Received: p.received.Load(), Accepted: p.accepted.Load(), Poison: p.poison.Load()}
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
			p.handle(ctx, aws.ToString(m.Body), aws.ToString(m.ReceiptHandle))
		}
		// An endpoint that answers a long poll at once (the sandbox, some
		// emulators) must not turn this loop into a busy one.
		if len(out.Messages) == 0 && time.Since(start) < time.Second {
			sleep(ctx, 250*time.Millisecond)
		}
	}
}

func (p *SQSPoller) handle(ctx context.Context, body, receipt string) {
	p.received.Add(1)
	alerts, err := ParseEventBridge([]byte(unwrapSNS(body)), p.Now())
	if err != nil {
		p.poison.Add(1)
		p.Log.Error("poison SQS message deleted", "queue", p.QueueURL, "reason", err.Error())
		p.delete(ctx, receipt)
		return
	}
	for _, a := range alerts {
		if err := p.Sink.Accept(ctx, a); err != nil {
			// Not stored: leave the message, SQS redelivers it after its
			// visibility timeout.
			p.Log.Error("alert not stored; the message will be received again", "queue", p.QueueURL, "dedup_key", a.DedupKey, "error", err)
			return
		}
	}
	p.accepted.Add(int64(len(alerts)))
	p.delete(ctx, receipt)
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
