package app

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/config"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/fakegoogle"
)

// trustedApp is an origin in ALLOWED_ORIGINS.
const trustedApp = "https://app.example"

// post sends a POST to a function, with the jar's cookies.
func (h *harness) post(target string, hdr ...string) *http.Response {
	h.t.Helper()
	return h.do(http.MethodPost, target, hdr...)
}

// refreshAtFake asks the fake Google's token endpoint to refresh rt, as the
// App's client would, and returns the status.
func refreshAtFake(h *harness, rt string) int {
	h.t.Helper()
	resp, err := h.app.hc.PostForm(h.fakeURL+"/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt},
		"client_id": {h.fake.ClientID()}, "client_secret": {h.fake.ClientSecret()}})
	if err != nil {
		h.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// gmailAtFake lists messages at the fake Gmail with access token at and
// returns the status.
func gmailAtFake(h *harness, at string) int {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.fakeURL+"/gmail/v1/users/me/messages", nil)
	req.Header.Set("Authorization", "Bearer "+at)
	resp, err := h.app.hc.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// sessionCleared reports whether resp deletes the session cookie in a way
// a browser honours for a __Host- cookie (Secure, Path=/).
func sessionCleared(resp *http.Response) bool {
	for _, c := range resp.Cookies() {
		if c.Name == secSessionCookie && c.MaxAge < 0 && c.Value == "" && c.Secure && c.Path == "/" && c.HttpOnly {
			return true
		}
	}
	return false
}

type disconnectAnswer struct {
	Status          string `json:"status"`
	Revoked         bool   `json:"revoked"`
	RevocationError string `json:"revocation_error"`
}

func TestDisconnect_RevokesAtGoogleDeletesRecordAndClearsSession(t *testing.T) {
	h := loggedIn(t)
	rts, ats := h.fake.RefreshTokens(demo), h.fake.AccessTokens(demo)
	if len(rts) != 1 || len(ats) != 1 || refreshAtFake(h, rts[0]) != http.StatusOK {
		t.Fatalf("setup: %d refresh and %d access tokens", len(rts), len(ats))
	}
	ats = h.fake.AccessTokens(demo) // the check above refreshed once more
	oldSession := h.jar[secSessionCookie]

	resp := h.post("/Disconnect")
	if resp.StatusCode != http.StatusOK || !sessionCleared(resp) {
		t.Fatalf("status %d, session cleared %v: %s", resp.StatusCode, sessionCleared(resp), body(resp))
	}
	if a := decode[disconnectAnswer](t, resp); a.Status != "disconnected" || !a.Revoked || a.RevocationError != "" {
		t.Fatalf("answer %+v", a)
	}
	if n := h.fake.Count(fakegoogle.CountRevoke); n != 1 {
		t.Fatalf("%d revocations at Google, want 1", n)
	}
	if h.record(demo) != nil {
		t.Fatal("the stored record was not deleted")
	}
	if got := refreshAtFake(h, rts[0]); got != http.StatusBadRequest {
		t.Fatalf("the revoked refresh token still refreshes: %d", got)
	}
	for _, at := range ats {
		if got := gmailAtFake(h, at); got != http.StatusUnauthorized {
			t.Fatalf("an access token of the revoked grant still reads Gmail: %d", got)
		}
	}

	// After Disconnect, ListMessages asks for authorization: without the
	// cookie (cleared), and with the old cookie a tab kept.
	for name, jar := range map[string]map[string]string{"cleared session": h.jar, "kept old session": {secSessionCookie: oldSession}} {
		h.jar = jar
		resp := h.get("/ListMessages", "Accept", jsonAccept)
		if e := decode[apiError](t, resp); resp.StatusCode != http.StatusUnauthorized || e.Code != "authorization_required" {
			t.Fatalf("%s: ListMessages %d %+v", name, resp.StatusCode, e)
		}
	}
}

func TestDisconnect_Twice_200Both(t *testing.T) {
	h := loggedIn(t)
	oldSession := h.jar[secSessionCookie]
	first := decode[disconnectAnswer](t, h.post("/Disconnect"))
	if first.Status != "disconnected" || !first.Revoked {
		t.Fatalf("first: %+v", first)
	}
	for name, jar := range map[string]map[string]string{"no session any more": {}, "the old session": {secSessionCookie: oldSession}} {
		h.jar = jar
		resp := h.post("/Disconnect")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d: %s", name, resp.StatusCode, body(resp))
		}
		if a := decode[disconnectAnswer](t, resp); a.Status != "disconnected" || a.Revoked {
			t.Fatalf("%s: answer %+v", name, a)
		}
	}
	if n := h.fake.Count(fakegoogle.CountRevoke); n != 1 {
		t.Fatalf("%d revocations, want 1", n)
	}
}

