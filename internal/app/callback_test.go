package app

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/fakegoogle"
)

const demo = fakegoogle.DemoEmail

func TestCallback_FullFlow_StoresRefreshTokenAndSetsSession(t *testing.T) {
	h := newHarness(t)
	redirect := h.consent(h.authorize(""), demo, true, true)
	flow := flowOf(h, redirect)
	resp := h.get(redirect)
	wantStatus(t, resp, http.StatusFound)
	if b := wantStatus(t, h.get("/Callback", "Accept", htmlAccept), http.StatusOK); !strings.Contains(b, "Gmail connected") {
		t.Fatalf("success page: %s", b)
	}
	rec := h.record(demo)
	if !rec.Usable() || !rec.HasScope(fakegoogle.GmailReadonlyScope) || rec.Email != demo {
		t.Fatalf("stored %+v", rec)
	}
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "__Host-gmail_session" {
			session = c
		}
	}
	if !flowCleared(resp, flow) {
		t.Fatalf("the flow cookie %s was not cleared: %v", flow, resp.Header["Set-Cookie"])
	}
	if session == nil || !session.HttpOnly || !session.Secure || session.SameSite != http.SameSiteLaxMode || session.Path != "/" {
		t.Fatalf("session cookie %+v", session)
	}
}

func TestCallback_GoogleError_NothingStored(t *testing.T) {
	tests := []struct {
		name   string
		allow  bool
		query  string
		status int
		code   string
	}{
		{"user denied", false, "", http.StatusForbidden, "access_denied"},
		{"other Google error", true, "error=server_error&state=x", http.StatusBadRequest, "authorization_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			redirect := base + "/Callback?" + tt.query
			if tt.query == "" {
				redirect = h.consent(h.authorize(""), demo, tt.allow, true)
			}
			e := decode[apiError](t, h.callback(redirect, "Accept", jsonAccept))
			if e.Code != tt.code || e.AuthorizationURL == "" {
				t.Fatalf("answer %+v", e)
			}
			if h.record(demo) != nil || h.fake.Count(fakegoogle.CountTokenCode) != 0 {
				t.Fatal("something was exchanged or stored")
			}
		})
	}
}

func TestCallback_StateRefused_400NothingStored(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(h *harness, redirect string) string
	}{
		{"flow cookie missing", func(h *harness, r string) string { clear(h.jar); return r }},
		{"flow cookie tampered", func(h *harness, r string) string {
			for k, v := range h.jar { // a middle character: all its 6 bits count
				i, c := len(v)/2, byte('A')
				if v[i] == c {
					c = 'B'
				}
				h.jar[k] = v[:i] + string(c) + v[i+1:]
			}
			return r
		}},
		{"flow cookie expired", func(h *harness, r string) string { h.clock.Advance(FlowTTL + time.Second); return r }},
		{"state does not match the cookie", func(h *harness, r string) string {
			u, _ := url.Parse(r)
			q := u.Query()
			s := q.Get("state")
			q.Set("state", s[:flowNameLen]+strings.Repeat("x", len(s)-flowNameLen)) // same cookie name, other state
			u.RawQuery = q.Encode()
			return u.String()
		}},
		{"state missing", func(h *harness, r string) string {
			u, _ := url.Parse(r)
			q := u.Query()
			q.Del("state")
			u.RawQuery = q.Encode()
			return u.String()
		}},
		{"cookie signed by an unknown key", func(h *harness, r string) string {
			other := newHarness(h.t)
			other.authorize("")
			for k := range h.jar {
				delete(h.jar, k)
			}
			for k, v := range other.jar {
				h.jar[k] = v
			}
			return r
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			redirect := h.consent(h.authorize(""), demo, true, true)
			e := decode[apiError](t, h.callback(tt.tamper(h, redirect), "Accept", jsonAccept))
			if e.Code != "invalid_state" {
				t.Fatalf("answer %+v", e)
			}
			if h.record(demo) != nil || h.fake.Count(fakegoogle.CountTokenCode) != 0 {
				t.Fatal("the code was exchanged or something stored despite a bad state")
			}
		})
	}
}

