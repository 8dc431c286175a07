package app

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/cookies"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/tokenstore"
)

// TestSession_CopiedThenDisconnected_DeadAfterReconnecting: a copy of the
// session cookie is taken, the user disconnects and connects again. The
// copy names nobody any more, at every use of a session (ListMessages,
// Disconnect, the success page), while the new session works.
func TestSession_CopiedThenDisconnected_DeadAfterReconnecting(t *testing.T) {
	h := loggedIn(t)
	copied := h.jar[secSessionCookie]
	h.clock.Advance(time.Second)
	wantStatus(t, h.post("/Disconnect"), http.StatusOK)
	h.clock.Advance(time.Second)
	wantStatus(t, h.login(demo), http.StatusOK)
	fresh := h.jar[secSessionCookie]
	if fresh == "" || fresh == copied {
		t.Fatal("no new session after connecting again")
	}

	h.jar = map[string]string{secSessionCookie: copied}
	h.fake.ResetCounts()
	resp := h.get("/ListMessages", "Accept", jsonAccept)
	if e := decode[apiError](t, resp); resp.StatusCode != http.StatusUnauthorized || e.Code != "authorization_required" {
		t.Fatalf("ListMessages with the copy: %d %+v, want 401 authorization_required", resp.StatusCode, e)
	}
	if resp := h.get("/Callback", "Accept", jsonAccept); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("Callback's connected answer with the copy: %d %s, want 401", resp.StatusCode, body(resp))
	}
	if resp := h.get("/Callback", "Accept", htmlAccept); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("the success page with the copy: %d %s, want 400", resp.StatusCode, body(resp))
	}
	h.jar = map[string]string{secSessionCookie: copied}
	resp = h.post("/Disconnect")
	if a := decode[disconnectAnswer](t, resp); resp.StatusCode != http.StatusOK || a.Revoked || !sessionCleared(resp) {
		t.Fatalf("Disconnect with the copy: %d %+v, want nothing done and the copy cleared", resp.StatusCode, a)
	}
	if h.record(demo) == nil || googleCalls(h) != 0 {
		t.Fatalf("the copy disconnected the user or reached Google: %v", h.fake.Counts())
	}

	h.jar = map[string]string{secSessionCookie: fresh}
	wantStatus(t, h.get("/ListMessages", "Accept", jsonAccept), http.StatusOK)
	if b := wantStatus(t, h.get("/Callback", "Accept", htmlAccept), http.StatusOK); !strings.Contains(b, "connected for "+demo) {
		t.Fatalf("the success page with the new session: %s", b)
	}
}

// TestSession_WithoutIssueTime: sessions sealed before they carried an
// issue time keep naming a record stored before records carried "sessions
// valid after" (as they did), and never a record created since.
func TestSession_WithoutIssueTime(t *testing.T) {
	tests := []struct {
		name    string
		oldRec  bool // the record predates sessions_valid_after
		wantErr bool
	}{
		{"record from before: accepted", true, false},
		{"record created since (after a Disconnect, say): refused", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := loggedIn(t)
			sub := h.fake.UserSub(demo)
			if tt.oldRec {
				if _, err := h.store.Update(t.Context(), sub, func(cur *tokenstore.Record) (*tokenstore.Record, error) {
					next := *cur
					next.SessionsValidAfter = time.Time{}
					return &next, nil
				}); err != nil {
					t.Fatal(err)
				}
			}
			old, err := cookies.Encode(secRings(t, h.secKeys()).cookie, secSessionCookie, session{Sub: sub, Email: demo}, h.clock.Now().Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			h.jar = map[string]string{secSessionCookie: old}
			resp := h.get("/ListMessages", "Accept", jsonAccept)
			if got := resp.StatusCode != http.StatusOK; got != tt.wantErr {
				t.Fatalf("ListMessages with a session without issue time: %d %s", resp.StatusCode, body(resp))
			}
		})
	}
}

// TestSession_RecordStartsRefusingOlderSessions: a record created now
// refuses sessions issued before now, to the microsecond, and accepts the
// one Callback issues with it.
func TestSession_RecordStartsRefusingOlderSessions(t *testing.T) {
	h := newHarness(t)
	wantStatus(t, h.login(demo), http.StatusOK)
	rec := h.record(demo)
	if !rec.SessionsValidAfter.Equal(rec.CreatedAt) || rec.SessionsValidAfter.IsZero() {
		t.Fatalf("sessions_valid_after %v, created %v: want the creation time", rec.SessionsValidAfter, rec.CreatedAt)
	}
	for _, tt := range []struct {
		issued time.Time
		valid  bool
	}{
		{rec.SessionsValidAfter, true},
		{rec.SessionsValidAfter.Add(time.Microsecond), true},
		{rec.SessionsValidAfter.Add(-time.Microsecond), false},
		{rec.SessionsValidAfter.Add(-time.Hour), false},
	} {
		if got := (session{Sub: rec.Sub, IssuedAt: tt.issued.UnixMicro()}).validFor(rec); got != tt.valid {
			t.Errorf("a session issued %v from sessions_valid_after: valid %v, want %v", tt.issued.Sub(rec.SessionsValidAfter), got, tt.valid)
		}
	}
}
