package app

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/fakegoogle"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/tokenstore/localstore"
)

// googleCalls counts every request the fake Google received, and each
// call in a batch request.
func googleCalls(h *harness) int {
	n := 0
	for _, c := range h.fake.Counts() {
		n += c
	}
	return n
}

// TestRoundTrips asserts the round-trip budget of each operation: requests
// to Google and operations on the store are deterministic, so they are
// counted exactly.
func TestRoundTrips(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(h *harness)
		run       func(h *harness)
		google    map[string]int
		wantStore localstore.Ops
	}{
		{
			name:      "Authorize",
			run:       func(h *harness) { h.authorize("login_hint=" + demo) },
			google:    map[string]int{},
			wantStore: localstore.Ops{},
		},
		{
			name: "Callback with a refresh token",
			setup: func(h *harness) {
				h.pending = h.consent(h.authorize(""), demo, true, true)
			},
			run:    func(h *harness) { wantStatus(h.t, h.callback(h.pending), http.StatusOK) },
			google: map[string]int{fakegoogle.CountTokenCode: 1},
			// The read: the success page it redirects to checks that the
			// new session names a record that accepts it.
			wantStore: localstore.Ops{Transactions: 1, Writes: 1, Reads: 1},
		},
		{
			name: "Callback, Gmail unticked: the grant is revoked, nothing stored",
			setup: func(h *harness) {
				h.pending = h.consent(h.authorize(""), demo, true, false)
			},
			run:       func(h *harness) { wantStatus(h.t, h.callback(h.pending), http.StatusForbidden) },
			google:    map[string]int{fakegoogle.CountTokenCode: 1, fakegoogle.CountRevoke: 1},
			wantStore: localstore.Ops{},
		},
		{
			name:      "ListMessages, one page, access token valid",
			setup:     func(h *harness) { wantStatus(h.t, h.login(demo), http.StatusOK) },
			run:       func(h *harness) { wantStatus(h.t, h.get("/ListMessages"), http.StatusOK) },
			google:    map[string]int{fakegoogle.CountGmailList: 1},
			wantStore: localstore.Ops{Reads: 1},
		},
		{
			name: "ListMessages, access token expired",
			setup: func(h *harness) {
				wantStatus(h.t, h.login(demo), http.StatusOK)
				h.clock.Advance(time.Hour)
			},
			run:       func(h *harness) { wantStatus(h.t, h.get("/ListMessages"), http.StatusOK) },
			google:    map[string]int{fakegoogle.CountTokenRefresh: 1, fakegoogle.CountGmailList: 1},
			wantStore: localstore.Ops{Reads: 1, Writes: 1},
		},
		{
			name:  "ListMessages, all pages of 1234 messages",
			setup: func(h *harness) { wantStatus(h.t, h.login(demo), http.StatusOK) },
			run: func(h *harness) {
				wantStatus(h.t, h.get("/ListMessages?all=true&limit=5000&includeSpamTrash=true"), http.StatusOK)
			},
			google:    map[string]int{fakegoogle.CountGmailList: 3}, // ceil(1234/500)
			wantStore: localstore.Ops{Reads: 1},
		},
		{
			name:  "ListMessages, format=metadata, 50 messages: 1 list and 1 batch",
			setup: func(h *harness) { wantStatus(h.t, h.login(demo), http.StatusOK) },
			run: func(h *harness) {
				wantStatus(h.t, h.get("/ListMessages?format=metadata&maxResults=50"), http.StatusOK)
			},
			google:    map[string]int{fakegoogle.CountGmailList: 1, fakegoogle.CountGmailBatch: 1, fakegoogle.CountGmailBatchPart: 50},
			wantStore: localstore.Ops{Reads: 1},
		},
		{
			name:  "ListMessages, format=metadata, 250 messages: 1 list and 5 batches",
			setup: func(h *harness) { wantStatus(h.t, h.login(demo), http.StatusOK) },
			run: func(h *harness) {
				wantStatus(h.t, h.get("/ListMessages?format=metadata&maxResults=250&includeSpamTrash=true"), http.StatusOK)
			},
			google:    map[string]int{fakegoogle.CountGmailList: 1, fakegoogle.CountGmailBatch: 5, fakegoogle.CountGmailBatchPart: 250},
			wantStore: localstore.Ops{Reads: 1},
		},
		{
			name: "ListMessages, format=metadata, access token expired",
			setup: func(h *harness) {
				wantStatus(h.t, h.login(demo), http.StatusOK)
				h.clock.Advance(time.Hour)
			},
			run: func(h *harness) {
				wantStatus(h.t, h.get("/ListMessages?format=metadata&maxResults=50"), http.StatusOK)
			},
			google: map[string]int{fakegoogle.CountTokenRefresh: 1, fakegoogle.CountGmailList: 1,
				fakegoogle.CountGmailBatch: 1, fakegoogle.CountGmailBatchPart: 50},
			wantStore: localstore.Ops{Reads: 1, Writes: 1},
		},
		{
			name: "ListMessages, all pages, access token expired",
			setup: func(h *harness) {
				wantStatus(h.t, h.login(demo), http.StatusOK)
				h.clock.Advance(time.Hour)
			},
			run: func(h *harness) {
				wantStatus(h.t, h.get("/ListMessages?all=true&limit=5000&includeSpamTrash=true"), http.StatusOK)
			},
			google:    map[string]int{fakegoogle.CountTokenRefresh: 1, fakegoogle.CountGmailList: 3},
			wantStore: localstore.Ops{Reads: 1, Writes: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			if tt.setup != nil {
				tt.setup(h)
			}
			h.fake.ResetCounts()
			h.store.ResetOps()
			tt.run(h)
			for name, want := range tt.google {
				if got := h.fake.Count(name); got != want {
					t.Errorf("%s: %d calls, want %d", name, got, want)
				}
			}
			wantTotal := 0
			for _, n := range tt.google {
				wantTotal += n
			}
			if got := googleCalls(h); got != wantTotal {
				t.Errorf("%d calls to Google in all, want %d: %v", got, wantTotal, h.fake.Counts())
			}
			if got := h.store.Ops(); got != tt.wantStore {
				t.Errorf("store ops %+v, want %+v", got, tt.wantStore)
			}
		})
	}
}

