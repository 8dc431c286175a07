package messages

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Errors List returns, to be checked with errors.Is.
var (
	// ErrUnauthorized means Gmail answered 401 even after the transport's
	// own refresh and retry: the user must authorize again.
	ErrUnauthorized = errors.New("messages: gmail: unauthorized")
	// ErrInsufficientScope means Gmail answered 403 insufficientPermissions:
	// the token was not granted the Gmail scope.
	ErrInsufficientScope = errors.New("messages: gmail: insufficient scope")
	// ErrBadRequest means Gmail rejected the request's parameters (400, or
	// 404 on list). The error is a *BadRequestError with Google's message.
	ErrBadRequest = errors.New("messages: gmail: bad request")
	// ErrQuotaExceeded is the Err of a *RetryError when this instance's
	// share of the user's quota would be exceeded.
	ErrQuotaExceeded = errors.New("messages: per-user Gmail quota of this instance exhausted")
)

// BadRequestError is Gmail's rejection of the request's parameters, such as
// an invalid pageToken or q. It matches ErrBadRequest.
type BadRequestError struct {
	// Message is Google's message, suitable for the caller's 400 answer.
	Message string
	// Err is Gmail's error.
	Err error
}

// Error returns Google's message with this package's prefix.
func (e *BadRequestError) Error() string { return "messages: gmail: bad request: " + e.Message }

// Unwrap returns Gmail's error.
func (e *BadRequestError) Unwrap() error { return e.Err }

// Is reports whether target is ErrBadRequest.
func (e *BadRequestError) Is(target error) bool { return target == ErrBadRequest }

// RetryError means Gmail stayed rate limited or unavailable for as long as
// the retry budget and the context allowed, or that this instance's share of
// the user's quota would have been exceeded.
type RetryError struct {
	// Status is the status for the caller to answer with:
	// http.StatusTooManyRequests for rate limits and quota,
	// http.StatusServiceUnavailable for 5xx and network failures.
	Status int
	// RetryAfter is how long to wait before trying again: the wait Google
	// asked for, the next backoff, or the wait the quota needs. Round it up
	// to whole seconds for a Retry-After header.
	RetryAfter time.Duration
	// Err is the last failure.
	Err error
}

// Error describes the failure and the wait; it carries no token.
func (e *RetryError) Error() string {
	what := "gmail unavailable"
	if e.Status == http.StatusTooManyRequests {
		what = "gmail rate limited"
	}
	return fmt.Sprintf("messages: %s, retry after %v: %v", what, e.RetryAfter, e.Err)
}

// Unwrap returns the last failure.
func (e *RetryError) Unwrap() error { return e.Err }
