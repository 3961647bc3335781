package github

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/apicall"
)

// GitHub's credential revocation API (POST /credentials/revoke) takes at
// most 1,000 credentials a request and 60 unauthenticated requests an hour
// per address. Tokens leaked together (a mass exposure: 200 alerts at once)
// must share requests, so every revocation of a process goes through one
// batcher per endpoint: it collects tokens until none has arrived for
// batchQuiet, batchMax after the first, or maxBatch of them, sends them in
// one request, and hands each caller the request's answer. When the
// budget is spent (the rate-limit headers say so) no request is sent: the
// callers get a *BudgetError carrying the reset time.
const (
	maxBatch   = 1000
	batchQuiet = 250 * time.Millisecond
	batchMax   = 2 * time.Second
	// revokeTimeout bounds one revocation request, whichever caller's
	// context ends first.
	revokeTimeout = 30 * time.Second
)

// BudgetError says that the hour's budget of revocation requests is spent
// until Reset. It is retryable; RetryAfter says how long to wait.
type BudgetError struct {
	Reset time.Time
	// Limit is the hourly budget GitHub announced (60 on github.com).
	Limit int
}

func (e *BudgetError) Error() string {
	return fmt.Sprintf("GitHub's credential revocation budget (%d requests an hour) is spent until %s: the revocation waits until then rather than failing", e.Limit, e.Reset.UTC().Format(time.RFC3339))
}

// RetryAfter is how long until the budget is renewed.
func (e *BudgetError) RetryAfter() time.Duration { return max(time.Until(e.Reset), time.Second) }

// RetryAt is when the budget is renewed.
func (e *BudgetError) RetryAt() time.Time { return e.Reset }

// revoker is the batcher of one revocation endpoint.
type revoker struct {
	endpoint string
	client   *http.Client
	now      func() time.Time

	mu      sync.Mutex
	pending []*revocation
	first   time.Time
	due     time.Time // when the pending batch is sent
	// byFingerprint are the revocations queued by steps, until a step
	// collects the answer (queue, queued).
	byFingerprint map[string]*revocation
	timer         *time.Timer
	// budget, from the last answer's rate-limit headers: remaining < 0
	// when unknown.
	remaining int
	limit     int
	reset     time.Time
	// requests counts the requests sent, for reports and benchmarks.
	requests int
}

// revocation is one caller's token waiting for its batch's answer.
type revocation struct {
	token string
	id    identity // what the queuing step found with GET /user
	done  chan struct{}
	err   error
	batch int // how many tokens its request carried
	// calls are the API calls the request made, for the record of every
	// step it carried (apicall): each step records them when it collects
	// the answer.
	calls []apicall.Call
}

var revokers = struct {
	sync.Mutex
	m map[string]*revoker
}{m: map[string]*revoker{}}

// revokerFor returns the process's batcher for endpoint.
func revokerFor(endpoint string, transport http.RoundTripper) *revoker {
	revokers.Lock()
	defer revokers.Unlock()
	if r, ok := revokers.m[endpoint]; ok {
		return r
	}
	if transport == nil {
		transport = http.DefaultTransport
	}
	r := &revoker{endpoint: endpoint, client: &http.Client{Transport: apicall.Transport("github", transport)}, now: time.Now, remaining: -1, limit: 60}
	revokers.m[endpoint] = r
	return r
}