// TestListMessages_50ConcurrentWithExpiredToken_OneRefresh: one instance,
// one user, 50 requests at once after the access token expired.
func TestListMessages_50ConcurrentWithExpiredToken_OneRefresh(t *testing.T) {
	h := loggedIn(t)
	h.clock.Advance(time.Hour)
	h.fake.ResetCounts()
	h.store.ResetOps()
	cookie := h.jar["__Host-gmail_session"]
	var wg sync.WaitGroup
	errs := make(chan string, 50)
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := httptest.NewRequest(http.MethodGet, base+"/ListMessages", nil)
			req.AddCookie(&http.Cookie{Name: "__Host-gmail_session", Value: cookie})
			rec := newRecorder()
			h.app.Handlers()["ListMessages"](rec, req)
			if rec.status != http.StatusOK {
				errs <- rec.buf.String()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatalf("a request failed: %s", e)
	}
	if n := h.fake.Count(fakegoogle.CountTokenRefresh); n != 1 {
		t.Fatalf("%d refreshes, want exactly 1", n)
	}
	if ops := h.store.Ops(); ops.Writes > 1 {
		t.Fatalf("%d store writes, want at most 1", ops.Writes)
	}
	if n := h.fake.Count(fakegoogle.CountGmailList); n != 50 {
		t.Fatalf("%d Gmail calls, want 50", n)
	}
}

// TestListMessages_SecondInstanceReusesWrittenBackToken: two App instances
// share one store; the second does not refresh what the first refreshed.
func TestListMessages_SecondInstanceReusesWrittenBackToken(t *testing.T) {
	h := loggedIn(t)
	second, err := New(h.cfg, Deps{ClientSecret: h.secret, Keys: h.keys, Store: h.store,
		HTTPClient: h.app.hc, Logger: h.app.log, Now: h.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(time.Hour)
	wantStatus(t, h.get("/ListMessages"), http.StatusOK) // instance 1 refreshes and writes back
	first := h.app
	h.app = second
	wantStatus(t, h.get("/ListMessages"), http.StatusOK)
	h.app = first
	if n := h.fake.Count(fakegoogle.CountTokenRefresh); n != 1 {
		t.Fatalf("%d refreshes across two instances, want 1", n)
	}
}
