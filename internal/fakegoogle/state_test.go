package fakegoogle

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// durableHarness is a harness whose fake keeps its state in path.
func durableHarness(t *testing.T, path string, clock *fakeClock) *harness {
	t.Helper()
	return newHarness(t, Options{StateFile: path, Now: clock.Now})
}

// checkStateFileMode fails unless path exists with mode 0600 and no
// temporary file was left beside it.
func checkStateFileMode(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("state file: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v, want 0600 (it holds tokens and keys)", fi.Mode().Perm())
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != filepath.Base(path) {
			t.Errorf("stray file %s beside the state file", e.Name())
		}
	}
}

// TestStateFileSurvivesReopen: everything a client holds from a fake with a
// StateFile still works, or is still refused, at a new fake opened on the
// same file.
func TestStateFileSurvivesReopen(t *testing.T) {
	clock := newFakeClock()
	path := filepath.Join(t.TempDir(), "fakegoogle.json")
	h1 := durableHarness(t, path, clock)
	const (
		alive   = "alive@example.com"
		revoked = "revoked@example.com"
		custom  = "custom@example.com"
	)
	tok := h1.tokenFor(t, alive)
	idToken, _ := tok.Extra("id_token").(string)
	if idToken == "" || tok.RefreshToken == "" {
		t.Fatalf("login gave no id_token or refresh token: %+v", tok)
	}
	gone := h1.tokenFor(t, revoked)
	if status, body := h1.postForm(t, "/revoke", url.Values{"token": {gone.RefreshToken}}); status != 200 {
		t.Fatalf("revoke: %d %v", status, body)
	}
	h1.fake.SetMailbox(custom, []Message{
		{ID: "custom-1", Subject: "kept", Date: clock.Now().Add(-time.Hour), LabelIDs: []string{"INBOX"}},
		{ID: "custom-2", Subject: "also kept", Date: clock.Now(), LabelIDs: []string{"INBOX", "UNREAD"}},
	})
	res, page1 := h1.gmailGET(t, tok.AccessToken, "/gmail/v1/users/me/messages?maxResults=2")
	pageToken, _ := page1["nextPageToken"].(string)
	if res.StatusCode != 200 || pageToken == "" {
		t.Fatalf("listing before the restart: %d %v", res.StatusCode, page1)
	}
	_, consentPage := h1.get(t, h1.conf.AuthCodeURL("st4te", oauth2.SetAuthURLParam("login_hint", "late@example.com")))
	refreshBefore, accessBefore := h1.fake.RefreshTokens(alive), h1.fake.AccessTokens(alive)
	checkStateFileMode(t, path)

	h2 := durableHarness(t, path, clock)
	if h2.fake.signer.keyID != h1.fake.signer.keyID || h2.fake.signer.keyID == sharedSigner().keyID {
		t.Errorf("signing key ID %s after the restart, want %s (from the file, not the process-wide key %s)",
			h2.fake.signer.keyID, h1.fake.signer.keyID, sharedSigner().keyID)
	}
	tests := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"refresh token still refreshes", func(t *testing.T) {
			stale := *tok
			stale.Expiry = time.Now().Add(-time.Minute)
			fresh, err := h2.conf.TokenSource(context.Background(), &stale).Token()
			if err != nil {
				t.Fatalf("refresh: %v", err)
			}
			if _, err := h2.gmail(t, fresh.AccessToken).Users.Messages.List("me").Do(); err != nil {
				t.Errorf("Gmail with the refreshed access token: %v", err)
			}
		}},
		{"access token still lists Gmail", func(t *testing.T) {
			l, err := h2.gmail(t, tok.AccessToken).Users.Messages.List("me").MaxResults(2).Do()
			if err != nil {
				t.Fatalf("Gmail: %v", err)
			}
			first, _ := page1["messages"].([]any)
			if len(l.Messages) != 2 || len(first) != 2 || l.Messages[0].Id != first[0].(map[string]any)["id"] {
				t.Errorf("first page %+v after the restart, want %v", l.Messages, first)
			}
		}},
		{"page token from before still pages", func(t *testing.T) {
			res, page2 := h2.gmailGET(t, tok.AccessToken, "/gmail/v1/users/me/messages?maxResults=2&pageToken="+url.QueryEscape(pageToken))
			three, err := h2.gmail(t, tok.AccessToken).Users.Messages.List("me").MaxResults(3).Do()
			if err != nil {
				t.Fatal(err)
			}
			msgs, _ := page2["messages"].([]any)
			if res.StatusCode != 200 || len(msgs) != 2 || msgs[0].(map[string]any)["id"] != three.Messages[2].Id {
				t.Errorf("second page: %d %v, want it to start with %s", res.StatusCode, page2, three.Messages[2].Id)
			}
		}},
		{"id_token from before verifies against the JWKS", func(t *testing.T) {
			if c := verifyIDToken(t, h2, idToken); c["sub"] != h2.fake.UserSub(alive) {
				t.Errorf("sub %v, want %s", c["sub"], h2.fake.UserSub(alive))
			}
		}},
		{"consent form from before can be submitted", func(t *testing.T) {
			q := h2.submitConsent(t, consentPage, consent{})
			if q.Get("code") == "" {
				t.Fatalf("no code: %v", q)
			}
			if _, err := h2.conf.Exchange(context.Background(), q.Get("code")); err != nil {
				t.Errorf("exchange: %v", err)
			}
		}},
		{"granted scopes allow prompt=none", func(t *testing.T) {
			q := h2.authorize(t, consent{}, oauth2.SetAuthURLParam("login_hint", alive), oauth2.SetAuthURLParam("prompt", "none"))
			if q.Get("code") == "" {
				t.Errorf("prompt=none for a user who consented before the restart: %v, want a code", q)
			}
		}},
		{"revoked grant needs consent again", func(t *testing.T) {
			q := h2.authorize(t, consent{}, oauth2.SetAuthURLParam("login_hint", revoked), oauth2.SetAuthURLParam("prompt", "none"))
			if q.Get("error") != "consent_required" {
				t.Errorf("prompt=none for a revoked user: %v, want error=consent_required", q)
			}
		}},
		{"revoked refresh token stays revoked", func(t *testing.T) {
			status, body := h2.tokenForm(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {gone.RefreshToken}})
			if e, _ := oauthErr(body); status != 400 || e != "invalid_grant" {
				t.Errorf("refresh: %d %v, want 400 invalid_grant", status, body)
			}
		}},
		{"revoked access token stays revoked", func(t *testing.T) {
			if res, body := h2.gmailGET(t, gone.AccessToken, "/gmail/v1/users/me/messages"); res.StatusCode != 401 {
				t.Errorf("Gmail: %d %v, want 401", res.StatusCode, body)
			}
		}},
		{"token lists are kept", func(t *testing.T) {
			if got := h2.fake.RefreshTokens(alive); !slices.Equal(got[:len(refreshBefore)], refreshBefore) {
				t.Errorf("refresh tokens %v, want %v first", got, refreshBefore)
			}
			if got := h2.fake.AccessTokens(alive); !slices.Equal(got[:len(accessBefore)], accessBefore) {
				t.Errorf("access tokens %v, want %v first", got, accessBefore)
			}
		}},
		{"mailbox set with SetMailbox is kept", func(t *testing.T) {
			h2.fake.mu.Lock()
			mb := h2.fake.users[custom].mailbox
			h2.fake.mu.Unlock()
			if mb == nil || len(mb.msgs) != 2 || mb.msgs[0].ID != "custom-2" || mb.msgs[1].Subject != "kept" || !mb.msgs[0].hasLabel("UNREAD") {
				t.Errorf("mailbox %+v, want custom-2 then custom-1", mb)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.check)
	}

	// What the second fake issued survives a second restart.
	latest := h2.fake.AccessTokens(alive)
	h3 := durableHarness(t, path, clock)
	if got := h3.fake.AccessTokens(alive); !slices.Equal(got, latest) {
		t.Errorf("after a second restart: %d access tokens, want %d", len(got), len(latest))
	}
	if _, err := h3.gmail(t, latest[len(latest)-1]).Users.Messages.List("me").Do(); err != nil {
		t.Errorf("Gmail with the access token issued by the second fake: %v", err)
	}
	checkStateFileMode(t, path)
}