// RevocationRequests returns how many revocation requests this process
// has sent to the GitHub at apiURL (empty: github.com).
func RevocationRequests(apiURL string) int {
	revokers.Lock()
	r, ok := revokers.m[revokeEndpoint(apiURL)]
	revokers.Unlock()
	if !ok {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests
}

// revokeEndpoint is POST /credentials/revoke under the REST API base.
func revokeEndpoint(apiURL string) string {
	if apiURL == "" {
		return "https://api.github.com/credentials/revoke"
	}
	if apiURL[len(apiURL)-1] != '/' {
		apiURL += "/"
	}
	return apiURL + "credentials/revoke"
}

// spent returns the budget error when no request may be sent now; the
// caller holds mu.
func (r *revoker) spent() *BudgetError {
	if r.remaining == 0 && r.now().Before(r.reset) {
		return &BudgetError{Reset: r.reset, Limit: r.limit}
	}
	return nil
}

// The steps that revoke do not wait for their batch's answer holding a
// worker: with 20 containment workers a batch would never carry more than
// 20 tokens. A step queues its token (queue) and is sent away until the
// batch is due (a *BatchWait, which the runner honours without using an
// attempt); its next attempt collects the answer (queued).

// queue hands token to the next request, remembering what the step found
// before (id), and returns when the request is due; a token already
// queued keeps its place.
func (r *revoker) queue(fp, token string, id identity) (due time.Time, err *BudgetError) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.spent(); e != nil {
		return time.Time{}, e
	}
	if _, ok := r.byFingerprint[fp]; !ok {
		rv := &revocation{token: token, id: id, done: make(chan struct{})}
		if r.byFingerprint == nil {
			r.byFingerprint = map[string]*revocation{}
		}
		r.byFingerprint[fp] = rv
		r.add(rv)
	}
	return r.due, nil
}

// queued returns the revocation this process queued for fp, if any; once
// it is answered it is forgotten, and the caller reports its answer.
func (r *revoker) queued(fp string) (*revocation, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rv, ok := r.byFingerprint[fp]
	if !ok {
		return nil, false
	}
	select {
	case <-rv.done:
		delete(r.byFingerprint, fp)
	default:
	}
	return rv, true
}

// add puts rv in the pending batch and arms its timer; the caller holds
// mu.
func (r *revoker) add(rv *revocation) {
	r.pending = append(r.pending, rv)
	now := r.now()
	switch {
	case len(r.pending) >= maxBatch:
		r.flushLocked()
		r.due = now
	case len(r.pending) == 1:
		r.first = now
		r.due = now.Add(batchQuiet)
		r.timer = time.AfterFunc(batchQuiet, r.tick)
	default:
		// Another token came: wait a little longer for more, up to
		// batchMax after the first.
		wait := min(batchQuiet, max(r.first.Add(batchMax).Sub(now), 0))
		r.due = now.Add(wait)
		r.timer.Reset(wait)
	}
}

// dueTime is when the pending batch is sent.
func (r *revoker) dueTime() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.due
}

// BatchWait sends a step away until the revocation request that carries
// its token has been answered. It is not a failure.
type BatchWait struct {
	Due time.Time
}

func (e *BatchWait) Error() string {
	return "queued for GitHub's next credential revocation request, which carries every token leaked meanwhile (due " + e.Due.UTC().Format(time.RFC3339Nano) + ")"
}

// RetryAfter is a moment after the request is due.
func (e *BatchWait) RetryAfter() time.Duration {
	return max(time.Until(e.Due)+100*time.Millisecond, 50*time.Millisecond)
}

func (r *revoker) tick() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.flushLocked()
}

// flushLocked hands the pending tokens to a request of their own; the
// caller holds mu.
func (r *revoker) flushLocked() {
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
	batch := r.pending
	r.pending = nil
	if len(batch) == 0 {
		return
	}
	if e := r.spent(); e != nil {
		finish(batch, e, nil)
		return
	}
	r.requests++
	go r.send(batch)
}

func finish(batch []*revocation, err error, calls []apicall.Call) {
	for _, rv := range batch {
		rv.err, rv.batch, rv.calls = err, len(batch), calls
		close(rv.done)
	}
}

// send makes one revocation request for batch and hands every caller its
// answer.
func (r *revoker) send(batch []*revocation) {
	ctx, cancel := context.WithTimeout(context.Background(), revokeTimeout)
	defer cancel()
	var mu sync.Mutex
	var calls []apicall.Call
	ctx = apicall.WithRecorder(ctx, func(c apicall.Call) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, c)
	})
	err := r.post(ctx, batch)
	mu.Lock()
	defer mu.Unlock()
	finish(batch, err, calls)
}

