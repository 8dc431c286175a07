package app

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// flowCookies are the flow cookies in the harness's jar.
func (h *harness) flowCookies() []string {
	var names []string
	for name := range h.jar {
		if strings.HasPrefix(name, "__Host-oauth_flow_") {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// cookieHeader is the Cookie header the jar sends.
func (h *harness) cookieHeader() string {
	req := httptest.NewRequest(http.MethodGet, base+"/", nil)
	for k, v := range h.jar {
		req.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	return req.Header.Get("Cookie")
}

// TestAuthorize_30CallsInOneBrowser_AtMostFourFlowCookies: a browser that
// opens Authorize again and again (reloads, tabs, ListMessages' redirects)
// keeps at most four flow cookies, the newest four, its Cookie header stays
// well under the 8 KB at which servers answer 431, and the newest flow
// still completes.
func TestAuthorize_30CallsInOneBrowser_AtMostFourFlowCookies(t *testing.T) {
	for _, tt := range []struct {
		name, query string
	}{
		{"plain", ""},
		{"long return_to and login_hint", "login_hint=" + url.QueryEscape(strings.Repeat("x", 64)+"@"+strings.Repeat(strings.Repeat("d", 60)+".", 4)+"com") /* 312 bytes, the longest kind of email login_hint accepts */ +
			"&return_to=" + url.QueryEscape("/app/inbox?q="+strings.Repeat("y", 1000))},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			wantStatus(t, h.login(demo), http.StatusOK) // a session cookie too, as a real browser has
			var names []string
			var last string
			longest := 0
			for range 30 {
				h.clock.Advance(time.Second)
				last = h.authorize(tt.query)
				u, _ := url.Parse(last)
				names = append(names, h.app.flowCookieName(u.Query().Get("state")))
				if got := h.flowCookies(); len(got) > maxFlowCookies {
					t.Fatalf("%d flow cookies after %d calls, want at most %d", len(got), len(names), maxFlowCookies)
				}
				longest = max(longest, len(h.cookieHeader()))
			}
			if longest >= 8<<10 {
				t.Fatalf("the Cookie header grew to %d bytes, want under 8 KB", longest)
			}
			got, newest := h.flowCookies(), names[len(names)-len(h.flowCookies()):]
			slices.Sort(newest)
			if !slices.Equal(got, newest) {
				t.Fatalf("kept flow cookies %v, want the newest: %v", got, newest)
			}
			t.Logf("%d flow cookies kept; the longest Cookie header was %d bytes", len(got), longest)

			resp := h.callback(h.consent(last, demo, true, true), "Accept", jsonAccept)
			if a := decode[map[string]any](t, resp); resp.StatusCode != http.StatusOK || a["status"] != "authorized" {
				t.Fatalf("the newest flow: %d %v", resp.StatusCode, a)
			}
		})
	}
}

// TestAuthorize_FlowCookieWithoutIssueTime_ClearedFirst: a flow cookie
// whose name tells no age (one from before names did, or one planted) is
// the first to go.
func TestAuthorize_FlowCookieWithoutIssueTime_ClearedFirst(t *testing.T) {
	h := newHarness(t)
	const old = "__Host-oauth_flow_AbCdEfGhIjKl"
	h.jar[old] = "x"
	for range maxFlowCookies - 1 {
		h.clock.Advance(time.Second)
		h.authorize("")
	}
	if _, ok := h.jar[old]; !ok || len(h.flowCookies()) != maxFlowCookies {
		t.Fatalf("within the cap: flow cookies %v", h.flowCookies())
	}
	h.authorize("")
	if _, ok := h.jar[old]; ok || len(h.flowCookies()) != maxFlowCookies {
		t.Fatalf("beyond the cap: flow cookies %v, want the one without an issue time gone", h.flowCookies())
	}
}