// TestStateFileKeepsEveryChange: each kind of change is saved as it
// happens, so a fake opened right after it sees it.
func TestStateFileKeepsEveryChange(t *testing.T) {
	const email = "changes@example.com"
	tests := []struct {
		name   string
		change func(t *testing.T, h *harness, clock *fakeClock, tok *oauth2.Token)
		// refreshOK and gmailOK are what the token from before the change
		// does at the reopened fake.
		refreshOK, gmailOK bool
	}{
		{"nothing", func(*testing.T, *harness, *fakeClock, *oauth2.Token) {}, true, true},
		{"RevokeGrant", func(t *testing.T, h *harness, _ *fakeClock, _ *oauth2.Token) { h.fake.RevokeGrant(email) }, false, false},
		{"revoking the access token", func(t *testing.T, h *harness, _ *fakeClock, tok *oauth2.Token) {
			if status, body := h.postForm(t, "/revoke", url.Values{"token": {tok.AccessToken}}); status != 200 {
				t.Fatalf("revoke: %d %v", status, body)
			}
		}, false, false},
		{"ExpireAccessTokens", func(t *testing.T, h *harness, _ *fakeClock, _ *oauth2.Token) { h.fake.ExpireAccessTokens(email) }, true, false},
		{"refresh token idle for too long", func(t *testing.T, h *harness, clock *fakeClock, tok *oauth2.Token) {
			// Kept alive by the clock going back, unless it was marked dead
			// when refused.
			clock.Advance(refreshTokenIdleLimit)
			status, body := h.tokenForm(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}})
			if e, _ := oauthErr(body); status != 400 || e != "invalid_grant" {
				t.Fatalf("idle refresh: %d %v, want invalid_grant", status, body)
			}
			clock.Advance(-refreshTokenIdleLimit)
		}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			path := filepath.Join(t.TempDir(), "state.json")
			h := durableHarness(t, path, clock)
			tok := h.tokenFor(t, email)
			tt.change(t, h, clock, tok)

			h2 := durableHarness(t, path, clock)
			status, body := h2.tokenForm(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}})
			if got := status == 200; got != tt.refreshOK {
				t.Errorf("refresh at the reopened fake: %d %v, want success %v", status, body, tt.refreshOK)
			}
			res, body := h2.gmailGET(t, tok.AccessToken, "/gmail/v1/users/me/messages?maxResults=1")
			if got := res.StatusCode == 200; got != tt.gmailOK {
				t.Errorf("Gmail at the reopened fake: %d %v, want success %v", res.StatusCode, body, tt.gmailOK)
			}
			checkStateFileMode(t, path)
		})
	}
}