func TestCallback_ReusedCode_BackToAuthorizeAndNoSecondToken(t *testing.T) {
	h := newHarness(t)
	redirect := h.consent(h.authorize("return_to=/inbox"), demo, true, true)
	flow := map[string]string{}
	for k, v := range h.jar {
		flow[k] = v
	}
	wantStatus(t, h.callback(redirect), http.StatusFound) // to /inbox
	before := h.record(demo)
	issued := len(h.fake.AccessTokens(demo))

	for k, v := range flow { // replay the same callback with the same flow cookie
		h.jar[k] = v
	}
	resp := h.callback(redirect)
	wantStatus(t, resp, http.StatusFound)
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, base+"/Authorize?") || !strings.Contains(loc, "return_to=%2Finbox") {
		t.Fatalf("redirected to %q, want Authorize keeping return_to", loc)
	}
	if n := len(h.fake.AccessTokens(demo)); n != issued {
		t.Fatalf("a reused code got %d more tokens", n-issued)
	}
	if after := h.record(demo); !after.Version.Equal(before.Version) {
		t.Fatal("the stored record changed on a reused code")
	}
}

func TestCallback_ExpiredCode_BackToAuthorize(t *testing.T) {
	h := newHarness(t)
	redirect := h.consent(h.authorize(""), demo, true, true)
	h.clock.Advance(fakegoogle.DefaultCodeTTL + time.Second) // flow cookie (10 min) still valid
	e := decode[apiError](t, h.callback(redirect, "Accept", jsonAccept))
	if e.Code != "code_exchange_failed" || !strings.HasPrefix(e.AuthorizationURL, base+"/Authorize") {
		t.Fatalf("answer %+v", e)
	}
	if h.record(demo) != nil {
		t.Fatal("stored despite an expired code")
	}
}

func TestCallback_TokenEndpointDown_502NotALoop(t *testing.T) {
	h := newHarness(t)
	redirect := h.consent(h.authorize(""), demo, true, true)
	h.fake.InjectTokenFault(http.StatusServiceUnavailable, "", 1)
	resp := h.callback(redirect, "Accept", jsonAccept)
	if e := decode[apiError](t, resp); resp.StatusCode != http.StatusBadGateway || e.Code != "upstream_unavailable" {
		t.Fatalf("%d %+v", resp.StatusCode, e)
	}
	if resp.Header.Get("Retry-After") == "" || h.record(demo) != nil {
		t.Fatal("want Retry-After and nothing stored")
	}
}

// rewriteToken lets a test change the token endpoint's answer.
func (h *harness) rewriteToken(f func(m map[string]any)) {
	h.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/token" {
			return false
		}
		rec := newRecorder()
		h.fake.ServeHTTP(rec, r)
		var m map[string]any
		if json.Unmarshal(rec.buf.Bytes(), &m) != nil || rec.status != http.StatusOK {
			w.WriteHeader(rec.status)
			w.Write(rec.buf.Bytes())
			return true
		}
		f(m)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(m)
		return true
	})
}

func TestCallback_Identity(t *testing.T) {
	tests := []struct {
		name    string
		rewrite func(m map[string]any)
		status  int
		code    string
	}{
		{"no id_token: userinfo fallback", func(m map[string]any) { delete(m, "id_token") }, http.StatusOK, ""},
		{"id_token for another client", func(m map[string]any) { m["id_token"] = forgeIDToken(m["id_token"], "aud", "other") }, http.StatusBadRequest, "no_identity"},
		{"id_token with another nonce", func(m map[string]any) { m["id_token"] = forgeIDToken(m["id_token"], "nonce", "x") }, http.StatusBadRequest, "no_identity"},
		{"id_token without sub", func(m map[string]any) { m["id_token"] = forgeIDToken(m["id_token"], "sub", nil) }, http.StatusBadGateway, "no_identity"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.rewriteToken(tt.rewrite)
			resp := h.callback(h.consent(h.authorize(""), demo, true, true), "Accept", jsonAccept)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body(resp))
			}
			if tt.code == "" {
				if h.record(demo) == nil || h.fake.Count(fakegoogle.CountUserinfo) != 1 {
					t.Fatal("the userinfo fallback did not store the grant")
				}
				return
			}
			if e := decode[apiError](t, resp); e.Code != tt.code || h.record(demo) != nil {
				t.Fatalf("answer %+v, stored %v", e, h.record(demo) != nil)
			}
		})
	}
}

func TestCallback_GmailUnticked_403NothingStored(t *testing.T) {
	h := newHarness(t)
	resp := h.callback(h.consent(h.authorize(""), demo, true, false), "Accept", htmlAccept)
	b := wantStatus(t, resp, http.StatusForbidden)
	if !strings.Contains(b, "Gmail access was not granted") || !strings.Contains(b, `href="https://fn.example/Authorize?`) {
		t.Fatalf("page: %s", b)
	}
	if h.record(demo) != nil {
		t.Fatal("stored a grant without Gmail")
	}
}

