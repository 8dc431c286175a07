package app

import (
	"cmp"
	"context"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/fakegoogle"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/tokenstore"
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
			run:       func(h *harness) { wantStatus(h.t, h.callback(h.pending), http.StatusOK) },
			google:    map[string]int{fakegoogle.CountTokenCode: 1},
			wantStore: localstore.Ops{Transactions: 1, Writes: 1},
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
			wantStore: localstore.Ops{Reads: 1, Leases: 1, Writes: 2}, // the lease, the write-back that ends it
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
			wantStore: localstore.Ops{Reads: 1, Leases: 1, Writes: 2},
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
			wantStore: localstore.Ops{Reads: 1, Leases: 1, Writes: 2},
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
	// Each request reads the record; only the refresh touches it again.
	if ops, want := h.store.Ops(), (localstore.Ops{Reads: 50, Leases: 1, Writes: 2}); ops != want {
		t.Fatalf("store ops %+v, want %+v", ops, want)
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

// instance returns a second App over the harness's fake Google, secrets,
// clock and store (st, when given, replaces it): another function instance.
func (h *harness) instance(st TokenStore) *App {
	h.t.Helper()
	if st == nil {
		st = h.store
	}
	a, err := New(h.cfg, Deps{ClientSecret: h.secret, Keys: h.keys, Store: st,
		HTTPClient: h.app.hc, Logger: h.app.log, Now: h.app.now})
	if err != nil {
		h.t.Fatal(err)
	}
	a.lease = h.app.lease
	return a
}

// listAsync calls a's ListMessages with the harness's session and returns
// where its answer will come.
func (h *harness) listAsync(a *App) <-chan *recorder {
	cookie := h.jar["__Host-gmail_session"]
	fn := a.Handlers()["ListMessages"]
	ch := make(chan *recorder, 1)
	go func() {
		req := httptest.NewRequest(http.MethodGet, base+"/ListMessages", nil)
		req.AddCookie(&http.Cookie{Name: "__Host-gmail_session", Value: cookie})
		rec := newRecorder()
		fn(rec, req)
		ch <- rec
	}()
	return ch
}

// tokenGate holds each call to the token endpoint until the test releases
// it, with 0 (the fake answers) or a status to fail it with; 504 after
// 10 s.
type tokenGate struct {
	arrived chan struct{}
	release chan int
	calls   atomic.Int64
}

func (h *harness) gateTokenCalls() *tokenGate {
	g := &tokenGate{arrived: make(chan struct{}, 8), release: make(chan int, 8)}
	h.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/token" {
			return false
		}
		g.calls.Add(1)
		g.arrived <- struct{}{}
		// A call the test does not release (one too many) fails after
		// 10 s, so that the test fails rather than hangs.
		status := http.StatusGatewayTimeout
		select {
		case status = <-g.release:
		case <-time.After(10 * time.Second):
		}
		if status != 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			io.WriteString(w, `{"error":"internal_failure"}`)
			return true
		}
		return false
	})
	return g
}

// stalledGet is a store whose Get, having read the record, waits for
// release: a request that read the record before another instance took
// the lease.
type stalledGet struct {
	TokenStore
	read, release chan struct{}
}

func (s *stalledGet) Get(ctx context.Context, sub string) (*tokenstore.Record, error) {
	r, err := s.TokenStore.Get(ctx, sub)
	close(s.read)
	<-s.release
	return r, err
}

// eventually waits until cond holds, failing t after 10 s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10 s for %s", what)
		}
	}
}

