package messages_test

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/messages"
)

func TestList_Metadata_OnlyFailedPartsSentAgain(t *testing.T) {
	fg, srv := newFakeGmail(t, 10)
	sl := newSleeper()
	c := testClient(srv, sl, func(o *messages.Options) { o.RetryBudget = 10 * time.Second })
	// The first three parts of the first batch fail, each differently.
	fg.inject(fault{status: 429, reason: "rateLimitExceeded", retryAfter: "2", on: onGet}, 1)
	fg.inject(fault{status: 503, reason: "backendError", on: onGet}, 1)
	fg.inject(fault{status: 403, reason: "userRateLimitExceeded", on: onGet}, 1)
	page, err := c.List(context.Background(), srv.Client(), "u", messages.Query{Metadata: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range page.Messages {
		if m.Metadata == nil || m.Subject == "" {
			t.Errorf("message %s has no metadata", m.ID)
		}
	}
	want := [][]string{{id(0), id(1), id(2), id(3), id(4), id(5), id(6), id(7), id(8), id(9)}, {id(0), id(1), id(2)}}
	if got := fg.batched(); !reflect.DeepEqual(got, want) {
		t.Errorf("batches %v, want %v", got, want)
	}
	if w := sl.Waits(); len(w) != 1 || w[0] != 2*time.Second {
		t.Errorf("waits %v, want one of the 2 s Gmail asked for", w)
	}
}

func TestList_Metadata_PartsRetriedWithinTheBudget(t *testing.T) {
	tests := []struct {
		name       string
		fault      fault
		wantStatus int
	}{
		{name: "429", fault: fault{status: 429, reason: "rateLimitExceeded", on: onGet}, wantStatus: 429},
		{name: "500", fault: fault{status: 500, reason: "backendError", on: onGet}, wantStatus: 503},
		{name: "whole batch 503", fault: fault{status: 503, reason: "backendError", on: onBatch}, wantStatus: 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fg, srv := newFakeGmail(t, 2)
			fg.inject(tt.fault, 1000)
			sl := newSleeper()
			const budget = 50 * time.Millisecond
			c := testClient(srv, sl, func(o *messages.Options) { o.RetryBudget = budget })
			_, err := c.List(context.Background(), srv.Client(), "u", messages.Query{Metadata: true})
			var rerr *messages.RetryError
			if !errors.As(err, &rerr) || rerr.Status != tt.wantStatus || rerr.RetryAfter <= 0 {
				t.Fatalf("err = %v, want RetryError %d", err, tt.wantStatus)
			}
			var waited time.Duration
			for _, w := range sl.Waits() {
				waited += w
			}
			if waited > budget || len(sl.Waits()) < 2 {
				t.Errorf("waited %v in %d waits, want several within the budget %v", waited, len(sl.Waits()), budget)
			}
			if b := fg.batches.Load(); b != int64(len(sl.Waits())+1) {
				t.Errorf("%d batches after %d waits, want one more", b, len(sl.Waits()))
			}
		})
	}
}

func TestList_Metadata_ErrorsNotRetried(t *testing.T) {
	tests := []struct {
		name  string
		fault fault
		is    error
	}{
		{name: "part 403 insufficientPermissions", fault: fault{status: 403, reason: "insufficientPermissions", on: onGet}, is: messages.ErrInsufficientScope},
		{name: "part 400", fault: fault{status: 400, reason: "invalidArgument", on: onGet}, is: messages.ErrBadRequest},
		{name: "batch 400", fault: fault{status: 400, reason: "invalidArgument", on: onBatch}, is: messages.ErrBadRequest},
		// The transport has refreshed and tried again already.
		{name: "batch 401", fault: fault{status: 401, reason: "authError", on: onBatch}, is: messages.ErrUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fg, srv := newFakeGmail(t, 3)
			fg.inject(tt.fault, 1)
			sl := newSleeper()
			hc := &http.Client{Transport: &bearer{next: srv.Client().Transport, token: "tok"}}
			_, err := testClient(srv, sl, nil).List(context.Background(), hc, "u", messages.Query{Metadata: true})
			if !errors.Is(err, tt.is) {
				t.Errorf("err = %v, want %v", err, tt.is)
			}
			if b := fg.batches.Load(); b != 1 || len(sl.Waits()) != 0 {
				t.Errorf("%d batches, waits %v; want 1 and none", b, sl.Waits())
			}
		})
	}
}

func TestList_Metadata_RefusedTokenRefreshedOnce(t *testing.T) {
	refreshFailed := errors.New("refresh failed")
	tests := []struct {
		name          string
		refused       int   // parts answering 401, from the first
		noRefresher   bool  // a transport without RefreshToken
		refreshErr    error // what RefreshToken returns
		wantErr       error
		wantBatches   int64
		wantRefreshes int
	}{
		{name: "refreshed, then served", refused: 3, wantBatches: 2, wantRefreshes: 1},
		{name: "one part refused: it alone again", refused: 1, wantBatches: 2, wantRefreshes: 1},
		{name: "refused again: unauthorized", refused: 6, wantErr: messages.ErrUnauthorized, wantBatches: 2, wantRefreshes: 1},
		{name: "no refresher: unauthorized", refused: 3, noRefresher: true, wantErr: messages.ErrUnauthorized, wantBatches: 1},
		{name: "refresh fails", refused: 3, refreshErr: refreshFailed, wantErr: refreshFailed, wantBatches: 1, wantRefreshes: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fg, srv := newFakeGmail(t, 3)
			fg.inject(fault{status: 401, reason: "authError", on: onGet}, tt.refused)
			sl := newSleeper()
			tr := &bearer{next: srv.Client().Transport, token: "tok", fail: tt.refreshErr}
			hc := &http.Client{Transport: tr}
			if tt.noRefresher {
				hc = srv.Client()
			}
			page, err := testClient(srv, sl, nil).List(context.Background(), hc, "u", messages.Query{Metadata: true})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if b := fg.batches.Load(); b != tt.wantBatches || tr.refreshes != tt.wantRefreshes || len(sl.Waits()) != 0 {
				t.Errorf("%d batches, %d refreshes, waits %v; want %d, %d, none", b, tr.refreshes, sl.Waits(), tt.wantBatches, tt.wantRefreshes)
			}
			if err != nil {
				return
			}
			if got := fg.batched()[1]; len(got) != tt.refused {
				t.Errorf("sent again %v, want the %d refused", got, tt.refused)
			}
			if fg.batchAuth[1] != "Bearer tok+" {
				t.Errorf("sent again with %q, want the new token", fg.batchAuth[1])
			}
			for _, m := range page.Messages {
				if m.Metadata == nil || m.Subject == "" {
					t.Errorf("message %s has no metadata", m.ID)
				}
			}
		})
	}
}
