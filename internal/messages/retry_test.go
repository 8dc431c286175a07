package messages_test

import (
	"cmp"
	"context"
	"errors"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/messages"
)

func TestList_RetriesThenSucceeds(t *testing.T) {
	tests := []struct {
		name     string
		fault    fault
		metadata bool // inject the faults into the gets
	}{
		{name: "429", fault: fault{status: 429, reason: "rateLimitExceeded"}},
		{name: "403 rateLimitExceeded", fault: fault{status: 403, reason: "rateLimitExceeded"}},
		{name: "403 userRateLimitExceeded", fault: fault{status: 403, reason: "userRateLimitExceeded"}},
		{name: "500", fault: fault{status: 500, reason: "backendError"}},
		{name: "502", fault: fault{status: 502}},
		{name: "503", fault: fault{status: 503, reason: "backendError"}},
		{name: "504", fault: fault{status: 504}},
		{name: "429 on get", fault: fault{status: 429, reason: "rateLimitExceeded", on: onGet}, metadata: true},
		{name: "403 userRateLimitExceeded on get", fault: fault{status: 403, reason: "userRateLimitExceeded", on: onGet}, metadata: true},
		{name: "503 on get", fault: fault{status: 503, reason: "backendError", on: onGet}, metadata: true},
	}
	const faults = 3
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fg, srv := newFakeGmail(t, 5)
			sl := newSleeper()
			c := testClient(srv, sl, nil)
			q := messages.Query{}
			if tt.metadata {
				q.Metadata = true
			}
			fg.inject(tt.fault, faults)
			page, err := c.List(context.Background(), srv.Client(), "u", q)
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			if len(page.Messages) != 5 {
				t.Errorf("got %d messages, want 5", len(page.Messages))
			}
			if !tt.metadata {
				if calls := fg.lists.Load(); calls != faults+1 {
					t.Errorf("calls = %d, want %d", calls, faults+1)
				}
				if got := len(sl.Waits()); got != faults {
					t.Errorf("waits = %d, want %d", got, faults)
				}
				return
			}
			// The first three parts of the batch fail; they alone go in
			// a second batch, after one wait.
			if b, g := fg.batches.Load(), fg.gets.Load(); b != 2 || g != faults+5 {
				t.Errorf("%d batches of %d gets in all, want 2 of %d", b, g, faults+5)
			}
			if got, want := fg.batched(), [][]string{{id(0), id(1), id(2), id(3), id(4)}, {id(0), id(1), id(2)}}; !reflect.DeepEqual(got, want) {
				t.Errorf("batches %v, want %v", got, want)
			}
			if got := len(sl.Waits()); got != 1 {
				t.Errorf("waits = %d, want 1", got)
			}
		})
	}
}

func TestList_BacksOffExponentially(t *testing.T) {
	fg, srv := newFakeGmail(t, 1)
	sl := newSleeper()
	c := testClient(srv, sl, nil)
	fg.inject(fault{status: 503}, 4)
	if _, err := c.List(context.Background(), srv.Client(), "u", messages.Query{}); err != nil {
		t.Fatal(err)
	}
	waits := sl.Waits()
	if len(waits) != 4 {
		t.Fatalf("waits = %v, want 4", waits)
	}
	for i, w := range waits {
		base := time.Millisecond << i
		if w < base/2 || w > base {
			t.Errorf("wait %d = %v, want in [%v, %v] (equal jitter on %v)", i, w, base/2, base, base)
		}
	}
}

func TestList_HonoursRetryAfter(t *testing.T) {
	sl := newSleeper()
	date := sl.Now().Add(3 * time.Second).Format(http.TimeFormat)
	tests := []struct {
		name    string
		fault   fault
		atLeast time.Duration
		atMost  time.Duration
	}{
		{name: "seconds", fault: fault{status: 429, reason: "rateLimitExceeded", retryAfter: "2"}, atLeast: 2 * time.Second, atMost: 2 * time.Second},
		{name: "HTTP date", fault: fault{status: 503, retryAfter: date}, atLeast: 3 * time.Second, atMost: 3 * time.Second},
		{name: "403 userRateLimitExceeded", fault: fault{status: 403, reason: "userRateLimitExceeded", retryAfter: "1"}, atLeast: time.Second, atMost: time.Second},
		{name: "unreadable: backoff", fault: fault{status: 429, retryAfter: "soon"}, atLeast: 500 * time.Microsecond, atMost: time.Millisecond},
		{name: "past date: backoff", fault: fault{status: 429, retryAfter: "Mon, 02 Jan 2006 15:04:05 GMT"}, atLeast: 500 * time.Microsecond, atMost: time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fg, srv := newFakeGmail(t, 1)
			sl := newSleeper()
			c := testClient(srv, sl, func(o *messages.Options) { o.RetryBudget = 10 * time.Second })
			fg.inject(tt.fault, 1)
			if _, err := c.List(context.Background(), srv.Client(), "u", messages.Query{}); err != nil {
				t.Fatal(err)
			}
			waits := sl.Waits()
			if len(waits) != 1 || waits[0] < tt.atLeast || waits[0] > tt.atMost {
				t.Errorf("waits = %v, want one in [%v, %v]", waits, tt.atLeast, tt.atMost)
			}
		})
	}
}

