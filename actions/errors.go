package actions

import (
	"errors"
	"fmt"
)

// ErrorKind says how the runner treats an action's error.
type ErrorKind int

const (
	// KindRetryable errors (throttling, 5xx, timeouts) are retried with
	// backoff and jitter, within the step's retry policy.
	KindRetryable ErrorKind = iota + 1
	// KindPermanent errors (access denied, not found, bad input) fail the
	// step at once with the action's message.
	KindPermanent
)

func (k ErrorKind) String() string {
	switch k {
	case KindRetryable:
		return "retryable"
	case KindPermanent:
		return "permanent"
	default:
		return "unknown"
	}
}

// Error is an action error that says what kind it is.
type Error struct {
	Kind ErrorKind
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Retryable marks err as worth retrying.
func Retryable(err error) error {
	if err == nil {
		return nil
	}
	return &Error{Kind: KindRetryable, Err: err}
}

// Permanent marks err as not worth retrying.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &Error{Kind: KindPermanent, Err: err}
}

// Permanentf formats a permanent error.
func Permanentf(format string, args ...any) error {
	return Permanent(fmt.Errorf(format, args...))
}

// KindOf returns the kind of err. Errors that say nothing are treated as
// retryable: an unexpected failure is more often transient than not, and
// the step's retry policy bounds the attempts.
func KindOf(err error) ErrorKind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindRetryable
}

// APIError is what a provider's API answered when one of its calls failed,
// for metrics: the provider, its service and the error code, never
// anything of the request. Actions attach it where they sort their errors
// (WithAPIError); the runner reads it back (APIErrorOf).
type APIError struct {
	// Provider is aws, slack or github.
	Provider string
	// Service is the provider's API: iam, sts, cloudtrail,
	// secrets_manager (AWS), web (Slack's Web API), rest (GitHub's).
	Service string
	// Code is the provider's own error code (AccessDenied, Throttling,
	// channel_not_found), else http_<status>, or timeout or network when
	// no answer came.
	Code string
}

// apiError carries an APIError beside the error it describes, without
// changing that error's text.
type apiError struct {
	err error
	api APIError
}

func (e *apiError) Error() string { return e.err.Error() }
func (e *apiError) Unwrap() error { return e.err }

// WithAPIError attaches what the provider answered to err.
func WithAPIError(err error, api APIError) error {
	if err == nil {
		return nil
	}
	return &apiError{err: err, api: api}
}

// APIErrorOf returns what the provider answered for err, when an action
// said.
func APIErrorOf(err error) (APIError, bool) {
	var e *apiError
	if errors.As(err, &e) {
		return e.api, true
	}
	return APIError{}, false
}
