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
