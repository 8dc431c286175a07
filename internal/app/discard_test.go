package app

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/fakegoogle"
)

// TestCallback_RefusedGrant_RevokedAtGoogle: whatever Callback refuses
// after the code exchange is revoked at Google, once, and nothing is
// stored. Google then holds no grant for the app, so the user's next
// consent, without prompt=consent, brings a refresh token: one consent
// page and the user is connected.
func TestCallback_RefusedGrant_RevokedAtGoogle(t *testing.T) {
	tests := []struct {
		name   string
		refuse func(h *harness)
		gmail  bool // the Gmail box stays ticked
		status int
		code   string
	}{
		{"Gmail unticked", func(*harness) {}, false, http.StatusForbidden, "gmail_not_granted"},
		{"email not verified", func(h *harness) { h.claimEmail(demo, false) }, true, http.StatusForbidden, "email_not_verified"},
		{"id_token for another client", func(h *harness) {
			h.rewriteToken(func(m map[string]any) { m["id_token"] = forgeIDToken(m["id_token"], "aud", "other") })
		}, true, http.StatusBadRequest, "no_identity"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			tt.refuse(h)
			resp := h.callback(h.consent(h.authorize(""), demo, true, tt.gmail), "Accept", jsonAccept)
			if e := decode[apiError](t, resp); resp.StatusCode != tt.status || e.Code != tt.code {
				t.Fatalf("Callback: %d %+v, want %d %s", resp.StatusCode, e, tt.status, tt.code)
			}
			if h.record(demo) != nil {
				t.Fatal("a refused grant was stored")
			}
			if n := h.fake.Count(fakegoogle.CountRevoke); n != 1 {
				t.Fatalf("%d revocations at Google, want 1", n)
			}
			h.setIntercept(nil)
			for _, rt := range h.fake.RefreshTokens(demo) {
				if got := refreshAtFake(h, rt); got != http.StatusBadRequest {
					t.Fatalf("a refresh token of the refused grant still refreshes: %d", got)
				}
			}
			for _, at := range h.fake.AccessTokens(demo) {
				if got := gmailAtFake(h, at); got != http.StatusUnauthorized {
					t.Fatalf("an access token of the refused grant still reads Gmail: %d", got)
				}
			}

			h.fake.ResetCounts()
			h.jar = map[string]string{}
			wantStatus(t, h.login(demo), http.StatusOK) // Authorize without prompt=consent
			if n := h.fake.Count(fakegoogle.CountAuth); n != 1 {
				t.Fatalf("%d consent pages before the user was connected, want 1", n)
			}
			if !h.record(demo).Usable() {
				t.Fatal("no usable record after the one consent")
			}
		})
	}
}

// TestCallback_RefusedGrant_RevocationFailsOrHangs_AnswersAnyway: the
// revocation is best effort: Google failing or not answering never changes
// Callback's answer, and a revocation that hangs is given up after
// discardTimeout.
func TestCallback_RefusedGrant_RevocationFailsOrHangs_AnswersAnyway(t *testing.T) {
	for _, tt := range []struct {
		name   string
		revoke func(w http.ResponseWriter, release <-chan struct{})
	}{
		{"503", func(w http.ResponseWriter, _ <-chan struct{}) { w.WriteHeader(http.StatusServiceUnavailable) }},
		{"no answer", func(_ http.ResponseWriter, release <-chan struct{}) { <-release }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			release := make(chan struct{})
			t.Cleanup(func() { close(release) }) // before the fake's server closes
			redirect := h.consent(h.authorize(""), demo, true, false)
			h.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
				if r.URL.Path == "/revoke" {
					tt.revoke(w, release)
					return true
				}
				return false
			})
			start := time.Now()
			resp := h.callback(redirect, "Accept", htmlAccept)
			took := time.Since(start)
			if b := wantStatus(t, resp, http.StatusForbidden); !strings.Contains(b, titles["gmail_not_granted"]) {
				t.Fatalf("page %s", b)
			}
			// Margin: 2 s over the 3 s deadline, for a loaded machine.
			if took > discardTimeout+2*time.Second {
				t.Fatalf("Callback took %v with Google's revocation endpoint %s; want at most %v", took, tt.name, discardTimeout+2*time.Second)
			}
			if !strings.Contains(h.logs.String(), "revoking a grant we do not keep failed") {
				t.Fatal("the failed revocation was not logged")
			}
		})
	}
}
