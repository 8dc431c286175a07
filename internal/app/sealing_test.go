package app

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/config"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/fakegoogle"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/keyring"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/tokenstore"
)

// TestOpenToken_OnlyInItsPlace: a token opens for the collection, user and
// field it was sealed for, and nowhere else.
func TestOpenToken_OnlyInItsPlace(t *testing.T) {
	h := newHarness(t, func(c *config.Config, _ *Deps) { c.FirestoreCollection = "gmail_tokens" })
	other := newHarness(t, func(c *config.Config, _ *Deps) { c.FirestoreCollection = "gmail_tokens_staging" })
	rs := secRings(t, h.secKeys())
	s := h.app.sealToken(rs, "111", refreshTokenField, "1//refresh")

	if got, stale, err := h.app.openToken(rs, "111", refreshTokenField, s); err != nil || got != "1//refresh" || stale {
		t.Fatalf("openToken in its place = %q, stale %v, %v", got, stale, err)
	}
	tests := []struct {
		name       string
		app        *App
		sub, field string
	}{
		{"another user", h.app, "222", refreshTokenField},
		{"the other field", h.app, "111", accessTokenField},
		{"another collection", other.app, "111", refreshTokenField},
	}
	for _, tt := range tests {
		if got, _, err := tt.app.openToken(rs, tt.sub, tt.field, s); !errors.Is(err, keyring.ErrOpen) || got != "" {
			t.Errorf("%s: openToken = %q, %v; want ErrOpen", tt.name, got, err)
		}
	}
}

// TestOpenToken_SealedTheOldWayOpensStale: tokens sealed before they were
// bound to their place (the sub alone as associated data) still open, and
// are reported stale so the next write seals them again; tokens under a
// key that is no longer the primary are stale too.
func TestOpenToken_SealedTheOldWayOpensStale(t *testing.T) {
	h := newHarness(t)
	rs := secRings(t, keySet("k1", "k1"))
	old := rs.token.Seal([]byte("1//refresh"), []byte("111"))
	if got, stale, err := h.app.openToken(rs, "111", refreshTokenField, old); err != nil || got != "1//refresh" || !stale {
		t.Fatalf("openToken(sealed the old way) = %q, stale %v, %v; want it open and stale", got, stale, err)
	}
	if _, _, err := h.app.openToken(rs, "222", refreshTokenField, old); !errors.Is(err, keyring.ErrOpen) {
		t.Fatalf("a token sealed the old way opens for another user: %v", err)
	}
	rotated := secRings(t, keySet("k2", "k1", "k2"))
	if _, stale, err := h.app.openToken(rotated, "111", refreshTokenField, h.app.sealToken(rs, "111", refreshTokenField, "x")); err != nil || !stale {
		t.Fatalf("a token under the old primary: stale %v, %v; want stale", stale, err)
	}
}

// sealTheOldWay rewrites the user's stored tokens as they were sealed
// before they were bound to their place: the sub alone as associated data.
func sealTheOldWay(t *testing.T, h *harness, email string) (refresh, access string) {
	t.Helper()
	rs := secRings(t, h.secKeys())
	sub := h.fake.UserSub(email)
	refresh = h.fake.RefreshTokens(email)[0]
	ats := h.fake.AccessTokens(email)
	access = ats[len(ats)-1]
	if _, err := h.store.Update(t.Context(), sub, func(cur *tokenstore.Record) (*tokenstore.Record, error) {
		next := *cur
		next.RefreshToken = rs.token.Seal([]byte(refresh), []byte(sub))
		next.AccessToken = rs.token.Seal([]byte(access), []byte(sub))
		return &next, nil
	}); err != nil {
		t.Fatal(err)
	}
	return refresh, access
}

// sealedForItsPlace fails unless the record's refresh token opens as its
// own field and no longer the old way.
func sealedForItsPlace(t *testing.T, h *harness, rec *tokenstore.Record, want string) {
	t.Helper()
	rs := secRings(t, h.secKeys())
	if got, err := rs.token.Open(rec.RefreshToken, h.app.tokenAAD(rec.Sub, refreshTokenField)); err != nil || string(got) != want {
		t.Fatalf("the refresh token does not open for its place: %v", err)
	}
	if _, err := rs.token.Open(rec.RefreshToken, []byte(rec.Sub)); err == nil {
		t.Fatal("the refresh token still opens the old way")
	}
}

func TestListMessages_TokensSealedTheOldWay_WorkAndAreSealedAgainOnTheNextWrite(t *testing.T) {
	h := loggedIn(t)
	refresh, _ := sealTheOldWay(t, h, demo)
	h.fake.ResetCounts()
	wantStatus(t, h.get("/ListMessages", "Accept", jsonAccept), http.StatusOK)
	if n := h.fake.Count(fakegoogle.CountTokenRefresh); n != 0 {
		t.Fatalf("the access token sealed the old way did not open: %d refreshes", n)
	}
	h.clock.Advance(time.Hour) // the next write: a refresh's write-back
	wantStatus(t, h.get("/ListMessages", "Accept", jsonAccept), http.StatusOK)
	if n := h.fake.Count(fakegoogle.CountTokenRefresh); n != 1 {
		t.Fatalf("%d refreshes, want 1", n)
	}
	sealedForItsPlace(t, h, h.record(demo), refresh)
}

func TestCallback_RefreshTokenSealedTheOldWay_IsSealedAgain(t *testing.T) {
	h := loggedIn(t)
	refresh, _ := sealTheOldWay(t, h, demo)
	h.jar = map[string]string{}
	wantStatus(t, h.login(demo), http.StatusOK) // no new refresh token: the stored one is kept
	if n := len(h.fake.RefreshTokens(demo)); n != 1 {
		t.Fatalf("Google issued %d refresh tokens, want 1", n)
	}
	sealedForItsPlace(t, h, h.record(demo), refresh)
}

// TestListMessages_TokensSwappedBetweenFields_NotOpened: a writer of the
// store without the keys swaps the refresh and access token ciphertexts.
// Neither opens in the other's field: the refresh token is never sent to
// Gmail as a bearer token, nor the access token to the token endpoint.
func TestListMessages_TokensSwappedBetweenFields_NotOpened(t *testing.T) {
	h := loggedIn(t)
	if _, err := h.store.Update(t.Context(), h.fake.UserSub(demo), func(cur *tokenstore.Record) (*tokenstore.Record, error) {
		next := *cur
		next.RefreshToken, next.AccessToken = cur.AccessToken, cur.RefreshToken
		return &next, nil
	}); err != nil {
		t.Fatal(err)
	}
	h.fake.ResetCounts()
	resp := h.get("/ListMessages", "Accept", jsonAccept)
	if e := decode[apiError](t, resp); resp.StatusCode != http.StatusUnauthorized || e.Code != "reauthorization_required" {
		t.Fatalf("%d %+v, want 401 reauthorization_required", resp.StatusCode, e)
	}
	if n := googleCalls(h); n != 0 {
		t.Fatalf("a swapped token was opened and sent to Google: %v", h.fake.Counts())
	}
}
