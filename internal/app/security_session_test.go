package app

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/config"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/cookies"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/fakegoogle"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/keyring"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/messages"
)

const secSessionCookie = "__Host-gmail_session"

// secEmptyCookie stands for a cookie sent with an empty value.
const secEmptyCookie = "\x00empty"

// secRings parses a key set as the App does.
func secRings(t testing.TB, keySet []byte) *rings {
	t.Helper()
	rs, err := parseRings(keySet)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// secKeys is the key set the harness's App reads.
func (h *harness) secKeys() []byte {
	h.keys.mu.Lock()
	defer h.keys.mu.Unlock()
	return h.keys.b
}

// secWithKey returns keySet with a new random key id added, primary if asked.
func secWithKey(t testing.TB, keySet []byte, id string, primary bool) []byte {
	t.Helper()
	var ks struct {
		Primary string            `json:"primary"`
		Keys    map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(keySet, &ks); err != nil {
		t.Fatal(err)
	}
	var fresh struct {
		Keys map[string]string `json:"keys"`
	}
	json.Unmarshal(keyring.Generate(id), &fresh)
	ks.Keys[id] = fresh.Keys[id]
	if primary {
		ks.Primary = id
	}
	b, _ := json.Marshal(ks)
	return b
}

// secWithoutKey returns keySet without key id.
func secWithoutKey(t testing.TB, keySet []byte, id string) []byte {
	t.Helper()
	var ks map[string]any
	json.Unmarshal(keySet, &ks)
	delete(ks["keys"].(map[string]any), id)
	b, _ := json.Marshal(ks)
	return b
}

// secKeyIDOf is the id of the key a cookie value was sealed under (it is
// stored in clear in front of the ciphertext).
func secKeyIDOf(t testing.TB, value string) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil || len(b) < 1 || len(b) < 1+int(b[0]) {
		t.Fatalf("not a sealed cookie: %q", value)
	}
	return string(b[1 : 1+int(b[0])])
}

// flip changes one bit of the byte at i (negative: from the end) of a
// sealed value's raw bytes.
func secFlip(value string, i int) string {
	b, _ := base64.RawURLEncoding.DecodeString(value)
	if i < 0 {
		i += len(b)
	}
	b[i] ^= 1
	return base64.RawURLEncoding.EncodeToString(b)
}

// TestListMessages_SessionRefused: in session mode only an authentic,
// unexpired session cookie names the user. Every other cookie gets 401
// authorization_required and nothing reaches Gmail.
func TestListMessages_SessionRefused(t *testing.T) {
	tests := []struct {
		name string
		// cookie returns the session cookie to send ("" sends none), given
		// the harness and the genuine value.
		cookie func(h *harness, genuine string) string
	}{
		{"no cookie", func(*harness, string) string { return "" }},
		{"empty cookie", func(*harness, string) string { return secEmptyCookie }},
		{"expired", func(h *harness, g string) string { h.clock.Advance(h.cfg.SessionTTL + time.Second); return g }},
		{"expired, sealed by us with a past expiry", func(h *harness, _ string) string {
			v, _ := cookies.Encode(secRings(h.t, h.secKeys()).cookie, secSessionCookie,
				session{Sub: h.fake.UserSub(demo)}, h.clock.Now().Add(-time.Second))
			return v
		}},
		{"sealed by an unknown key with our key id", func(h *harness, _ string) string {
			v, _ := cookies.Encode(secRings(h.t, keyring.Generate("k1")).cookie, secSessionCookie,
				session{Sub: h.fake.UserSub(demo)}, h.clock.Now().Add(time.Hour))
			return v
		}},
		{"sealed by an unknown key id", func(h *harness, _ string) string {
			v, _ := cookies.Encode(secRings(h.t, keyring.Generate("k9")).cookie, secSessionCookie,
				session{Sub: h.fake.UserSub(demo)}, h.clock.Now().Add(time.Hour))
			return v
		}},
		{"session of another deployment", func(h *harness, _ string) string {
			other := newHarness(h.t)
			wantStatus(h.t, other.login(demo), http.StatusOK)
			return other.jar[secSessionCookie]
		}},
		{"tampered: last byte (GCM tag)", func(_ *harness, g string) string { return secFlip(g, -1) }},
		{"tampered: a ciphertext byte", func(_ *harness, g string) string { return secFlip(g, 20) }},
		{"tampered: key id", func(_ *harness, g string) string { return secFlip(g, 1) }},
		{"tampered: truncated", func(_ *harness, g string) string { return g[:len(g)-4] }},
		{"tampered: extended", func(_ *harness, g string) string { return g + "AAAA" }},
		{"tampered: not base64", func(_ *harness, g string) string { return g[:10] + "*" + g[11:] }},
		{"too long", func(_ *harness, g string) string { return strings.Repeat("A", cookies.MaxLen+1) }},
		{"sealed for another cookie name (the flow cookie's value)", func(h *harness, _ string) string {
			h.authorize("")
			for k, v := range h.jar {
				if strings.HasPrefix(k, "__Host-oauth_flow_") {
					return v
				}
			}
			h.t.Fatal("no flow cookie")
			return ""
		}},
		{"sealed with the token ring instead of the cookie ring", func(h *harness, _ string) string {
			v, _ := cookies.Encode(secRings(h.t, h.secKeys()).token, secSessionCookie,
				session{Sub: h.fake.UserSub(demo)}, h.clock.Now().Add(time.Hour))
			return v
		}},
		{"sealed by the raw key, not the cookie key derived from it", func(h *harness, _ string) string {
			raw, _ := keyring.Parse(h.secKeys())
			v, _ := cookies.Encode(raw, secSessionCookie, session{Sub: h.fake.UserSub(demo)}, h.clock.Now().Add(time.Hour))
			return v
		}},
		{"authentic but names no user", func(h *harness, _ string) string {
			v, _ := cookies.Encode(secRings(h.t, h.secKeys()).cookie, secSessionCookie, session{Email: demo}, h.clock.Now().Add(time.Hour))
			return v
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := loggedIn(t)
			genuine := h.jar[secSessionCookie]
			if genuine == "" {
				t.Fatal("no session after login")
			}
			v := tt.cookie(h, genuine)
			h.jar = map[string]string{}
			switch v {
			case "":
			case secEmptyCookie:
				h.jar[secSessionCookie] = ""
			default:
				h.jar[secSessionCookie] = v
			}
			h.fake.ResetCounts()
			resp := h.get("/ListMessages", "Accept", jsonAccept)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d: %s", resp.StatusCode, body(resp))
			}
			if e := decode[apiError](t, resp); e.Code != "authorization_required" || !strings.HasPrefix(e.AuthorizationURL, base+"/Authorize") {
				t.Fatalf("answer %+v", e)
			}
			if h.fake.Count(fakegoogle.CountGmailList) != 0 || h.fake.Count(fakegoogle.CountTokenRefresh) != 0 {
				t.Fatalf("Google was called: %v", h.fake.Counts())
			}
		})
	}
}

