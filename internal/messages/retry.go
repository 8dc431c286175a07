package messages

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/googleapis/gax-go/v2/apierror"
	"golang.org/x/time/rate"
	"google.golang.org/api/googleapi"
)

// maxBackoff caps one backoff, as Google's guidance does.
const maxBackoff = 32 * time.Second

// budget is the waiting time left to one List call.
type budget struct {
	mu   sync.Mutex
	left time.Duration
}

// take reserves d of the budget, or reports false if d is more than is
// left or would pass ctx's deadline.
func (b *budget) take(ctx context.Context, d time.Duration) bool {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if d > b.left {
		return false
	}
	b.left -= d
	return true
}

// spend counts d, the time a failed call took, against the budget, even
// past what is left.
func (b *budget) spend(d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.left -= d
}

// fits reports whether d is within what is left of the budget and ctx's
// deadline, without taking it.
func (b *budget) fits(ctx context.Context, d time.Duration) bool {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return d <= b.left
}

// affordable refuses at once, with the wait the quota really needs, a
// batch of calls costing cost that the user's quota cannot pay for within
// the budget, instead of spending part of it and failing half way.
func (r *run) affordable(ctx context.Context, cost int) error {
	if r.c.quota == nil {
		return nil
	}
	if wait := r.c.quota.wait(r.user, cost, r.c.now()); wait > 0 && !r.budget.fits(ctx, wait) {
		return &RetryError{Status: http.StatusTooManyRequests, RetryAfter: wait, Err: ErrQuotaExceeded}
	}
	return nil
}

// do calls call, waiting for the user's quota first, and retries it on rate
// limits, 5xx and transient network errors with exponential backoff while
// the budget and ctx allow. method names the call in errors.
func (r *run) do(ctx context.Context, method string, cost int, call func() error) error {
	for attempt := 0; ; attempt++ {
		if err := r.charge(ctx, cost, 1); err != nil {
			return err
		}
		start := r.c.now()
		err := call()
		if err == nil {
			return nil
		}
		err = redactURL(err)
		if ctxErr := ctx.Err(); ctxErr != nil {
			return fmt.Errorf("messages: gmail %s: %w", method, ctxErr)
		}
		now := r.c.now()
		status, asked, retry := retryable(err, now)
		if !retry {
			return classify(method, err)
		}
		wait := max(asked, r.c.backoff(attempt))
		if !r.retryFits(ctx, now.Sub(start), wait) {
			return &RetryError{Status: status, RetryAfter: wait, Err: fmt.Errorf("gmail %s: %w", method, err)}
		}
		if err := r.c.sleep(ctx, wait); err != nil {
			return fmt.Errorf("messages: waiting to retry gmail %s: %w", method, err)
		}
	}
}

// retryFits counts took, the time of calls that failed, against the
// budget, and takes wait from it if it holds the wait and, after calls that
// ran out of time (they may well do so again), another whole call. It
// reports false, having taken nothing, when it does not.
func (r *run) retryFits(ctx context.Context, took, wait time.Duration) bool {
	r.budget.spend(took)
	need := wait
	if took >= r.c.attempt {
		need += r.c.attempt
	}
	return r.budget.fits(ctx, need) && r.budget.take(ctx, wait)
}

// charge waits until the user's quota has n calls of cost units each for
// this instance. The calls are reserved one by one, as they would be if
// made one by one: a batch of n parts costs what n calls cost, and may cost
// more than the quota holds at once.
func (r *run) charge(ctx context.Context, cost, n int) error {
	q := r.c.quota
	if q == nil {
		return nil
	}
	now := r.c.now()
	reserved := make([]*rate.Reservation, 0, n)
	cancel := func(at time.Time) {
		for _, res := range slices.Backward(reserved) {
			res.CancelAt(at)
		}
	}
	var wait time.Duration
	for range n {
		res := q.reserve(r.user, cost, now)
		if !res.OK() {
			// cost is more than a whole minute's quota: it never fits.
			cancel(now)
			return &RetryError{Status: http.StatusTooManyRequests, RetryAfter: time.Minute, Err: ErrQuotaExceeded}
		}
		reserved = append(reserved, res)
		wait = max(wait, res.DelayFrom(now))
	}
	if wait <= 0 {
		return nil
	}
	if !r.budget.take(ctx, wait) {
		cancel(now)
		return &RetryError{Status: http.StatusTooManyRequests, RetryAfter: wait, Err: ErrQuotaExceeded}
	}
	if err := r.c.sleep(ctx, wait); err != nil {
		cancel(r.c.now())
		return fmt.Errorf("messages: waiting for the Gmail quota: %w", err)
	}
	return nil
}

