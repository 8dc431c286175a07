package homepage

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// get asks h for path with method and returns the answer and its body.
func get(t *testing.T, h http.Handler, method, path string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	resp := rec.Result()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestHandler_ServesEachAssetWithItsTypeAndThePolicy(t *testing.T) {
	h := Handler()
	for _, tc := range []struct {
		path, wantType, wantIn string
	}{
		{PagePath, "text/html; charset=utf-8", `<script src="` + ScriptPath + `" defer></script>`},
		{ScriptPath, "text/javascript; charset=utf-8", "credentials: 'same-origin'"},
		{StylePath, "text/css; charset=utf-8", "table {"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			resp, body := get(t, h, http.MethodGet, tc.path)
			if resp.StatusCode != http.StatusOK || !strings.Contains(body, tc.wantIn) {
				t.Fatalf("status %d, body has %q: %v", resp.StatusCode, tc.wantIn, strings.Contains(body, tc.wantIn))
			}
			for k, want := range map[string]string{
				"Content-Type":            tc.wantType,
				"Content-Security-Policy": ContentSecurityPolicy,
				"X-Content-Type-Options":  "nosniff",
				"Referrer-Policy":         "no-referrer",
				"Cache-Control":           "no-cache",
			} {
				if got := resp.Header.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			// Revalidation costs no body.
			etag := resp.Header.Get("ETag")
			if again, b := get(t, h, http.MethodGet, tc.path, "If-None-Match", etag); etag == "" || again.StatusCode != http.StatusNotModified || b != "" {
				t.Errorf("with If-None-Match %s: status %d and %d bytes, want 304 and none", etag, again.StatusCode, len(b))
			}
			if head, b := get(t, h, http.MethodHead, tc.path); head.StatusCode != http.StatusOK || b != "" {
				t.Errorf("HEAD: status %d and %d bytes, want 200 and none", head.StatusCode, len(b))
			}
		})
	}
}

func TestHandler_RefusesOtherPathsAndMethods(t *testing.T) {
	h := Handler()
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/index.html", http.StatusNotFound},
		{http.MethodGet, "/static/home.js", http.StatusNotFound},
		{http.MethodGet, "/favicon.ico", http.StatusNotFound},
		{http.MethodGet, "/Authorize/", http.StatusNotFound},
		{http.MethodPost, "/", http.StatusMethodNotAllowed},
		{http.MethodDelete, ScriptPath, http.StatusMethodNotAllowed},
	} {
		if resp, _ := get(t, h, tc.method, tc.path); resp.StatusCode != tc.want || resp.Header.Get("Content-Security-Policy") != ContentSecurityPolicy {
			t.Errorf("%s %s: status %d with policy %q, want %d with the page's policy", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Content-Security-Policy"), tc.want)
		}
	}
}

// TestContentSecurityPolicy_OwnOriginOnlyAndNothingInline reads the policy
// directive by directive.
func TestContentSecurityPolicy_OwnOriginOnlyAndNothingInline(t *testing.T) {
	got := map[string]string{}
	for d := range strings.SplitSeq(ContentSecurityPolicy, ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
		got[name] = value
	}
	for name, want := range map[string]string{
		"default-src": "'none'", "script-src": "'self'", "style-src": "'self'", "connect-src": "'self'",
		"img-src": "'self'", "form-action": "'none'", "frame-ancestors": "'none'", "base-uri": "'none'",
		"require-trusted-types-for": "'script'", "trusted-types": "'none'",
	} {
		if got[name] != want {
			t.Errorf("%s = %q, want %q", name, got[name], want)
		}
	}
	if len(got) != 10 {
		t.Errorf("the policy has %d directives, want the 10 above: %s", len(got), ContentSecurityPolicy)
	}
}

// TestPage_HasNothingInline: no inline script, style or event handler, and
// every script and stylesheet comes from this handler.
func TestPage_HasNothingInline(t *testing.T) {
	_, page := get(t, Handler(), http.MethodGet, PagePath)
	z := html.NewTokenizer(strings.NewReader(page))
	var scripts, styles []string
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			if z.Err() != io.EOF {
				t.Fatal(z.Err())
			}
			break
		}
		tok := z.Token()
		if tt != html.StartTagToken && tt != html.SelfClosingTagToken {
			continue
		}
		attr := map[string]string{}
		for _, a := range tok.Attr {
			attr[a.Key] = a.Val
			if strings.HasPrefix(a.Key, "on") || a.Key == "style" || strings.HasPrefix(strings.TrimSpace(strings.ToLower(a.Val)), "javascript:") {
				t.Errorf("<%s %s=%q>: inline script or style", tok.Data, a.Key, a.Val)
			}
		}
		switch tok.Data {
		case "script":
			if attr["src"] == "" {
				t.Errorf("an inline <script>")
			}
			scripts = append(scripts, attr["src"])
		case "style":
			t.Errorf("an inline <style>")
		case "link":
			if attr["rel"] == "stylesheet" {
				styles = append(styles, attr["href"])
			}
		}
	}
	if len(scripts) != 1 || scripts[0] != ScriptPath || len(styles) != 1 || styles[0] != StylePath {
		t.Errorf("scripts %v and stylesheets %v, want [%s] and [%s]", scripts, styles, ScriptPath, StylePath)
	}
}

// TestScript_WritesNoHTML: the script puts text in with textContent; no
// HTML sink, no eval. (The policy's Trusted Types make the browser refuse
// them too.)
func TestScript_WritesNoHTML(t *testing.T) {
	_, js := get(t, Handler(), http.MethodGet, ScriptPath)
	sinks := regexp.MustCompile(`\b(innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval|Function|setAttribute\(\s*['"]on|DOMParser|createContextualFragment)\b`)
	if m := sinks.FindAllString(js, -1); len(m) > 0 {
		t.Errorf("home.js uses %v", m)
	}
	if !strings.Contains(js, ".textContent = ") {
		t.Error("home.js sets no textContent; how does it write text?")
	}
}
