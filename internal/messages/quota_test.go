package messages_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/messages"
)

func TestList_QuotaExhaustedIsRetryError429WithoutCallingGmail(t *testing.T) {
	const quota = 100 // units per minute: a list (5) and four gets (4×20)
	for _, concurrency := range []int{1, 10} {
		t.Run(fmt.Sprintf("concurrency %d", concurrency), func(t *testing.T) {
			fg, srv := newFakeGmail(t, 10)
			sl := newSleeper() // the clock stands still unless the client sleeps
			c := testClient(srv, sl, func(o *messages.Options) {
				o.QuotaPerMinute = quota
				o.MetadataConcurrency = concurrency
			})

			_, err := c.List(context.Background(), srv.Client(), "u", messages.Query{Metadata: true})
			var rerr *messages.RetryError
			if !errors.As(err, &rerr) || rerr.Status != http.StatusTooManyRequests || !errors.Is(err, messages.ErrQuotaExceeded) {
				t.Fatalf("err = %v, want RetryError 429 ErrQuotaExceeded", err)
			}
			// After the list (5 units) the bucket holds 95; the ten gets need
			// 200, so 105 units short: 63 s at 100 units a minute. The
			// request is refused before any get rather than half way, with
			// the wait the whole request needs.
			if rerr.RetryAfter < 62*time.Second || rerr.RetryAfter > 64*time.Second {
				t.Errorf("RetryAfter = %v, want the 63 s the quota needs for the whole request", rerr.RetryAfter)
			}
			srv.Close() // wait for requests the client gave up on
			if fg.spent() > quota {
				t.Errorf("Gmail was charged %d units, over the quota of %d", fg.spent(), quota)
			}
			if fg.gets.Load() != 0 {
				t.Errorf("gets = %d, want none for a request the quota cannot pay for", fg.gets.Load())
			}
		})
	}
}

func TestList_QuotaIsPerUser(t *testing.T) {
	fg, srv := newFakeGmail(t, 10)
	c := testClient(srv, newSleeper(), func(o *messages.Options) {
		o.QuotaPerMinute = 100
		o.MetadataConcurrency = 1
	})
	q := messages.Query{Metadata: true, MaxResults: 4} // 85 units
	if _, err := c.List(context.Background(), srv.Client(), "u", q); err != nil {
		t.Fatal(err)
	}
	var rerr *messages.RetryError
	if _, err := c.List(context.Background(), srv.Client(), "u", q); !errors.As(err, &rerr) {
		t.Errorf("same user again: err = %v, want RetryError", err)
	}
	before := fg.gets.Load()
	if _, err := c.List(context.Background(), srv.Client(), "other", q); err != nil {
		t.Errorf("another user: %v", err)
	}
	if got := fg.gets.Load() - before; got != 4 {
		t.Errorf("another user: gets = %d, want 4", got)
	}
}

func TestList_QuotaWaitsWithinTheBudget(t *testing.T) {
	const quota = 100
	fg, srv := newFakeGmail(t, 10)
	sl := newSleeper()
	c := testClient(srv, sl, func(o *messages.Options) {
		o.QuotaPerMinute = quota
		o.RetryBudget = 2 * time.Minute
		o.MetadataConcurrency = 1 // so that the clock moves in order
	})
	page, err := c.List(context.Background(), srv.Client(), "u", messages.Query{Metadata: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) != 10 || fg.gets.Load() != 10 {
		t.Fatalf("got %d messages after %d gets, want 10", len(page.Messages), fg.gets.Load())
	}
	// 205 units at 100 a minute with a burst of 100: 105 units of waiting,
	// 63 s, on the fake clock.
	var waited time.Duration
	for _, w := range sl.Waits() {
		waited += w
	}
	if want := 63 * time.Second; waited < want-time.Second || waited > want+time.Second {
		t.Errorf("waited %v for the quota, want about %v", waited, want)
	}
}

func TestList_QuotaDisabled(t *testing.T) {
	fg, srv := newFakeGmail(t, 10)
	sl := newSleeper()
	c := testClient(srv, sl, func(o *messages.Options) { o.QuotaPerMinute = -1 })
	for range 3 {
		if _, err := c.List(context.Background(), srv.Client(), "u", messages.Query{Metadata: true}); err != nil {
			t.Fatal(err)
		}
	}
	if fg.spent() != 3*(5+10*20) || len(sl.Waits()) != 0 {
		t.Errorf("units = %d, waits = %v", fg.spent(), sl.Waits())
	}
}