func TestList_RetryBudgetExhausted(t *testing.T) {
	tests := []struct {
		name       string
		fault      fault
		budget     time.Duration
		deadline   time.Duration // context deadline, if any
		wantStatus int
		wantAfter  time.Duration // exact RetryAfter, if not zero
		wantCalls  int64         // exact calls, if not zero
	}{
		{name: "429", fault: fault{status: 429, reason: "rateLimitExceeded"}, wantStatus: 429},
		{name: "403 rateLimitExceeded", fault: fault{status: 403, reason: "rateLimitExceeded"}, wantStatus: 429},
		{name: "403 userRateLimitExceeded", fault: fault{status: 403, reason: "userRateLimitExceeded"}, wantStatus: 429},
		{name: "500", fault: fault{status: 500}, wantStatus: 503},
		{name: "503", fault: fault{status: 503}, wantStatus: 503},
		{name: "Retry-After beyond the budget: no wait",
			fault: fault{status: 429, retryAfter: "30"}, budget: time.Second,
			wantStatus: 429, wantAfter: 30 * time.Second, wantCalls: 1},
		{name: "Retry-After beyond the context deadline: no wait",
			fault: fault{status: 503, retryAfter: "120"}, budget: time.Hour, deadline: time.Minute,
			wantStatus: 503, wantAfter: 120 * time.Second, wantCalls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fg, srv := newFakeGmail(t, 1)
			fg.alwaysFail = &tt.fault
			sl := newSleeper()
			budget := cmp.Or(tt.budget, 50*time.Millisecond)
			c := testClient(srv, sl, func(o *messages.Options) { o.RetryBudget = budget })
			ctx := context.Background()
			if tt.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.deadline)
				defer cancel()
			}
			_, err := c.List(ctx, srv.Client(), "u", messages.Query{})
			var rerr *messages.RetryError
			if !errors.As(err, &rerr) {
				t.Fatalf("err = %v, want a *RetryError", err)
			}
			if rerr.Status != tt.wantStatus {
				t.Errorf("Status = %d, want %d", rerr.Status, tt.wantStatus)
			}
			if rerr.RetryAfter <= 0 || tt.wantAfter != 0 && rerr.RetryAfter != tt.wantAfter {
				t.Errorf("RetryAfter = %v, want > 0 (exactly %v if set)", rerr.RetryAfter, tt.wantAfter)
			}
			var waited time.Duration
			for _, w := range sl.Waits() {
				waited += w
			}
			if waited > budget {
				t.Errorf("waited %v in all, over the budget %v", waited, budget)
			}
			calls := fg.lists.Load()
			if calls != int64(len(sl.Waits())+1) || tt.wantCalls != 0 && calls != tt.wantCalls {
				t.Errorf("calls = %d after %d waits (want %d if set)", calls, len(sl.Waits()), tt.wantCalls)
			}
		})
	}
}