// TestStateFileConcurrentRefreshes: refreshes racing each other are all
// saved.
func TestStateFileConcurrentRefreshes(t *testing.T) {
	clock := newFakeClock()
	path := filepath.Join(t.TempDir(), "state.json")
	h := durableHarness(t, path, clock)
	tok := h.tokenFor(t, DemoEmail)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 3 {
				stale := *tok
				stale.Expiry = time.Now().Add(-time.Minute)
				if _, err := h.conf.TokenSource(context.Background(), &stale).Token(); err != nil {
					t.Errorf("refresh: %v", err)
				}
			}
		})
	}
	wg.Wait()
	want := h.fake.AccessTokens(DemoEmail)
	if len(want) != 1+8*3 {
		t.Fatalf("%d access tokens, want %d", len(want), 1+8*3)
	}
	again, err := Open(Options{StateFile: path, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if got := again.AccessTokens(DemoEmail); !slices.Equal(got, want) {
		t.Errorf("reopened: %d access tokens, want the %d issued", len(got), len(want))
	}
	checkStateFileMode(t, path)
}

// TestStateFileMissingStartsFresh: Open on a missing file starts afresh and
// writes the file at once, with mode 0600, even where a looser file was.
func TestStateFileMissingStartsFresh(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "fakegoogle.json")
	s, err := Open(Options{StateFile: path})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if len(s.RefreshTokens(DemoEmail)) != 0 {
		t.Errorf("a fresh fake has refresh tokens")
	}
	checkStateFileMode(t, path)

	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err = Open(Options{StateFile: path})
	if err != nil {
		t.Fatalf("reopening: %v", err)
	}
	s.RevokeGrant(DemoEmail) // nothing to revoke: no save
	s.SetMailbox(DemoEmail, nil)
	checkStateFileMode(t, path)

	if _, err := Open(Options{StateFile: filepath.Join(dir, "missing-folder", "state.json")}); err == nil {
		t.Error("Open in a missing folder succeeded; it cannot save there")
	}
}

