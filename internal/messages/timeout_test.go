package messages_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/messages"
)

// TestList_GmailNotAnswering_EachCallTimesOutAndTheBudgetHoldsTheCalls:
// a Gmail that accepts calls and never answers, the list or the batch of
// gets for format=metadata, costs each call AttemptTimeout, and the time
// of those calls counts against the budget; a call is retried only while
// the budget holds the backoff and another whole call, so List fails with a
// 503 *RetryError within the budget. On the real clock: the first call
// takes 300 ms and leaves 500 ms, which holds a backoff of 10 to 20 ms and
// a second call; that one leaves under 200 ms, which holds no third.
func TestList_GmailNotAnswering_EachCallTimesOutAndTheBudgetHoldsTheCalls(t *testing.T) {
	const (
		attempt = 300 * time.Millisecond
		budget  = 800 * time.Millisecond
		margin  = time.Second // a busy machine
	)
	tests := []struct {
		name  string
		q     messages.Query
		hangs string // the path prefix that does not answer
	}{
		{"list", messages.Query{}, "/gmail/"},
		{"metadata batch", messages.Query{Metadata: true}, "/batch/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !strings.HasPrefix(r.URL.Path, tt.hangs) {
					io.WriteString(w, `{"messages":[{"id":"m1","threadId":"t1"}],"resultSizeEstimate":1}`)
					return
				}
				calls.Add(1)
				io.Copy(io.Discard, r.Body) // then the server notices the client leave
				<-r.Context().Done()
			}))
			t.Cleanup(srv.Close)
			c := messages.New(messages.Options{Endpoint: srv.URL + "/", RetryBase: 20 * time.Millisecond,
				RetryBudget: budget, AttemptTimeout: attempt, QuotaPerMinute: -1})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			begin := time.Now()
			_, err := c.List(ctx, srv.Client(), "u", tt.q)
			took := time.Since(begin)
			var rerr *messages.RetryError
			if !errors.As(err, &rerr) || rerr.Status != http.StatusServiceUnavailable || rerr.RetryAfter <= 0 {
				t.Fatalf("List: %v after %v, want a 503 *RetryError", err, took)
			}
			if n := calls.Load(); n != 2 || took > budget+margin {
				t.Errorf("%d calls in %v, want 2 within the budget %v", n, took, budget)
			}
		})
	}
}