func (r *revoker) post(ctx context.Context, batch []*revocation) error {
	body := struct {
		Credentials []string `json:"credentials"`
	}{Credentials: make([]string, len(batch))}
	for i, rv := range batch {
		body.Credentials[i] = rv.token
	}
	data, err := json.Marshal(body)
	if err != nil {
		return actions.Permanent(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.endpoint, bytes.NewReader(data))
	if err != nil {
		return actions.Permanent(fmt.Errorf("POST %s: %w", r.endpoint, err))
	}
	// Unauthenticated, as github.com requires: an authenticated request is
	// refused with 403.
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	req.Header.Set("User-Agent", "stanch")
	res, err := r.client.Do(req)
	if err != nil {
		// The URL holds no token; the error is the transport's.
		return actions.Retryable(actions.WithAPIError(fmt.Errorf("POST %s: %w", r.endpoint, err), actions.APIError{Provider: "github", Service: "rest", Code: "network"}))
	}
	defer res.Body.Close()
	msg := readMessage(res.Body)
	r.mu.Lock()
	r.account(res)
	budget := r.spent()
	r.mu.Unlock()
	api := actions.APIError{Provider: "github", Service: "rest", Code: fmt.Sprintf("http_%d", res.StatusCode)}
	fail := fmt.Errorf("POST %s (%d credentials): %d %s", r.endpoint, len(batch), res.StatusCode, msg)
	switch code := res.StatusCode; {
	case code >= 200 && code <= 299:
		return nil
	case (code == http.StatusForbidden || code == http.StatusTooManyRequests) && budget != nil:
		api.Code = "rate_limited"
		return actions.Retryable(actions.WithAPIError(budget, api))
	case code == http.StatusTooManyRequests || code >= 500:
		return actions.Retryable(actions.WithAPIError(fail, api))
	case code == http.StatusUnprocessableEntity && len(batch) > 1:
		// GitHub does not say which credential it refused: another
		// token of the batch may be the cause, and a retry sends this one
		// in another batch.
		return actions.Retryable(actions.WithAPIError(fail, api))
	case code == http.StatusForbidden:
		return actions.Permanent(actions.WithAPIError(fmt.Errorf("%w (on github.com the endpoint must be called unauthenticated; GitHub Enterprise Server offers it from 3.18 only)", fail), api))
	case code == http.StatusNotFound:
		return actions.Permanent(actions.WithAPIError(fmt.Errorf("%w (this GitHub has no credential revocation API: GitHub Enterprise Server offers it from 3.18)", fail), api))
	default:
		return actions.Permanent(actions.WithAPIError(fail, api))
	}
}

// account reads the budget from the rate-limit headers; the caller holds
// mu.
func (r *revoker) account(res *http.Response) {
	h := res.Header
	if v, err := strconv.Atoi(h.Get("X-RateLimit-Limit")); err == nil && v > 0 {
		r.limit = v
	}
	if v, err := strconv.Atoi(h.Get("X-RateLimit-Remaining")); err == nil {
		r.remaining = v
		if reset, err := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64); err == nil {
			r.reset = time.Unix(reset, 0)
		} else if r.reset.Before(r.now()) {
			r.reset = r.now().Add(time.Hour)
		}
	}
	if res.StatusCode == http.StatusTooManyRequests || res.StatusCode == http.StatusForbidden {
		if secs, err := strconv.Atoi(h.Get("Retry-After")); err == nil {
			r.remaining, r.reset = 0, r.now().Add(time.Duration(secs)*time.Second)
		}
	}
}

// readMessage returns GitHub's message from an error body (never the
// request's).
func readMessage(body io.Reader) string {
	data, _ := io.ReadAll(io.LimitReader(body, 64<<10))
	var e struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(data, &e) == nil && e.Message != "" {
		return e.Message
	}
	return ""
}