// TestStateFileCorruptIsRefused: Open refuses a state file it cannot use,
// says which, and leaves it as it was; New panics instead.
func TestStateFileCorruptIsRefused(t *testing.T) {
	good, err := os.ReadFile(func() string {
		path := filepath.Join(t.TempDir(), "good.json")
		if _, err := Open(Options{StateFile: path}); err != nil {
			t.Fatal(err)
		}
		return path
	}())
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(good, &doc); err != nil {
		t.Fatalf("the state file is not JSON: %v", err)
	}
	edit := func(f func(map[string]any)) string {
		var d map[string]any
		json.Unmarshal(good, &d)
		f(d)
		b, _ := json.Marshal(d)
		return string(b)
	}
	tests := []struct {
		name, content, wantErr string
	}{
		{"empty", "", "decoding"},
		{"not JSON", "hello", "decoding"},
		{"truncated", string(good[:len(good)/2]), "decoding"},
		{"JSON null", "null", "format version 0"},
		{"data after the document", string(good) + "{}", "data after"},
		{"other version", edit(func(d map[string]any) { d["version"] = 2 }), "format version 2"},
		{"unknown field", edit(func(d map[string]any) { d["extra"] = true }), "unknown field"},
		{"bad signing key", edit(func(d map[string]any) { d["signing_key"] = "AAAA" }), "signing_key"},
		{"short sealing key", edit(func(d map[string]any) { d["sealing_key"] = "AAAA" }), "sealing_key"},
		{"user listed twice", edit(func(d map[string]any) {
			d["users"] = []any{map[string]any{"email": "a@example.com"}, map[string]any{"email": "a@example.com"}}
		}), "listed twice"},
		{"bad email", edit(func(d map[string]any) { d["users"] = []any{map[string]any{"email": "Not An Email"}} }), "not a normalized email"},
		{"repeated token", edit(func(d map[string]any) {
			tk := map[string]any{"value": "1//x", "client_id": DefaultClientID, "scopes": nil, "issued": time.Time{}, "last_used": time.Time{}}
			d["users"] = []any{map[string]any{"email": "a@example.com", "refresh_tokens": []any{tk, tk}}}
		}), "repeated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "fakegoogle.json")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := Open(Options{StateFile: path})
			if err == nil || s != nil {
				t.Fatalf("Open = %v, %v; want an error", s, err)
			}
			for _, want := range []string{path, tt.wantErr, "left as it is"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(after, []byte(tt.content)) {
				t.Errorf("the refused file was changed to %q", after)
			}
			checkStateFileMode(t, path)
			func() {
				defer func() {
					if r := recover(); r == nil || !strings.Contains(r.(string), path) {
						t.Errorf("New panicked with %v, want the error naming %s", r, path)
					}
				}()
				New(Options{StateFile: path})
			}()
		})
	}
}

// TestStateFileSaveFailure: a change that cannot be saved fails the request
// that made it, and the next save that works writes it too.
func TestStateFileSaveFailure(t *testing.T) {
	clock := newFakeClock()
	path := filepath.Join(t.TempDir(), "state.json")
	h := durableHarness(t, path, clock)
	tok := h.tokenFor(t, DemoEmail)

	// A folder where the file was makes every save fail, even as root.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}
	status, body := h.tokenForm(t, refresh)
	if e, d := oauthErr(body); status != 500 || e != "internal_failure" || !strings.Contains(d, "saving the state") {
		t.Errorf("refresh while the state cannot be saved: %d %v, want 500 internal_failure", status, body)
	}
	if status, body := h.postForm(t, "/revoke", url.Values{"token": {tok.AccessToken}}); status != 500 {
		t.Errorf("revoke while the state cannot be saved: %d %v, want 500", status, body)
	}

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	h.fake.SetMailbox("later@example.com", nil) // saves everything so far
	again, err := Open(Options{StateFile: path, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := again.RefreshTokens(DemoEmail), h.fake.RefreshTokens(DemoEmail); !slices.Equal(got, want) {
		t.Errorf("refresh tokens %v after the save worked again, want %v", got, want)
	}
	again.mu.Lock()
	dead := again.refresh[tok.RefreshToken].dead
	again.mu.Unlock()
	if !dead {
		t.Error("the revocation that failed to save was lost by the next save")
	}
	checkStateFileMode(t, path)
}

func TestSeedStateFile_OpensWithTheSharedKeyAndIsNotRewritten(t *testing.T) {
	path := filepath.Join(t.TempDir(), StateFileName)
	if err := SeedStateFile(path); err != nil {
		t.Fatal(err)
	}
	seeded, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("seeded file: %v, %v; want mode 0600", fi, err)
	}
	s, err := Open(Options{StateFile: path})
	if err != nil {
		t.Fatal(err)
	}
	if !s.signer.key.Equal(sharedSigner().key) {
		t.Error("the seeded state's signing key is not the process's shared key")
	}
	if err := SeedStateFile(path); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(path); !bytes.Equal(again, seeded) {
		t.Error("seeding an existing state file rewrote it")
	}
}