func TestList_ErrorsNotRetried(t *testing.T) {
	tests := []struct {
		name    string
		fault   fault
		is      error
		message string // BadRequestError.Message
	}{
		{name: "403 insufficientPermissions", fault: fault{status: 403, reason: "insufficientPermissions"}, is: messages.ErrInsufficientScope},
		{name: "401", fault: fault{status: 401, reason: "authError"}, is: messages.ErrUnauthorized},
		{name: "400", fault: fault{status: 400, reason: "invalidArgument"}, is: messages.ErrBadRequest, message: "Bad Request"},
		{name: "404 on list", fault: fault{status: 404, reason: "notFound"}, is: messages.ErrBadRequest, message: "Not Found"},
		{name: "other 403", fault: fault{status: 403, reason: "domainPolicy"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fg, srv := newFakeGmail(t, 1)
			fg.inject(tt.fault, 1)
			sl := newSleeper()
			c := testClient(srv, sl, nil)
			_, err := c.List(context.Background(), srv.Client(), "u", messages.Query{})
			if err == nil {
				t.Fatal("no error")
			}
			if fg.lists.Load() != 1 || len(sl.Waits()) != 0 {
				t.Errorf("calls = %d, waits = %v: want 1 call, no wait", fg.lists.Load(), sl.Waits())
			}
			var rerr *messages.RetryError
			if errors.As(err, &rerr) {
				t.Errorf("err = %v, want no *RetryError", err)
			}
			for _, sentinel := range []error{messages.ErrInsufficientScope, messages.ErrUnauthorized, messages.ErrBadRequest} {
				if got := errors.Is(err, sentinel); got != (sentinel == tt.is) {
					t.Errorf("errors.Is(err, %v) = %v; err = %v", sentinel, got, err)
				}
			}
			var berr *messages.BadRequestError
			if errors.As(err, &berr) != (tt.message != "") || berr != nil && berr.Message != tt.message {
				t.Errorf("err = %#v, want BadRequestError with message %q", err, tt.message)
			}
		})
	}
}

func TestList_InvalidPageTokenIsBadRequestWithGooglesMessage(t *testing.T) {
	_, srv := newFakeGmail(t, 10)
	c := testClient(srv, newSleeper(), nil)
	_, err := c.List(context.Background(), srv.Client(), "u", messages.Query{PageToken: "nonsense"})
	var berr *messages.BadRequestError
	if !errors.As(err, &berr) || berr.Message != "Invalid pageToken" {
		t.Fatalf("err = %v, want BadRequestError \"Invalid pageToken\"", err)
	}
}

// flakyTransport fails its first n requests with err.
type flakyTransport struct {
	n     atomic.Int64
	err   error
	calls atomic.Int64
	next  http.RoundTripper
}

func (f *flakyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	f.calls.Add(1)
	if f.n.Add(-1) >= 0 {
		return nil, f.err
	}
	return f.next.RoundTrip(r)
}

func TestList_NetworkErrors(t *testing.T) {
	reset := &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	tests := []struct {
		name      string
		err       error
		failures  int64
		wantRetry bool
	}{
		{name: "connection reset: retried", err: reset, failures: 2, wantRetry: true},
		{name: "connection refused: retried", err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, failures: 2, wantRetry: true},
		{name: "timeout: retried", err: &net.DNSError{Err: "timeout", IsTimeout: true}, failures: 1, wantRetry: true},
		{name: "no such host: not retried", err: &net.DNSError{Err: "no such host", IsNotFound: true}, failures: 1},
		{name: "other failure: not retried", err: errors.New("oauth2: token expired and refresh token is not set"), failures: 1},
		{name: "down for good: RetryError 503", err: reset, failures: 1 << 20, wantRetry: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, srv := newFakeGmail(t, 3)
			ft := &flakyTransport{err: tt.err, next: srv.Client().Transport}
			ft.n.Store(tt.failures)
			sl := newSleeper()
			c := testClient(srv, sl, nil)
			page, err := c.List(context.Background(), &http.Client{Transport: ft}, "u", messages.Query{Q: "secret subject"})
			switch {
			case !tt.wantRetry:
				if err == nil || ft.calls.Load() != 1 || !errors.Is(err, tt.err) {
					t.Errorf("err = %v after %d calls, want %v after 1", err, ft.calls.Load(), tt.err)
				}
			case tt.failures > 100:
				var rerr *messages.RetryError
				if !errors.As(err, &rerr) || rerr.Status != 503 || rerr.RetryAfter <= 0 {
					t.Errorf("err = %v, want RetryError 503", err)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("error %q shows the request's query", err)
				}
			default:
				if err != nil || len(page.Messages) != 3 || ft.calls.Load() != tt.failures+1 {
					t.Errorf("err = %v after %d calls, want success after %d", err, ft.calls.Load(), tt.failures+1)
				}
			}
		})
	}
}

func TestList_ContextCanceled(t *testing.T) {
	fg, srv := newFakeGmail(t, 3)
	fg.alwaysFail = &fault{status: 503}
	ctx, cancel := context.WithCancel(context.Background())
	c := testClient(srv, newSleeper(), func(o *messages.Options) {
		o.Sleep = func(context.Context, time.Duration) error { cancel(); return context.Canceled }
	})
	_, err := c.List(ctx, srv.Client(), "u", messages.Query{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	var rerr *messages.RetryError
	if errors.As(err, &rerr) {
		t.Errorf("err = %v, want no RetryError", err)
	}
}