func TestCallback_NoRefreshTokenButOneStored_UsesStored(t *testing.T) {
	h := newHarness(t)
	wantStatus(t, h.login(demo), http.StatusOK)
	first := h.record(demo)
	h.jar = map[string]string{}
	wantStatus(t, h.login(demo), http.StatusOK) // Google sends no refresh token the second time
	second := h.record(demo)
	if string(second.RefreshToken.Ciphertext) != string(first.RefreshToken.Ciphertext) {
		t.Fatal("the stored refresh token was replaced")
	}
	if n := len(h.fake.RefreshTokens(demo)); n != 1 {
		t.Fatalf("Google issued %d refresh tokens, want 1", n)
	}
	if _, ok := h.jar["__Host-gmail_session"]; !ok {
		t.Fatal("no session after the second login")
	}
}

func TestCallback_NoRefreshTokenAndNoneStored_RedirectsWithConsent(t *testing.T) {
	h := newHarness(t)
	wantStatus(t, h.login(demo), http.StatusOK)
	if err := h.store.Delete(t.Context(), h.fake.UserSub(demo)); err != nil { // the store lost it
		t.Fatal(err)
	}
	resp := h.callback(h.consent(h.authorize("return_to=/x"), demo, true, true))
	wantStatus(t, resp, http.StatusFound)
	loc := resp.Header.Get("Location")
	if !strings.Contains(loc, "prompt=consent") || !strings.Contains(loc, "return_to=%2Fx") {
		t.Fatalf("redirect %q, want Authorize with prompt=consent keeping return_to", loc)
	}
	// Following it gets a new refresh token and ends where the user was going.
	googleURL := h.authorize(strings.TrimPrefix(loc, base+"/Authorize?"))
	if !strings.Contains(googleURL, "prompt=consent") {
		t.Fatalf("Google URL lacks prompt=consent: %s", googleURL)
	}
	resp = h.callback(h.consent(googleURL, demo, true, true))
	if wantStatus(t, resp, http.StatusFound); resp.Header.Get("Location") != "/x" || !h.record(demo).Usable() {
		t.Fatalf("ended at %q, stored usable=%v", resp.Header.Get("Location"), h.record(demo).Usable())
	}
}

func TestCallback_ConsentForcedAndStillNoRefreshToken_502NoLoop(t *testing.T) {
	h := newHarness(t)
	h.rewriteToken(func(m map[string]any) { delete(m, "refresh_token") })
	resp := h.callback(h.consent(h.authorize("prompt=consent"), demo, true, true), "Accept", jsonAccept)
	if e := decode[apiError](t, resp); resp.StatusCode != http.StatusBadGateway || e.Code != "no_refresh_token" {
		t.Fatalf("%d %+v", resp.StatusCode, e)
	}
}

func TestCallback_Success_RedirectsToReturnToOrAnswersJSON(t *testing.T) {
	h := newHarness(t)
	resp := h.callback(h.consent(h.authorize("return_to=/app/inbox%3Fx%3D1"), demo, true, true))
	if wantStatus(t, resp, http.StatusFound); resp.Header.Get("Location") != "/app/inbox?x=1" {
		t.Fatalf("Location %q", resp.Header.Get("Location"))
	}
	h2 := newHarness(t)
	got := decode[map[string]any](t, h2.callback(h2.consent(h2.authorize(""), demo, true, true), "Accept", jsonAccept))
	if got["status"] != "authorized" || got["sub"] != h2.fake.UserSub(demo) || got["email"] != demo {
		t.Fatalf("JSON %v", got)
	}
}

func TestCallback_NewerConsentReplacesRefreshToken(t *testing.T) {
	h := newHarness(t)
	wantStatus(t, h.login(demo), http.StatusOK)
	first := h.record(demo)
	h.clock.Advance(time.Second)
	resp := h.callback(h.consent(h.authorize("prompt=consent"), demo, true, true))
	wantStatus(t, resp, http.StatusOK)
	if string(h.record(demo).RefreshToken.Ciphertext) == string(first.RefreshToken.Ciphertext) {
		t.Fatal("a new refresh token from a forced consent was not kept")
	}
}

func TestCallback_Success_RedirectsToCleanURLThatShowsTheSession(t *testing.T) {
	h := newHarness(t)
	resp := h.get(h.consent(h.authorize(""), demo, true, true))
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/Callback" {
		t.Fatalf("%d to %q, want 302 to the bare Callback so a reload does not replay the code", resp.StatusCode, resp.Header.Get("Location"))
	}
	if b := wantStatus(t, h.get("/Callback", "Accept", htmlAccept), http.StatusOK); !strings.Contains(b, "connected for "+demo) {
		t.Fatalf("page %s", b)
	}
	h.jar = map[string]string{}
	if b := wantStatus(t, h.get("/Callback", "Accept", htmlAccept), http.StatusBadRequest); !strings.Contains(b, "start at Authorize") {
		t.Fatalf("bare Callback without a session: page %s", b)
	}
}

