package app

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/config"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/fakegoogle"
)

// useFake replaces the harness's fake Google, before any request, with one
// made with o (on the harness's clock and Callback).
func (h *harness) useFake(o fakegoogle.Options) {
	o.Now, o.RedirectURIs = h.clock.Now, []string{base + "/Callback"}
	h.mu.Lock() // the test server reads h.fake after taking h.mu
	h.fake = fakegoogle.New(o)
	h.mu.Unlock()
}

// TestTokenEndpoint_StandardsTolerance: token endpoints that behave as RFC
// 6749 allows and Google does not.
func TestTokenEndpoint_StandardsTolerance(t *testing.T) {
	tests := []struct {
		name string
		fake fakegoogle.Options
	}{
		// Without keeping the rotated token, the second refresh uses a dead
		// one and the grant is lost (reauthorization_required).
		{"refresh tokens rotate on every refresh (section 6)", fakegoogle.Options{RotateRefreshTokens: true}},
		// Without reading no scope as the requested scopes, Callback
		// refuses the grant (gmail_not_granted).
		{"token responses without scope (section 5.1)", fakegoogle.Options{OmitScope: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.useFake(tt.fake)
			wantStatus(t, h.login(demo), http.StatusOK)
			if rec := h.record(demo); !rec.HasScope(config.GmailReadonly) {
				t.Fatalf("stored scopes %q lack Gmail", rec.Scopes)
			}
			for i := range 3 {
				h.clock.Advance(time.Hour)
				if resp := h.get("/ListMessages", "Accept", jsonAccept); resp.StatusCode != http.StatusOK {
					t.Fatalf("refresh %d: %d %s", i+1, resp.StatusCode, body(resp))
				}
			}
			if n := h.fake.Count(fakegoogle.CountTokenRefresh); n != 3 {
				t.Errorf("%d refreshes, want 3", n)
			}
			// The stored refresh token is the newest Google issued.
			rec := h.record(demo)
			rings, err := h.app.keys.Get(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			rt, err := rings.token.Open(rec.RefreshToken, []byte(rec.Sub))
			issued := h.fake.RefreshTokens(demo)
			if err != nil || string(rt) != issued[len(issued)-1] {
				t.Errorf("the stored refresh token is not the newest of the %d issued (%v)", len(issued), err)
			}
			if tt.fake.RotateRefreshTokens && (len(issued) != 4 || !rec.RefreshTokenIssuedAt.Equal(rec.RefreshedAt)) {
				t.Errorf("%d refresh tokens issued, the stored one at %v, last refresh at %v; want 4, issued at the last refresh",
					len(issued), rec.RefreshTokenIssuedAt, rec.RefreshedAt)
			}
			if !slices.Contains(rec.Scopes, config.GmailReadonly) {
				t.Errorf("scopes after refreshes %q", rec.Scopes)
			}
		})
	}
}