// TestRoundTrips_RefreshAcrossInstances counts the store operations and
// token calls of a refresh that instances share through the lease (see
// userTokens). The first instance's token call is held until the others
// are where the row wants them.
func TestRoundTrips_RefreshAcrossInstances(t *testing.T) {
	tests := []struct {
		name       string
		lease      time.Duration
		run        func(h *harness, g *tokenGate) []*recorder
		status     []int // of the answers, in order
		tokenCalls int
		google     map[string]int // answered by the fake
		wantStore  localstore.Ops
	}{
		{
			name: "the second instance finds the record leased and waits for the write-back",
			run: func(h *harness, g *tokenGate) []*recorder {
				first := h.listAsync(h.app)
				<-g.arrived
				second := h.listAsync(h.instance(nil))
				eventually(h.t, "the second instance to watch", func() bool { return h.store.Ops().Watches == 1 })
				g.release <- 0
				return []*recorder{<-first, <-second}
			},
			status: []int{200, 200}, tokenCalls: 1,
			google:    map[string]int{fakegoogle.CountTokenRefresh: 1, fakegoogle.CountGmailList: 2},
			wantStore: localstore.Ops{Reads: 2, Leases: 1, Writes: 2, Watches: 1},
		},
		{
			name: "the second instance read the record before the lease was taken: its lease write conflicts, then it waits",
			run: func(h *harness, g *tokenGate) []*recorder {
				st := &stalledGet{TokenStore: h.store, read: make(chan struct{}), release: make(chan struct{})}
				second := h.listAsync(h.instance(st))
				<-st.read
				first := h.listAsync(h.app)
				<-g.arrived
				close(st.release)
				eventually(h.t, "the second instance to watch", func() bool { return h.store.Ops().Watches == 1 })
				g.release <- 0
				return []*recorder{<-first, <-second}
			},
			status: []int{200, 200}, tokenCalls: 1,
			google:    map[string]int{fakegoogle.CountTokenRefresh: 1, fakegoogle.CountGmailList: 2},
			wantStore: localstore.Ops{Reads: 2, Leases: 2, Writes: 2, Watches: 1},
		},
		{
			name:  "a lease left by an instance that died is taken over when it runs out",
			lease: time.Second, // the taker calls Google within 0.8 of it
			run: func(h *harness, g *tokenGate) []*recorder {
				rec := h.record(demo)
				if _, err := h.store.SetLease(context.Background(), rec.Sub, rec.Version, tokenstore.Lease{Holder: "gone", Until: h.clock.Now().Add(h.app.lease)}); err != nil {
					h.t.Fatal(err)
				}
				h.store.ResetOps()
				answer := h.listAsync(h.app)
				<-g.arrived
				g.release <- 0
				return []*recorder{<-answer}
			},
			status: []int{200}, tokenCalls: 1,
			google:    map[string]int{fakegoogle.CountTokenRefresh: 1, fakegoogle.CountGmailList: 1},
			wantStore: localstore.Ops{Reads: 1, Watches: 1, Leases: 1, Writes: 2},
		},
		{
			name: "a failed refresh releases the lease, and the waiting instance answers 503 without calling Google",
			run: func(h *harness, g *tokenGate) []*recorder {
				first := h.listAsync(h.app)
				<-g.arrived
				second := h.listAsync(h.instance(nil))
				eventually(h.t, "the second instance to watch", func() bool { return h.store.Ops().Watches == 1 })
				g.release <- http.StatusServiceUnavailable
				return []*recorder{<-first, <-second}
			},
			status: []int{503, 503}, tokenCalls: 1,
			google:    map[string]int{},
			wantStore: localstore.Ops{Reads: 2, Leases: 2, Writes: 2, Watches: 1},
		},
		{
			name: "after a failed refresh the instance answers 503 without calling Google or the store again",
			run: func(h *harness, g *tokenGate) []*recorder {
				first := h.listAsync(h.app)
				<-g.arrived
				g.release <- http.StatusServiceUnavailable
				return []*recorder{<-first, <-h.listAsync(h.app)}
			},
			status: []int{503, 503}, tokenCalls: 1,
			google:    map[string]int{},
			wantStore: localstore.Ops{Reads: 2, Leases: 2, Writes: 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := loggedIn(t)
			h.app.lease = cmp.Or(tt.lease, time.Minute)
			h.clock.Advance(time.Hour)
			g := h.gateTokenCalls()
			h.fake.ResetCounts()
			h.store.ResetOps()
			answers := tt.run(h, g)
			for i, a := range answers {
				if a.status != tt.status[i] {
					t.Errorf("answer %d: %d %s, want %d", i, a.status, a.buf.String(), tt.status[i])
				}
				if a.status == http.StatusServiceUnavailable && a.h.Get("Retry-After") == "" {
					t.Errorf("answer %d: 503 without Retry-After", i)
				}
			}
			if n := g.calls.Load(); n != int64(tt.tokenCalls) {
				t.Errorf("%d calls to the token endpoint, want %d", n, tt.tokenCalls)
			}
			if got := h.fake.Counts(); !maps.Equal(got, tt.google) {
				t.Errorf("the fake Google answered %v, want %v", got, tt.google)
			}
			if got := h.store.Ops(); got != tt.wantStore {
				t.Errorf("store ops %+v, want %+v", got, tt.wantStore)
			}
		})
	}
}