func TestDisconnect_OtherMethods_405NothingChanged(t *testing.T) {
	h := loggedIn(t)
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		resp := h.do(m, "/Disconnect")
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
			t.Fatalf("%s: status %d Allow %q", m, resp.StatusCode, resp.Header.Get("Allow"))
		}
	}
	if h.record(demo) == nil || h.fake.Count(fakegoogle.CountRevoke) != 0 || h.jar[secSessionCookie] == "" {
		t.Fatal("a refused method disconnected")
	}
}

// TestDisconnect_CrossSiteRefused: Disconnect changes state, so a page on
// another site must not be able to trigger it (http.CrossOriginProtection),
// while same-origin pages, the allowed origins and non-browser clients can.
func TestDisconnect_CrossSiteRefused(t *testing.T) {
	tests := []struct {
		name string
		hdr  []string
		ok   bool
	}{
		{"Sec-Fetch-Site: cross-site", []string{"Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"}, false},
		{"Sec-Fetch-Site: cross-site without Origin", []string{"Sec-Fetch-Site", "cross-site"}, false},
		{"Sec-Fetch-Site: same-site (a sibling subdomain)", []string{"Sec-Fetch-Site", "same-site", "Origin", "https://other.fn.example"}, false},
		{"old browser: Origin evil, no Sec-Fetch-Site", []string{"Origin", "https://evil.example"}, false},
		{"old browser: Origin null (sandboxed page)", []string{"Origin", "null"}, false},
		{"cross-site from an origin that merely starts like an allowed one", []string{"Sec-Fetch-Site", "cross-site", "Origin", trustedApp + ".evil.example"}, false},
		{"Sec-Fetch-Site: same-origin", []string{"Sec-Fetch-Site", "same-origin", "Origin", base}, true},
		{"Sec-Fetch-Site: none (typed or bookmarked)", []string{"Sec-Fetch-Site", "none"}, true},
		{"no headers at all (a non-browser client)", nil, true},
		{"old browser: same Origin, no Sec-Fetch-Site", []string{"Origin", base}, true},
		{"cross-site from an ALLOWED_ORIGINS origin", []string{"Sec-Fetch-Site", "cross-site", "Origin", trustedApp}, true},
		{"old browser from an ALLOWED_ORIGINS origin", []string{"Origin", trustedApp}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := loggedIn(t, func(c *config.Config, _ *Deps) { c.AllowedOrigins = []string{trustedApp} })
			resp := h.post("/Disconnect", tt.hdr...)
			if tt.ok {
				if a := decode[disconnectAnswer](t, resp); resp.StatusCode != http.StatusOK || !a.Revoked || h.record(demo) != nil {
					t.Fatalf("status %d, answer %+v, record deleted %v", resp.StatusCode, a, h.record(demo) == nil)
				}
				return
			}
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("status %d, want 403: %s", resp.StatusCode, body(resp))
			}
			if e := decode[apiError](t, resp); e.Code != "forbidden" {
				t.Fatalf("answer %+v", e)
			}
			if h.record(demo) == nil || h.fake.Count(fakegoogle.CountRevoke) != 0 || len(resp.Cookies()) != 0 {
				t.Fatal("a cross-site request disconnected, revoked or touched the session")
			}
		})
	}
}

// TestDisconnect_RevocationFails_RecordDeletedAllTheSame: the user asked to
// disconnect; a failure at Google must not keep the token here. The answer
// says the revocation did not happen.
func TestDisconnect_RevocationFails_RecordDeletedAllTheSame(t *testing.T) {
	tests := []struct {
		name   string
		revoke func(w http.ResponseWriter)
	}{
		{"503", func(w http.ResponseWriter) { w.WriteHeader(http.StatusServiceUnavailable) }},
		{"500 with a body", func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusInternalServerError)
			w.Write([]byte(`{"error":"internal_failure"}`))
		}},
		{"connection dropped", func(w http.ResponseWriter) {
			c, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				c.Close()
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := loggedIn(t)
			rt := h.fake.RefreshTokens(demo)[0]
			h.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
				if r.URL.Path == "/revoke" {
					tt.revoke(w)
					return true
				}
				return false
			})
			resp := h.post("/Disconnect")
			if resp.StatusCode != http.StatusOK || !sessionCleared(resp) {
				t.Fatalf("status %d, session cleared %v: %s", resp.StatusCode, sessionCleared(resp), body(resp))
			}
			a := decode[disconnectAnswer](t, resp)
			if a.Status != "disconnected" || a.Revoked || !strings.Contains(a.RevocationError, "myaccount.google.com/permissions") {
				t.Fatalf("answer %+v", a)
			}
			if h.record(demo) != nil {
				t.Fatal("the record was kept because Google failed")
			}
			h.setIntercept(nil)
			if refreshAtFake(h, rt) != http.StatusOK {
				t.Fatal("the test's premise: the refresh token was not revoked at Google")
			}
		})
	}
}