// TestListMessages_SessionMode_UserParameterRefused: user= never names the
// user in session mode, not even the session's own user: 400, Gmail not
// called.
func TestListMessages_SessionMode_UserParameterRefused(t *testing.T) {
	h := loggedIn(t)
	const other = "victim@example.com"
	wantStatus(t, h.login(other), http.StatusOK) // the jar now names other; log demo in again below
	h.jar = map[string]string{}
	wantStatus(t, h.login(demo), http.StatusOK)
	tests := []struct{ name, query string }{
		{"another user's sub", "user=" + h.fake.UserSub(other)},
		{"another user's email", "user=" + url.QueryEscape(other)},
		{"the session's own sub", "user=" + h.fake.UserSub(demo)},
		{"empty", "user="},
		{"given twice", "user=a&user=b"},
	}
	for _, tt := range tests {
		for _, withSession := range []bool{true, false} {
			t.Run(tt.name+map[bool]string{true: ", with session", false: ", without session"}[withSession], func(t *testing.T) {
				jar := h.jar
				if !withSession {
					h.jar = map[string]string{}
				}
				defer func() { h.jar = jar }()
				h.fake.ResetCounts()
				resp := h.get("/ListMessages?"+tt.query, "Accept", jsonAccept)
				if resp.StatusCode != http.StatusBadRequest {
					t.Fatalf("status %d: %s", resp.StatusCode, body(resp))
				}
				if e := decode[apiError](t, resp); e.Code != "invalid_request" {
					t.Fatalf("answer %+v", e)
				}
				if googleCalls(h) != 0 {
					t.Fatalf("Google was called: %v", h.fake.Counts())
				}
			})
		}
	}
}

