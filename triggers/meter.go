package triggers

import "net/http"

// Meter counts what the endpoints do with requests (stanch serve's
// metrics). It is told the endpoint (eventbridge, sns, github, slack, sqs)
// and one of the results below, once per request or SQS message, never
// anything the request holds; it must not block.
type Meter interface {
	Request(endpoint, result string)
}

// Results a Meter is told.
const (
	// ResultAccepted: the request was taken: its alerts stored (or, for
	// GitHub, the alert recorded to be fetched), a click handled, an SNS
	// subscription confirmed.
	ResultAccepted = "accepted"
	// ResultIgnored: authenticated, with nothing in it stanch acts on (a
	// ping, another kind of event).
	ResultIgnored = "ignored"
	// ResultDuplicate: a GitHub delivery already handled.
	ResultDuplicate = "duplicate"
	// ResultUnauthenticated: refused at authentication (a missing or
	// wrong secret or signature, a topic not configured, a replayed Slack
	// request).
	ResultUnauthenticated = "unauthenticated"
	// ResultRateLimited: refused because its source spent its budget.
	ResultRateLimited = "rate_limited"
	// ResultMalformed: refused as unreadable, too large, not a POST, or
	// with nothing in it that stanch can act on as sent.
	ResultMalformed = "malformed"
	// ResultUnavailable: answered 503 because the store (or SNS, for a
	// subscription) did not answer; the sender retries.
	ResultUnavailable = "unavailable"
)

// countIn makes the guard tell m what became of each request.
func (g *guard) countIn(m Meter) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.meter = m
}

// count tells the meter, if any, what became of a request.
func (g *guard) count(result string) {
	g.mu.Lock()
	m := g.meter
	g.mu.Unlock()
	if m != nil {
		m.Request(g.source, result)
	}
}

// refusal is the result of a request refused with status.
func refusal(status int) string {
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden:
		return ResultUnauthenticated
	case http.StatusTooManyRequests:
		return ResultRateLimited
	case http.StatusServiceUnavailable:
		return ResultUnavailable
	}
	return ResultMalformed
}

// CountIn makes the endpoint tell m what became of each request.
func (h *EventBridge) CountIn(m Meter) { h.guard.countIn(m) }

// CountIn makes the endpoint tell m what became of each request.
func (h *GitHub) CountIn(m Meter) { h.guard.countIn(m) }

// CountIn makes the endpoint tell m what became of each request.
func (h *SNS) CountIn(m Meter) { h.guard.countIn(m) }

// CountIn makes the endpoint tell m what became of each request.
func (h *SlackInteractions) CountIn(m Meter) { h.guard.countIn(m) }
