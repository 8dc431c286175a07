package app

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/fakegoogle"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/keyring"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/tokenstore"
)

// keySet returns the JSON of a key set with fixed keys named ids.
func keySet(primary string, ids ...string) []byte {
	keys := map[string]string{}
	for _, id := range ids {
		keys[id] = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte(id[len(id)-1:]), keyring.KeySize))
	}
	b, _ := json.Marshal(map[string]any{"primary": primary, "keys": keys})
	return b
}

func TestKeyRotation_OldRecordsDecryptAndAreResealedOnNextWrite(t *testing.T) {
	h := newHarness(t)
	h.keys.set(keySet("k1", "k1"))
	wantStatus(t, h.login(demo), http.StatusOK)
	if r := h.record(demo); r.RefreshToken.KeyID != "k1" || r.AccessToken.KeyID != "k1" {
		t.Fatalf("sealed under %q/%q, want k1", r.RefreshToken.KeyID, r.AccessToken.KeyID)
	}

	h.keys.set(keySet("k2", "k1", "k2")) // a new primary; k1 stays live
	h.clock.Advance(h.cfg.SecretTTL + time.Second)
	h.renewSecrets()
	// The old session cookie and the old access token still open.
	wantStatus(t, h.get("/ListMessages"), http.StatusOK)
	if h.fake.Count(fakegoogle.CountTokenRefresh) != 0 {
		t.Fatal("rotation forced a refresh")
	}
	// The next write (a refresh's write-back) seals everything under k2.
	h.clock.Advance(time.Hour)
	wantStatus(t, h.get("/ListMessages"), http.StatusOK)
	r := h.record(demo)
	if r.RefreshToken.KeyID != "k2" || r.AccessToken.KeyID != "k2" {
		t.Fatalf("after the write sealed under %q/%q, want k2", r.RefreshToken.KeyID, r.AccessToken.KeyID)
	}
	ring, _ := keyring.Parse(keySet("k2", "k2")) // k1 retired
	rt, err := ring.Derive("token").Open(r.RefreshToken, []byte(r.Sub))
	if err != nil || string(rt) != h.fake.RefreshTokens(demo)[0] {
		t.Fatalf("the resealed refresh token does not open under k2 alone: %v", err)
	}
	// With k1 retired, everything still works.
	h.keys.set(keySet("k2", "k2"))
	h.clock.Advance(h.cfg.SecretTTL + time.Second)
	h.renewSecrets()
	h.jar = map[string]string{} // the k1 session cookie no longer opens
	wantStatus(t, h.login(demo), http.StatusOK)
	wantStatus(t, h.get("/ListMessages"), http.StatusOK)
}

func TestKeyRotation_CallbackReseals(t *testing.T) {
	h := newHarness(t)
	h.keys.set(keySet("k1", "k1"))
	wantStatus(t, h.login(demo), http.StatusOK)
	h.keys.set(keySet("k2", "k1", "k2"))
	h.clock.Advance(h.cfg.SecretTTL + time.Second)
	h.renewSecrets()
	h.jar = map[string]string{}
	wantStatus(t, h.login(demo), http.StatusOK) // no new refresh token: the stored one is kept, resealed
	if r := h.record(demo); r.RefreshToken.KeyID != "k2" || len(h.fake.RefreshTokens(demo)) != 1 {
		t.Fatalf("refresh token under %q after a callback, %d issued", r.RefreshToken.KeyID, len(h.fake.RefreshTokens(demo)))
	}
}

func TestKeyRemoved_LoginAsksForConsentInsteadOfFailing(t *testing.T) {
	h := newHarness(t)
	h.keys.set(keySet("k1", "k1"))
	wantStatus(t, h.login(demo), http.StatusOK)
	h.keys.set(keySet("k2", "k2")) // k1 removed while records still use it
	h.clock.Advance(h.cfg.SecretTTL + time.Second)
	h.renewSecrets()
	h.jar = map[string]string{}

	// Google sends no refresh token (the grant exists) and the stored one no
	// longer opens: the user is sent to consent, not stuck on an error.
	resp := h.callback(h.consent(h.authorize(""), demo, true, true))
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || !strings.Contains(loc, "prompt=consent") {
		t.Fatalf("%d to %q, want a redirect to consent", resp.StatusCode, loc)
	}
	resp = h.callback(h.consent(h.authorize(strings.TrimPrefix(resp.Header.Get("Location"), base+"/Authorize?")), demo, true, true))
	wantStatus(t, resp, http.StatusOK)
	if r := h.record(demo); !r.Usable() || r.RefreshToken.KeyID != "k2" {
		t.Fatalf("after consent: %+v", r)
	}
	wantStatus(t, h.get("/ListMessages"), http.StatusOK)
}

func TestListMessages_RefreshTokenDoesNotOpen_ReauthorizationRequired(t *testing.T) {
	h := loggedIn(t)
	sub := h.fake.UserSub(demo)
	_, err := h.store.Update(t.Context(), sub, func(cur *tokenstore.Record) (*tokenstore.Record, error) {
		next := *cur
		next.RefreshToken = keyring.Sealed{KeyID: cur.RefreshToken.KeyID, Ciphertext: bytes.Repeat([]byte{7}, 64)}
		return &next, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(time.Hour)
	if e := decode[apiError](t, h.get("/ListMessages", "Accept", jsonAccept)); e.Code != "reauthorization_required" {
		t.Fatalf("answer %+v", e)
	}
	if h.record(demo).Usable() || h.fake.Count(fakegoogle.CountTokenRefresh) != 0 {
		t.Fatal("want the record marked dead without calling Google")
	}
}