// TestCallback_BareWithJSON_SaysWhoIsConnected: a page learns the session's
// account from the bare Callback as JSON, and without a session gets 401
// authorization_required with where to send the user.
func TestCallback_BareWithJSON_SaysWhoIsConnected(t *testing.T) {
	h := newHarness(t)
	resp := h.get("/Callback", "Accept", jsonAccept)
	if e := decode[apiError](t, resp); resp.StatusCode != http.StatusUnauthorized || e.Code != "authorization_required" || !strings.HasPrefix(e.AuthorizationURL, base+"/Authorize") {
		t.Fatalf("without a session: %d %+v, want 401 authorization_required with the Authorize URL", resp.StatusCode, e)
	}
	wantStatus(t, h.login(demo), http.StatusOK)
	resp = h.get("/Callback", "Accept", jsonAccept)
	if got := decode[map[string]any](t, resp); resp.StatusCode != http.StatusOK || len(got) != 2 || got["status"] != "connected" || got["email"] != demo {
		t.Fatalf("with a session: %d %v, want 200 {status: connected, email: %s}", resp.StatusCode, got, demo)
	}
}

// flowOf is the name of the flow cookie of Google's redirect back, which
// the jar holds.
func flowOf(h *harness, redirect string) string {
	h.t.Helper()
	u, err := url.Parse(redirect)
	if err != nil {
		h.t.Fatal(err)
	}
	name := h.app.flowCookieName(u.Query().Get("state"))
	if h.jar[name] == "" {
		h.t.Fatalf("the jar has no flow cookie %s", name)
	}
	return name
}

// flowCleared reports whether resp deletes the flow cookie name in a way a
// browser honours for a __Host- cookie (Secure, Path=/).
func flowCleared(resp *http.Response, name string) bool {
	for _, c := range resp.Cookies() {
		if c.Name == name && c.MaxAge < 0 && c.Value == "" && c.Secure && c.Path == "/" && c.HttpOnly {
			return true
		}
	}
	return false
}

// TestCallback_ClearsFlowCookieWhateverTheOutcome: the flow cookie is good
// for one Callback: every answer deletes it, so that it cannot be replayed.
func TestCallback_ClearsFlowCookieWhateverTheOutcome(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(h *harness)
		gmail   bool
		tamper  func(redirect string) string
		status  int
	}{
		{"success", nil, true, nil, http.StatusOK},
		{"Google's error (access denied)", nil, true, func(r string) string {
			u, _ := url.Parse(r)
			return base + "/Callback?" + url.Values{"error": {"access_denied"}, "state": {u.Query().Get("state")}}.Encode()
		}, http.StatusForbidden},
		{"state does not match the cookie", nil, true, func(r string) string {
			u, _ := url.Parse(r)
			q := u.Query()
			s := q.Get("state")
			q.Set("state", s[:flowNameLen]+strings.Repeat("x", len(s)-flowNameLen))
			u.RawQuery = q.Encode()
			return u.String()
		}, http.StatusBadRequest},
		{"no code", nil, true, func(r string) string {
			u, _ := url.Parse(r)
			return base + "/Callback?" + url.Values{"state": {u.Query().Get("state")}}.Encode()
		}, http.StatusBadRequest},
		{"code expired", func(h *harness) { h.clock.Advance(fakegoogle.DefaultCodeTTL + time.Second) }, true, nil, http.StatusBadRequest},
		{"Gmail unticked", nil, false, nil, http.StatusForbidden},
		{"email not verified", func(h *harness) { h.claimEmail(demo, false) }, true, nil, http.StatusForbidden},
		{"no refresh token: back to consent", func(h *harness) { h.rewriteToken(func(m map[string]any) { delete(m, "refresh_token") }) }, true, nil, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			redirect := h.consent(h.authorize(""), demo, true, tt.gmail)
			flow := flowOf(h, redirect)
			if tt.prepare != nil {
				tt.prepare(h)
			}
			if tt.tamper != nil {
				redirect = tt.tamper(redirect)
			}
			resp := h.get(redirect, "Accept", jsonAccept)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body(resp))
			}
			if !flowCleared(resp, flow) {
				t.Fatalf("the flow cookie %s was not cleared: %v", flow, resp.Header["Set-Cookie"])
			}
			if _, ok := h.jar[flow]; ok {
				t.Fatal("the flow cookie is still in the jar")
			}
		})
	}
}