// TestDisconnect_SessionMode_UserParameterRefused: in session mode a user=
// never names whom to disconnect.
func TestDisconnect_SessionMode_UserParameterRefused(t *testing.T) {
	h := newHarness(t)
	const victim = "victim@example.com"
	wantStatus(t, h.login(victim), http.StatusOK)
	h.jar = map[string]string{}
	wantStatus(t, h.login(demo), http.StatusOK)
	for _, user := range []string{h.fake.UserSub(victim), url.QueryEscape(victim), h.fake.UserSub(demo)} {
		resp := h.post("/Disconnect?user=" + user)
		if e := decode[apiError](t, resp); resp.StatusCode != http.StatusBadRequest || e.Code != "invalid_request" {
			t.Fatalf("user=%s: %d %+v", user, resp.StatusCode, e)
		}
	}
	if h.record(victim) == nil || h.record(demo) == nil || h.fake.Count(fakegoogle.CountRevoke) != 0 {
		t.Fatal("a user= parameter disconnected someone")
	}
}

// TestDisconnect_IAM: an allowed caller disconnects a user named by user=;
// any other caller is refused and nothing changes.
func TestDisconnect_IAM(t *testing.T) {
	tests := []struct {
		name   string
		user   func(h *harness) string
		token  string
		status int
	}{
		{"allowed caller, user by sub", func(h *harness) string { return h.fake.UserSub(demo) }, callerToken(nil), http.StatusOK},
		{"allowed caller, user by email", func(*harness) string { return url.QueryEscape(demo) }, callerToken(nil), http.StatusOK},
		{"allowed caller, no user=", func(*harness) string { return "" }, callerToken(nil), http.StatusBadRequest},
		{"forged token", func(h *harness) string { return h.fake.UserSub(demo) }, forgerSigner().sign(nil, callerClaims()), http.StatusUnauthorized},
		{"caller not on the allow-list", func(h *harness) string { return h.fake.UserSub(demo) },
			callerToken(func(c map[string]any) { c["email"] = "intruder@x.iam.gserviceaccount.com" }), http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := iamHarness(t)
			target := "/Disconnect"
			if u := tt.user(h); u != "" {
				target += "?user=" + u
			}
			resp := h.post(target, "Authorization", "Bearer "+tt.token)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body(resp))
			}
			if tt.status == http.StatusOK {
				if a := decode[disconnectAnswer](t, resp); !a.Revoked || h.record(demo) != nil {
					t.Fatalf("answer %+v, record deleted %v", a, h.record(demo) == nil)
				}
				e := decode[apiError](t, h.get("/ListMessages?user="+h.fake.UserSub(demo), "Authorization", "Bearer "+callerToken(nil)))
				if e.Code != "authorization_required" {
					t.Fatalf("ListMessages after Disconnect: %+v", e)
				}
				return
			}
			if h.record(demo) == nil || h.fake.Count(fakegoogle.CountRevoke) != 0 {
				t.Fatal("a refused caller disconnected the user")
			}
		})
	}
}

// TestDisconnect_IAM_SessionAloneRefused: in IAM mode servers call
// Disconnect, as they call ListMessages. A browser's session, with or
// without user=, disconnects nobody: the only way in is an allowed
// caller's ID token, which removing the caller's access ends.
func TestDisconnect_IAM_SessionAloneRefused(t *testing.T) {
	v, _ := newIDTokenValidator(t)
	h := newHarness(t, iamMode(v))
	wantStatus(t, h.login(demo), http.StatusOK)
	if h.jar[secSessionCookie] == "" {
		t.Fatal("no session cookie to try")
	}
	h.fake.ResetCounts()
	for _, q := range []string{"", "?user=" + h.fake.UserSub(demo), "?user=" + url.QueryEscape(demo)} {
		for _, hdr := range [][]string{nil, {"Sec-Fetch-Site", "same-origin", "Origin", base}} {
			resp := h.post("/Disconnect"+q, hdr...)
			if e := decode[apiError](t, resp); resp.StatusCode != http.StatusUnauthorized || e.Code != "unauthenticated" {
				t.Fatalf("Disconnect%s with the session alone: %d %+v, want 401 unauthenticated", q, resp.StatusCode, e)
			}
		}
	}
	if h.record(demo) == nil || googleCalls(h) != 0 || h.jar[secSessionCookie] == "" {
		t.Fatal("a session disconnected the user in IAM mode")
	}
}
