package app

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// TestListMessages_TokenEndpointOutage_GoogleNotHammered: 20 clients keep
// asking (20 ms after each answer, whatever Retry-After says) while the
// token endpoint answers 503 for 10 s. The App runs on the real clock: the
// backoff windows are real time. Windows of about 1, 2, 4 and 8 s (±20 %)
// let at most 5 calls through in 10 s; a window that did not grow would
// let 10 through, and none at all about 600.
func TestListMessages_TokenEndpointOutage_GoogleNotHammered(t *testing.T) {
	const clients, outage, most = 20, 10 * time.Second, 5
	o := tokenOutage(t, clients, outage)
	t.Logf("answers %v; token calls: %d during the outage, %d after", o.answered, o.during, o.after)
	if o.answered[http.StatusOK] != clients || len(o.answered) != 2 {
		t.Errorf("answers by status %v; want 503s, then a 200 for each of the %d clients", o.answered, clients)
	}
	if len(o.badRetry) > 0 {
		t.Errorf("503s with Retry-After %q; want whole seconds from 1 to 30", o.badRetry)
	}
	if o.during < 2 || o.during > most {
		t.Errorf("%d token calls during a %v outage, want 2 to %d", o.during, outage, most)
	}
	if o.after != 1 {
		t.Errorf("%d token calls after the outage, want 1: the first refresh after it succeeds", o.after)
	}
}

func TestRefreshBackoff_WindowsDoubleWithJitterAndResetOnSuccess(t *testing.T) {
	var b refreshBackoff
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	steps := []struct {
		fail       bool // else a success
		after      time.Duration
		wantMin    time.Duration
		wantMax    time.Duration
		heldAtOnce bool
	}{
		{true, 0, 800 * time.Millisecond, 1200 * time.Millisecond, true},
		{true, 2 * time.Second, 1600 * time.Millisecond, 2400 * time.Millisecond, true},
		{true, 3 * time.Second, 3200 * time.Millisecond, 4800 * time.Millisecond, true},
		{true, 5 * time.Second, 6400 * time.Millisecond, 9600 * time.Millisecond, true},
		{true, 10 * time.Second, 12800 * time.Millisecond, 19200 * time.Millisecond, true},
		{true, 20 * time.Second, 24 * time.Second, backoffMax, true},
		{true, 30 * time.Second, 24 * time.Second, backoffMax, true}, // capped
		{false, 30 * time.Second, 0, 0, false},                       // a success resets
		{true, time.Second, 800 * time.Millisecond, 1200 * time.Millisecond, true},
		{true, time.Hour, 800 * time.Millisecond, 1200 * time.Millisecond, true}, // a quiet spell resets too
	}
	for i, st := range steps {
		now = now.Add(st.after)
		if !st.fail {
			b.reset("u")
		} else if d := b.fail("u", now); d < st.wantMin || d > st.wantMax {
			t.Errorf("step %d: window %v, want %v to %v", i, d, st.wantMin, st.wantMax)
		}
		if held := b.wait("u", now) > 0; held != st.heldAtOnce {
			t.Errorf("step %d: held back %v, want %v", i, held, st.heldAtOnce)
		}
	}
	if b.wait("other", now) != 0 {
		t.Error("another user is held back")
	}

	// Memory: at most backoffUsers users, old ones forgotten for new ones.
	for i := range backoffUsers + 100 {
		b.fail(strconv.Itoa(i), now)
	}
	if n := len(b.m); n > backoffUsers {
		t.Errorf("%d users remembered, want at most %d", n, backoffUsers)
	}
	later := now.Add(2*backoffMax + time.Second)
	b.fail("newcomer", later)
	if b.wait("newcomer", later) == 0 || len(b.m) > backoffUsers {
		t.Errorf("a new failure after the others went quiet is not remembered (%d users)", len(b.m))
	}
}

// TestListMessages_RefreshFails_NextRequestHeldBackOrReauthorized: after a
// refresh fails with a 5xx or a network error, the user's next request on
// the instance is answered 503 with Retry-After at once, without calling
// Google; after invalid_grant it is reauthorization_required, as at once.
func TestListMessages_RefreshFails_NextRequestHeldBackOrReauthorized(t *testing.T) {
	tests := []struct {
		name   string
		fail   func(w http.ResponseWriter) // the token endpoint's answer
		status int                         // of both requests
		code   string
	}{
		{"503", func(w http.ResponseWriter) { w.WriteHeader(http.StatusServiceUnavailable) }, http.StatusServiceUnavailable, "unavailable"},
		{"500 with an OAuth error", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			w.Write([]byte(`{"error":"internal_failure"}`))
		}, http.StatusServiceUnavailable, "unavailable"},
		{"network error: the connection closed without an answer", func(w http.ResponseWriter) {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
		}, http.StatusServiceUnavailable, "unavailable"},
		{"invalid_grant", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"error":"invalid_grant"}`))
		}, http.StatusUnauthorized, "reauthorization_required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := loggedIn(t)
			h.clock.Advance(time.Hour)
			var calls atomic.Int64
			h.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
				if r.URL.Path != "/token" {
					return false
				}
				calls.Add(1)
				tt.fail(w)
				return true
			})
			for i := range 2 {
				resp := h.get("/ListMessages", "Accept", jsonAccept)
				if e := decode[apiError](t, resp); resp.StatusCode != tt.status || e.Code != tt.code {
					t.Fatalf("request %d: %d %q, want %d %q", i+1, resp.StatusCode, e.Code, tt.status, tt.code)
				}
				if ra := resp.Header.Get("Retry-After"); (ra != "") != (tt.status == http.StatusServiceUnavailable) {
					t.Errorf("request %d: Retry-After %q", i+1, ra)
				}
			}
			if n := calls.Load(); n != 1 {
				t.Errorf("%d calls to the token endpoint for 2 requests, want 1", n)
			}
		})
	}
}