// TestListMessages_SessionNamesOnlyItsOwnUser: two users, two sessions;
// each lists its own mailbox.
func TestListMessages_SessionNamesOnlyItsOwnUser(t *testing.T) {
	h := newHarness(t)
	const alice, bob = "alice@example.com", "bob@example.com"
	h.fake.SetMailbox(alice, []fakegoogle.Message{{ID: "alice-1", Subject: "a", Date: h.clock.Now()}})
	h.fake.SetMailbox(bob, []fakegoogle.Message{{ID: "bob-1", Subject: "b", Date: h.clock.Now()}, {ID: "bob-2", Subject: "b", Date: h.clock.Now()}})
	jars := map[string]map[string]string{}
	for _, u := range []string{alice, bob} {
		h.jar = map[string]string{}
		wantStatus(t, h.login(u), http.StatusOK)
		jars[u] = h.jar
	}
	for u, want := range map[string]string{alice: "alice-1", bob: "bob-1"} {
		h.jar = jars[u]
		p := decode[messages.Page](t, h.get("/ListMessages"))
		if len(p.Messages) == 0 || !strings.HasPrefix(p.Messages[0].ID, strings.TrimSuffix(want, "-1")) {
			t.Fatalf("%s listed %+v", u, p.Messages)
		}
		for _, m := range p.Messages {
			if !strings.HasPrefix(m.ID, strings.Split(u, "@")[0]) {
				t.Fatalf("%s's session listed another user's message %s", u, m.ID)
			}
		}
	}
}

// TestListMessages_SessionSealedUnderOldKey_WorksAfterNewPrimaryKey: a
// rotation adds a new primary key and keeps the old one; sessions (and
// stored tokens) sealed under the old key keep working, and new ones are
// sealed under the new key. Once the old key is removed, its sessions are
// refused.
func TestListMessages_SessionSealedUnderOldKey_WorksAfterNewPrimaryKey(t *testing.T) {
	h := loggedIn(t, func(c *config.Config, _ *Deps) { c.SecretTTL = time.Second })
	old := h.jar[secSessionCookie]
	if id := secKeyIDOf(t, old); id != "k1" {
		t.Fatalf("session sealed under %q, want k1", id)
	}
	h.keys.set(secWithKey(t, h.secKeys(), "k2", true))
	h.clock.Advance(2 * time.Second) // past SecretTTL: the App reads the new key set
	h.renewSecrets()

	wantStatus(t, h.get("/ListMessages", "Accept", jsonAccept), http.StatusOK)
	h.clock.Advance(time.Hour) // the stored access token (sealed under k1) expires: a refresh opens the k1 refresh token
	wantStatus(t, h.get("/ListMessages", "Accept", jsonAccept), http.StatusOK)
	if rec := h.record(demo); rec.RefreshToken.KeyID != "k2" || rec.AccessToken.KeyID != "k2" {
		t.Fatalf("after a refresh under the new primary, tokens are sealed under %q/%q, want k2", rec.RefreshToken.KeyID, rec.AccessToken.KeyID)
	}

	// A new login seals the session under the new primary.
	h.jar = map[string]string{}
	wantStatus(t, h.login(demo), http.StatusOK)
	if id := secKeyIDOf(t, h.jar[secSessionCookie]); id != "k2" {
		t.Fatalf("new session sealed under %q, want k2", id)
	}

	// Retiring k1 ends the sessions sealed under it.
	h.keys.set(secWithoutKey(t, h.secKeys(), "k1"))
	h.clock.Advance(2 * time.Second)
	h.renewSecrets()
	wantStatus(t, h.get("/ListMessages", "Accept", jsonAccept), http.StatusOK)
	h.jar = map[string]string{secSessionCookie: old}
	if e := decode[apiError](t, h.get("/ListMessages", "Accept", jsonAccept)); e.Code != "authorization_required" {
		t.Fatalf("a session sealed under a removed key: %+v", e)
	}
}