// backoff is the wait before retry number attempt+1: RetryBase doubled
// attempt times, capped, with equal jitter (half fixed, half random).
func (c *Client) backoff(attempt int) time.Duration {
	d := maxBackoff
	if attempt < 30 {
		d = min(maxBackoff, c.retryBase<<attempt)
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// retryable reports whether err is worth retrying, with the status a
// caller answers when retries run out and the wait Google asked for.
func retryable(err error, now time.Time) (status int, retryAfter time.Duration, ok bool) {
	var gerr *googleapi.Error
	if !errors.As(err, &gerr) {
		return http.StatusServiceUnavailable, 0, transient(err)
	}
	switch gerr.Code {
	case http.StatusTooManyRequests:
		return http.StatusTooManyRequests, parseRetryAfter(gerr.Header, now), true
	case http.StatusForbidden:
		if hasReason(err, gerr, "rateLimitExceeded", "userRateLimitExceeded", "RATE_LIMIT_EXCEEDED") {
			return http.StatusTooManyRequests, parseRetryAfter(gerr.Header, now), true
		}
	case http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return http.StatusServiceUnavailable, parseRetryAfter(gerr.Header, now), true
	}
	return 0, 0, false
}

// classify maps a failure that is not retried to the package's errors.
func classify(method string, err error) error {
	var gerr *googleapi.Error
	if errors.As(err, &gerr) {
		switch {
		case gerr.Code == http.StatusUnauthorized:
			return fmt.Errorf("%w: %s: %w", ErrUnauthorized, method, err)
		case gerr.Code == http.StatusForbidden &&
			(hasReason(err, gerr, "insufficientPermissions", "ACCESS_TOKEN_SCOPE_INSUFFICIENT") ||
				strings.Contains(gerr.Header.Get("WWW-Authenticate"), "insufficient_scope")):
			return fmt.Errorf("%w: %s: %w", ErrInsufficientScope, method, err)
		case gerr.Code == http.StatusBadRequest, gerr.Code == http.StatusNotFound:
			msg := gerr.Message
			if msg == "" {
				msg = http.StatusText(gerr.Code)
			}
			return &BadRequestError{Message: msg, Err: fmt.Errorf("gmail %s: %w", method, err)}
		}
	}
	return fmt.Errorf("messages: gmail %s: %w", method, err)
}

// hasReason reports whether one of Google's error reasons, in the legacy
// errors list or in the ErrorInfo detail, is among reasons.
func hasReason(err error, gerr *googleapi.Error, reasons ...string) bool {
	for _, e := range gerr.Errors {
		for _, r := range reasons {
			if e.Reason == r {
				return true
			}
		}
	}
	var aerr *apierror.APIError
	if errors.As(err, &aerr) {
		for _, r := range reasons {
			if aerr.Reason() == r {
				return true
			}
		}
	}
	return false
}

// parseRetryAfter reads a Retry-After header: delay seconds or an HTTP
// date. It returns 0 when there is none or it cannot be read.
func parseRetryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		const most = int64(24 * time.Hour / time.Second)
		return time.Duration(max(0, min(secs, most))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), 24*time.Hour)
	}
	return 0
}

// transient reports whether a failure to get an answer from Gmail is
// worth retrying: a timeout, or a connection refused, reset or cut short.
func transient(err error) bool {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return dnsErr.IsTimeout || dnsErr.IsTemporary
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return true
	}
	var opErr *net.OpError
	switch {
	case errors.As(err, &opErr),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, io.EOF),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, syscall.EPIPE):
		return true
	}
	return false
}

// redactURL drops the query from the URL of a transport error, so that no
// request parameter ends up in an error string or a log line.
func redactURL(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		if u, perr := url.Parse(uerr.URL); perr == nil {
			u.User, u.RawQuery, u.Fragment = nil, "", ""
			uerr.URL = u.String()
		}
	}
	return err
}
