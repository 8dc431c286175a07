package app

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/secrets"
)

// checkSecurityHeaders fails unless resp carries the headers every answer
// must: not cached, no Referer, not sniffed, not framed, and a strict CSP.
func checkSecurityHeaders(t testing.TB, resp *http.Response) {
	t.Helper()
	h := resp.Header
	for name, want := range map[string]string{
		"Cache-Control":          "no-store",
		"Referrer-Policy":        "no-referrer",
		"X-Content-Type-Options": "nosniff",
		"X-Frame-Options":        "DENY",
	} {
		if got := h.Get(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	csp := h.Get("Content-Security-Policy")
	directives := map[string]string{}
	for d := range strings.SplitSeq(csp, ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
		directives[name] = value
	}
	for name, want := range map[string]string{
		"default-src": "'none'", "frame-ancestors": "'none'", "form-action": "'none'", "base-uri": "'none'", "img-src": "'none'",
	} {
		if directives[name] != want {
			t.Errorf("CSP %s = %q, want %q (CSP %q)", name, directives[name], want, csp)
		}
	}
	for _, bad := range []string{"unsafe-inline", "unsafe-eval", "unsafe-hashes", "*", "data:", "http:", "https:", "script-src"} {
		if strings.Contains(csp, bad) {
			t.Errorf("CSP %q allows %s", csp, bad)
		}
	}
	// A page's only style must be the one the CSP allows by hash, and it
	// must have no script and no inline style attribute.
	if strings.HasPrefix(h.Get("Content-Type"), "text/html") && resp.Body != nil {
		page := body(resp)
		if strings.Contains(page, "<script") || strings.Contains(page, " style=") || strings.Contains(page, " on") && regexp.MustCompile(`\son[a-z]+=`).MatchString(page) {
			t.Errorf("page has a script or inline style: %s", page)
		}
		for _, m := range regexp.MustCompile(`(?s)<style>(.*?)</style>`).FindAllStringSubmatch(page, -1) {
			sum := sha256.Sum256([]byte(m[1]))
			if want := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; directives["style-src"] != want {
				t.Errorf("style-src %q does not allow the page's style (%s)", directives["style-src"], want)
			}
		}
	}
}

// TestSecurityHeaders_EveryFunctionAndAnswer: all four functions, their
// successes, redirects, error pages and refusals.
func TestSecurityHeaders_EveryFunctionAndAnswer(t *testing.T) {
	tests := []struct {
		name   string
		status int
		run    func(h *harness) *http.Response
	}{
		{"Authorize redirect", 302, func(h *harness) *http.Response { return h.get("/Authorize") }},
		{"Authorize JSON", 200, func(h *harness) *http.Response { return h.get("/Authorize", "Accept", jsonAccept) }},
		{"Authorize bad return_to page", 400, func(h *harness) *http.Response { return h.get("/Authorize?return_to=//evil", "Accept", htmlAccept) }},
		{"Authorize bad login_hint JSON", 400, func(h *harness) *http.Response { return h.get("/Authorize?login_hint=a%20b", "Accept", jsonAccept) }},
		{"Authorize POST", 405, func(h *harness) *http.Response { return h.do(http.MethodPost, "/Authorize") }},
		{"Callback success page", 200, func(h *harness) *http.Response { return h.login(demo) }},
		{"Callback success redirect", 302, func(h *harness) *http.Response {
			return h.callback(h.consent(h.authorize("return_to=/app"), demo, true, true))
		}},
		{"Callback success JSON", 200, func(h *harness) *http.Response {
			return h.callback(h.consent(h.authorize(""), demo, true, true), "Accept", jsonAccept)
		}},
		{"Callback invalid_state page", 400, func(h *harness) *http.Response {
			return h.get("/Callback?state=x&code=y", "Accept", htmlAccept)
		}},
		{"Callback access_denied page", 403, func(h *harness) *http.Response {
			return h.callback(h.consent(h.authorize(""), demo, false, true), "Accept", htmlAccept)
		}},
		{"Callback Gmail not granted page", 403, func(h *harness) *http.Response {
			return h.callback(h.consent(h.authorize(""), demo, true, false), "Accept", htmlAccept)
		}},
		{"Callback reused code redirect", 302, func(h *harness) *http.Response {
			redirect := h.consent(h.authorize(""), demo, true, true)
			jar := map[string]string{}
			for k, v := range h.jar {
				jar[k] = v
			}
			h.callback(redirect)
			h.jar = jar
			return h.callback(redirect)
		}},
		{"Callback POST", 405, func(h *harness) *http.Response { return h.do(http.MethodPost, "/Callback") }},
		{"ListMessages JSON", 200, func(h *harness) *http.Response {
			h.login(demo)
			return h.get("/ListMessages?maxResults=2")
		}},
		{"ListMessages authorization_required JSON", 401, func(h *harness) *http.Response { return h.get("/ListMessages", "Accept", jsonAccept) }},
		{"ListMessages authorization_required redirect", 302, func(h *harness) *http.Response { return h.get("/ListMessages", "Accept", htmlAccept) }},
		{"ListMessages bad parameter", 400, func(h *harness) *http.Response { return h.get("/ListMessages?maxResults=0") }},
		{"ListMessages POST", 405, func(h *harness) *http.Response { return h.do(http.MethodPost, "/ListMessages") }},
		{"Disconnect", 200, func(h *harness) *http.Response { h.login(demo); return h.do(http.MethodPost, "/Disconnect") }},
		{"Disconnect cross-site", 403, func(h *harness) *http.Response {
			return h.do(http.MethodPost, "/Disconnect", "Sec-Fetch-Site", "cross-site")
		}},
		{"Disconnect GET", 405, func(h *harness) *http.Response { return h.get("/Disconnect") }},
		{"query too long", 414, func(h *harness) *http.Response { return h.get("/ListMessages?q=" + strings.Repeat("a", MaxQueryBytes)) }},
		{"body too large", 413, func(h *harness) *http.Response {
			return serveWithBody(h, http.MethodPost, "/Disconnect", MaxBodyBytes+1)
		}},
		{"secrets unavailable", 503, func(h *harness) *http.Response {
			h.app.keys = secrets.NewCache(failingFetcher{}, parseRings, h.cfg.SecretTTL)
			return h.get("/Authorize", "Accept", htmlAccept)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			resp := tt.run(h)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			checkSecurityHeaders(t, resp)
		})
	}
}

// TestSecurityHeaders_FunctionNotConfigured: the 503 of an App that cannot
// be built carries them too.
func TestSecurityHeaders_FunctionNotConfigured(t *testing.T) {
	l := NewLazy(func(context.Context) (*App, error) { return nil, errors.New("OAUTH_REDIRECT_URL: required") }, newHarness(t).app.log)
	for _, name := range []string{"Authorize", "Callback", "ListMessages", "Disconnect"} {
		rec := httptest.NewRecorder()
		l.Handler(name)(rec, httptest.NewRequest(http.MethodGet, base+"/"+name, nil))
		resp := rec.Result()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("%s: status %d", name, resp.StatusCode)
		}
		checkSecurityHeaders(t, resp)
	}
}

// TestCallback_GoogleErrorNotReflected: what Google (or an attacker
// posing as it) puts in error= never reaches the page as markup.
func TestCallback_GoogleErrorNotReflected(t *testing.T) {
	h := newHarness(t)
	evil := `<script>alert(1)</script>"><img src=x onerror=alert(1)>`
	resp := h.get("/Callback?error="+url.QueryEscape(evil)+"&error_description="+url.QueryEscape(evil)+"&state=x", "Accept", htmlAccept)
	b := wantStatus(t, resp, http.StatusBadRequest)
	if strings.Contains(b, "<script") || strings.Contains(b, "<img") || strings.Contains(b, "alert(1)") {
		t.Fatalf("the page reflects Google's error: %s", b)
	}
}

// serveWithBody sends a request with an n-byte body straight to a
// function.
func serveWithBody(h *harness, method, path string, n int) *http.Response {
	req := httptest.NewRequest(method, base+path, strings.NewReader(strings.Repeat("a", n)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	h.app.Handlers()[strings.TrimPrefix(path, "/")](rec, req)
	return rec.Result()
}

// TestRequestLimits_QueryOver_414_BodyOver_413: every function refuses an
// oversized request before doing any work.
func TestRequestLimits_QueryOver_414_BodyOver_413(t *testing.T) {
	functions := []struct{ name, method string }{
		{"Authorize", http.MethodGet}, {"Callback", http.MethodGet}, {"ListMessages", http.MethodGet}, {"Disconnect", http.MethodPost},
	}
	for _, fn := range functions {
		t.Run(fn.name, func(t *testing.T) {
			h := loggedIn(t)
			long := "/" + fn.name + "?x=" + strings.Repeat("a", MaxQueryBytes-1) // MaxQueryBytes+1 bytes of query
			if resp := h.do(fn.method, long); resp.StatusCode != http.StatusRequestURITooLong {
				t.Fatalf("query of %d bytes: status %d", MaxQueryBytes+1, resp.StatusCode)
			}
			if resp := serveWithBody(h, fn.method, "/"+fn.name, MaxBodyBytes+1); resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Fatalf("body of %d bytes: status %d", MaxBodyBytes+1, resp.StatusCode)
			}
			if googleCalls(h) != 0 || h.record(demo) == nil {
				t.Fatalf("an oversized request did work: %v", h.fake.Counts())
			}
			// At the limits, the request goes through to the function.
			atLimit := "/" + fn.name + "?x=" + strings.Repeat("a", MaxQueryBytes-2)
			if resp := h.do(fn.method, atLimit); resp.StatusCode == http.StatusRequestURITooLong {
				t.Fatalf("query of exactly %d bytes refused", MaxQueryBytes)
			}
			if resp := serveWithBody(h, fn.method, "/"+fn.name, MaxBodyBytes); resp.StatusCode == http.StatusRequestEntityTooLarge {
				t.Fatalf("body of exactly %d bytes refused", MaxBodyBytes)
			}
		})
	}
}
