// Package apicall records the API calls stanch's actions make to providers
// (AWS, GitHub, Slack, Vault, GitLab, npm, Azure): which service and
// operation, in which account and region, the provider's request id, the
// outcome and when. Never a parameter, a header or a body: those can hold
// secrets. The runner puts a Recorder in the context an action runs with;
// the AWS SDK's middleware (AWS) and an HTTP transport (Transport) hand it
// every call made with that context, so an action records nothing itself.
package apicall

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Call is one request to a provider, and how it ended.
type Call struct {
	Service   string // "iam", "sts", "github", "slack", …
	Operation string // "UpdateAccessKey", "POST /credentials/revoke", "auth.revoke"
	Account   string // the AWS account (or other tenant) acted in, when known
	Region    string
	RequestID string // the provider's id of the request, for its support and its logs
	Outcome   string // OK or Failed
	// Error is the provider's error code or the HTTP status ("AccessDenied",
	// "HTTP 404"), or why no answer came; never a message that could quote
	// a parameter.
	Error    string
	At       time.Time
	Duration time.Duration
}

// Outcomes of a call.
const (
	OK     = "ok"
	Failed = "failed"
)

// Recorder receives each call as it ends. It must be safe for concurrent
// use: an action may make calls from several goroutines.
type Recorder func(Call)

type recorderKey struct{}

// WithRecorder returns ctx carrying rec: calls made with it are recorded.
func WithRecorder(ctx context.Context, rec Recorder) context.Context {
	return context.WithValue(ctx, recorderKey{}, rec)
}

type gateKey struct{}

// WithGate returns ctx whose calls are sent only while gate returns nil:
// checked right before each request leaves, by AWS and HTTP clients alike,
// so that a process that lost the right to act (a replica whose lease
// lapsed while it was paused) stops before its next call, not after.
func WithGate(ctx context.Context, gate func() error) context.Context {
	return context.WithValue(ctx, gateKey{}, gate)
}

// ErrGateClosed wraps a gate's refusal: the request was not sent.
var ErrGateClosed = errors.New("request not sent")

// open says whether ctx's gate lets a request leave.
func open(ctx context.Context) error {
	gate, ok := ctx.Value(gateKey{}).(func() error)
	if !ok || gate == nil {
		return nil
	}
	if err := gate(); err != nil {
		return fmt.Errorf("%w: %w", ErrGateClosed, err)
	}
	return nil
}

// Record hands calls made elsewhere (a request made once for many steps)
// to the recorder ctx carries, if any.
func Record(ctx context.Context, calls ...Call) {
	for _, c := range calls {
		record(ctx, c)
	}
}

// record hands c to the recorder ctx carries, if any.
func record(ctx context.Context, c Call) {
	if rec, ok := ctx.Value(recorderKey{}).(Recorder); ok && rec != nil {
		rec(c)
	}
}
