package app

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// Open-redirect attempts through return_to, each refused with 400 by
// Authorize before anything else happens (no flow cookie, no redirect).
// The value is what Authorize's return_to parameter decodes to.
var openRedirectAttempts = []struct{ name, returnTo string }{
	{"scheme-relative", "//evil.example"},
	{"absolute https", "https://evil.example"},
	{"absolute, no slashes", "http:evil.example"},
	{"backslash after slash", `/\evil.example`},
	{"two backslashes", `\\evil.example`},
	{"encoded slashes", "/%2F%2Fevil.example"},
	{"encoded backslash", "/%5Cevil.example"},
	{"encoded slashes, no leading slash", "%2F%2Fevil.example"},
	{"encoded tab between slashes", "/%09/evil.example"},
	{"tab between slashes", "/\t/evil.example"},
	{"newline between slashes", "/\n/evil.example"},
	{"javascript URL", "javascript:alert(1)"},
	{"data URL", "data:text/html,x"},
	{"leading space", " /x"},
	{"header injection", "/x\r\nSet-Cookie:a=b"},
	{"encoded header injection", "/x%0d%0aSet-Cookie:a=b"},
	{"three slashes", "///evil.example"},
	{"dot segment then slash", "/.//evil"},
	{"encoded dot segment then slash", "/%2e//evil"},
	{"dot-dot segment", "/a/../b"},
	{"encoded dot-dot segment", "/a/%2e%2e/b"},
	{"NUL", "/x%00"},
	{"user info", "//user@evil.example"},
	{"relative path", "app/inbox"},
	{"encoded leading slash", "%2Fapp"},
	{"bad percent-encoding", "/%zz"},
	{"3000-character path", "/" + strings.Repeat("a", 2999)},
}

func TestAuthorize_ReturnToOpenRedirectRefused_400(t *testing.T) {
	for _, tt := range openRedirectAttempts {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			resp := h.get("/Authorize?return_to="+url.QueryEscape(tt.returnTo), "Accept", jsonAccept)
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("status %d, want 400 (Location %q): %s", resp.StatusCode, resp.Header.Get("Location"), body(resp))
			}
			if e := decode[apiError](t, resp); e.Code != "invalid_request" || !strings.Contains(e.Description, "return_to") {
				t.Fatalf("answer %+v", e)
			}
			if len(resp.Cookies()) != 0 {
				t.Fatalf("a refused return_to still set %v", resp.Cookies())
			}
		})
	}
}

// TestAuthorize_ReturnToSameSitePath_EndsThere: a same-site path, with a
// query or a fragment, is kept through the flow and the Callback sends the
// browser there, on this host.
func TestAuthorize_ReturnToSameSitePath_EndsThere(t *testing.T) {
	tests := []struct{ returnTo, location string }{
		{"/", "/"},
		{"/app", "/app"},
		{"/app/", "/app/"},
		{"/app/inbox?x=1&y=%2F", "/app/inbox?x=1&y=%2F"},
		{"/a#frag", "/a#frag"},                               // a fragment cannot change the host; single-page apps route with it
		{"/a?next=//evil.example", "/a?next=//evil.example"}, // only the path decides where the browser goes
		{"/@evil.example", "/@evil.example"},                 // a path segment, not user info
		{"/%E2%9C%93", "/%E2%9C%93"},
	}
	for _, tt := range tests {
		t.Run(tt.returnTo, func(t *testing.T) {
			h := newHarness(t)
			resp := h.callback(h.consent(h.authorize("return_to="+url.QueryEscape(tt.returnTo)), demo, true, true))
			wantStatus(t, resp, http.StatusFound)
			loc := resp.Header.Get("Location")
			if loc != tt.location {
				t.Fatalf("Location %q, want %q", loc, tt.location)
			}
			from, _ := url.Parse(base + "/Callback?code=x")
			to, err := url.Parse(loc)
			if err != nil {
				t.Fatal(err)
			}
			if got := from.ResolveReference(to); got.Host != from.Host || got.Scheme != from.Scheme {
				t.Fatalf("Location %q leaves the site: %s", loc, got)
			}
		})
	}
}

// TestCleanReturnTo_RefusesOpenRedirectsKeepsSameSitePaths agrees with the handler test above, without a flow.
func TestCleanReturnTo_RefusesOpenRedirectsKeepsSameSitePaths(t *testing.T) {
	for _, tt := range openRedirectAttempts {
		if got, err := cleanReturnTo(tt.returnTo); err == nil {
			t.Errorf("%s: %q accepted as %q", tt.name, tt.returnTo, got)
		}
	}
	for _, ok := range []string{"", "/", "/app", "/app/inbox?x=1&y=%2F", "/a#frag", "/a//b"} {
		if got, err := cleanReturnTo(ok); err != nil || got != ok {
			t.Errorf("%q: got %q, %v", ok, got, err)
		}
	}
}
