package e2e_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/fakegoogle"
)

// TestBrowser_AuthorizeAllowCallbackListMessages clicks through the flow a
// newcomer follows with the local runner: Authorize, Allow on the fake
// Google's consent page, Callback's success page, then ListMessages with
// the session cookie.
func TestBrowser_AuthorizeAllowCallbackListMessages(t *testing.T) {
	r := startRunner(t)
	b := newBrowser(t, r)
	shots := screenshotDir(t)
	const email = "browser-allow@example.com"

	b.openConsent()
	if got := b.text("client-id"); got != fakegoogle.DefaultClientID {
		t.Errorf("the consent page names client %q, want %q", got, fakegoogle.DefaultClientID)
	}
	if !b.checked("scope-gmail") {
		t.Error("the Gmail box is not ticked when the consent page opens")
	}
	b.fillConsent(email, true)
	b.screenshot(shots, "1-consent.png")

	resp := b.click("allow")
	if resp.Status != http.StatusOK || resp.URL != r.URL+"/Callback" {
		t.Fatalf("Allow ended at %s with status %d, want %s/Callback with 200 and no code left in the address bar: %s", resp.URL, resp.Status, r.URL, b.state())
	}
	if got := b.text("title"); got != "Gmail connected" {
		t.Errorf("title = %q, want %q", got, "Gmail connected")
	}
	if got := b.text("message"); !strings.Contains(got, email) {
		t.Errorf("message = %q, want it to name %s", got, email)
	}
	if got, want := b.href("link"), r.URL+"/ListMessages"; got != want {
		t.Errorf("the link goes to %q, want %q", got, want)
	}
	b.screenshot(shots, "2-connected.png")

	// The session cookie: HttpOnly, SameSite=Lax, and not Secure only
	// because this is plain http on localhost. The flow cookie is gone.
	s := b.cookie("gmail_session")
	if s == nil {
		t.Fatalf("no gmail_session cookie after Callback; cookies: %v", cookieNames(b.cookies()))
	}
	if !s.HTTPOnly || s.SameSite != network.CookieSameSiteLax || s.Secure || s.Path != "/" {
		t.Errorf("gmail_session: HttpOnly=%v SameSite=%q Secure=%v Path=%q, want HttpOnly, Lax, not Secure on http://localhost, /",
			s.HTTPOnly, s.SameSite, s.Secure, s.Path)
	}
	for _, c := range b.cookies() {
		if strings.HasPrefix(c.Name, "oauth_flow_") {
			t.Errorf("the flow cookie %s is still set after Callback", c.Name)
		}
	}
	if js := run(t, b.ctx, "document.cookie", chromedp.Evaluate[string](`document.cookie`)); strings.Contains(js, "gmail_session") {
		t.Errorf("page script can read the session cookie: document.cookie = %q", js)
	}

	// The success page's link lists the demo mailbox.
	resp = b.click("link")
	if resp.Status != http.StatusOK || resp.URL != r.URL+"/ListMessages" {
		t.Fatalf("the link ended at %s with status %d, want %s/ListMessages with 200: %s", resp.URL, resp.Status, r.URL, b.state())
	}
	all := b.pageList()
	if len(all.Messages) < 1 {
		t.Fatalf("ListMessages lists no message: %+v", all)
	}
	if all.ResultSizeEstimate < len(all.Messages) {
		t.Errorf("resultSizeEstimate = %d with %d messages on the page", all.ResultSizeEstimate, len(all.Messages))
	}
	t.Logf("ListMessages: %d messages on the first page, resultSizeEstimate %d", len(all.Messages), all.ResultSizeEstimate)

	first := b.listMessages("?maxResults=5")
	for _, tc := range []struct {
		query     string
		want      int
		wantFirst string // the first message's id, when known
	}{
		{query: "?maxResults=5", want: 5, wantFirst: all.Messages[0].ID},
		{query: "?maxResults=1", want: 1, wantFirst: all.Messages[0].ID},
		{query: "?maxResults=5&pageToken=" + url.QueryEscape(first.NextPageToken), want: 5, wantFirst: all.Messages[5].ID},
	} {
		t.Run(tc.query, func(t *testing.T) {
			b := b
			b.t = t
			got := b.listMessages(tc.query)
			if len(got.Messages) != tc.want {
				t.Fatalf("%d messages, want %d", len(got.Messages), tc.want)
			}
			if got.Messages[0].ID != tc.wantFirst {
				t.Errorf("first message %s, want %s (the mailbox's order)", got.Messages[0].ID, tc.wantFirst)
			}
			if got.NextPageToken == "" {
				t.Error("no nextPageToken, though the demo mailbox has more messages")
			}
		})
	}
}

// TestBrowser_RefusedConsentStoresNothing: unticking Gmail, or Cancel, on
// the consent page ends on a 403 page that links back to Authorize; no
// session is set, so ListMessages sends the browser to the consent page
// again.
func TestBrowser_RefusedConsentStoresNothing(t *testing.T) {
	r := startRunner(t)
	for _, tc := range []struct {
		name        string
		email       string
		untickGmail bool
		button      string
		wantTitle   string
		wantLink    []string // parts the link back to Authorize must have
	}{
		{
			name: "GmailUnticked", email: "browser-no-gmail@example.com", untickGmail: true, button: "allow",
			wantTitle: "Gmail access was not granted",
			wantLink:  []string{"prompt=consent", "login_hint=" + url.QueryEscape("browser-no-gmail@example.com")},
		},
		{
			name: "Deny", email: "browser-deny@example.com", button: "deny",
			wantTitle: "Access was not granted",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBrowser(t, r) // a fresh browser context for each
			shots := screenshotDir(t)
			b.openConsent()
			b.fillConsent(tc.email, !tc.untickGmail)
			b.screenshot(shots, "1-consent.png")

			resp := b.click(tc.button)
			if resp.Status != http.StatusForbidden || !strings.HasPrefix(resp.URL, r.URL+"/Callback?") {
				t.Fatalf("#%s ended at %s with status %d, want %s/Callback with 403: %s", tc.button, resp.URL, resp.Status, r.URL, b.state())
			}
			if got := b.text("title"); got != tc.wantTitle {
				t.Errorf("title = %q, want %q", got, tc.wantTitle)
			}
			link := b.href("link")
			if !strings.HasPrefix(link, r.URL+"/Authorize") {
				t.Errorf("the page links to %q, want %s/Authorize", link, r.URL)
			}
			for _, part := range tc.wantLink {
				if !strings.Contains(link, part) {
					t.Errorf("the link %q lacks %q", link, part)
				}
			}
			b.screenshot(shots, "2-refused.png")
			for _, c := range b.cookies() {
				if c.Name == "gmail_session" || strings.HasPrefix(c.Name, "oauth_flow_") {
					t.Errorf("cookie %s is set after the refusal", c.Name)
				}
			}

			// No session: ListMessages redirects the browser to Authorize,
			// which redirects to the consent page.
			before := len(r.Requests("ListMessages"))
			resp = b.navigate(r.URL + "/ListMessages")
			if !strings.HasPrefix(resp.URL, r.FakeURL+consentPath+"?") {
				t.Errorf("GET /ListMessages ended at %s, want the consent page %s%s: %s", resp.URL, r.FakeURL, consentPath, b.state())
			}
			if got := waitRequests(t, r, "ListMessages", before+1)[before]; got.Status != http.StatusFound {
				t.Errorf("ListMessages answered %d, want 302 to Authorize", got.Status)
			}

			// The link back to Authorize opens the consent page again,
			// for the same account.
			b.navigate(link)
			if loc := b.location(); !strings.HasPrefix(loc, r.FakeURL+consentPath+"?") {
				t.Fatalf("the link back to Authorize ended at %s, want the consent page", loc)
			}
			if tc.untickGmail {
				if got := b.value("email"); got != tc.email {
					t.Errorf("the consent page offers %q, want the login_hint %q", got, tc.email)
				}
				if !b.checked("scope-gmail") {
					t.Error("the Gmail box is not ticked when the consent page opens again")
				}
			}
		})
	}
}

// TestBrowser_DisconnectFromSameOriginRevokesAndCrossSiteIsRefused: a
// cross-site page cannot disconnect the user (by fetch or by form), and a
// same-origin fetch does, after which ListMessages needs Authorize again.
func TestBrowser_DisconnectFromSameOriginRevokesAndCrossSiteIsRefused(t *testing.T) {
	r := startRunner(t)
	b := newBrowser(t, r)
	b.connect("browser-disconnect@example.com")
	if got := len(b.listMessages("?maxResults=3").Messages); got != 3 {
		t.Fatalf("ListMessages?maxResults=3 before the attacks: %d messages", got)
	}

	// The attacker's site: 127.0.0.1 is another site than localhost.
	target := r.URL + "/Disconnect"
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>attacker</title>
<form id="form" method="post" action="%s"><button id="go" type="submit">win a prize</button></form>`, target)
	}))
	defer attacker.Close()

	for _, attack := range []struct {
		name string
		run  func(t *testing.T, a tab)
	}{
		{"fetch no-cors with credentials", func(t *testing.T, a tab) {
			got := run(t, a.ctx, "cross-site fetch", chromedp.Evaluate[string](
				fmt.Sprintf(`fetch(%q, {method: "POST", credentials: "include", mode: "no-cors"}).then(r => r.type)`, target),
				chromedp.EvalAwaitPromise))
			if got != "opaque" {
				t.Errorf("the no-cors fetch gave a %q response, want opaque (it must have reached the server)", got)
			}
		}},
		{"form POST", func(t *testing.T, a tab) {
			resp := a.click("go")
			if resp.Status != http.StatusForbidden || resp.URL != target {
				t.Errorf("the cross-site form POST got %d at %s, want 403 at %s", resp.Status, resp.URL, target)
			}
			if body := a.bodyText(); !strings.Contains(body, `"forbidden"`) {
				t.Errorf("the cross-site form POST got %q, want the forbidden error", body)
			}
		}},
	} {
		t.Run("CrossSite/"+attack.name, func(t *testing.T) {
			a := b.newTab() // same browser, so the session cookie is there to abuse
			a.t = t
			if resp := a.navigate(attacker.URL + "/"); resp.Status != http.StatusOK {
				t.Fatalf("the attacker's page: status %d", resp.Status)
			}
			before := len(r.Requests("Disconnect"))
			attack.run(t, a)
			if got := waitRequests(t, r, "Disconnect", before+1)[before]; got.Method != http.MethodPost || got.Status != http.StatusForbidden {
				t.Errorf("the runner answered the cross-site %s %d, want POST 403", got.Method, got.Status)
			}
			// Nothing happened: the user is still connected.
			b := b
			b.t = t
			if b.cookie("gmail_session") == nil {
				t.Error("the session cookie is gone after the cross-site POST")
			}
			if got := len(b.listMessages("?maxResults=3").Messages); got != 3 {
				t.Errorf("ListMessages?maxResults=3 after the cross-site POST: %d messages, want 3", got)
			}
		})
	}

	t.Run("SameOrigin", func(t *testing.T) {
		b := b
		b.t = t
		// The app's own pages carry a CSP with connect-src 'none', which
		// would block any fetch from them. The same-origin page of a web
		// app that uses these functions has its own policy, so the test
		// lifts the CSP for this tab and uses the ListMessages page as
		// that same-origin page.
		if _, err := chromedp.Call(b.ctx, page.SetBypassCSP, page.SetBypassCSPParams{Enabled: true}); err != nil {
			t.Fatal(err)
		}
		b.listMessages("?maxResults=1")
		disconnect := func() map[string]any {
			t.Helper()
			type answer struct {
				Status int            `json:"status"`
				Body   map[string]any `json:"body"`
			}
			got := run(t, b.ctx, "same-origin fetch", chromedp.Evaluate[answer](
				`fetch("/Disconnect", {method: "POST"}).then(async r => ({status: r.status, body: await r.json()}))`,
				chromedp.EvalAwaitPromise))
			if got.Status != http.StatusOK {
				t.Fatalf("POST /Disconnect: status %d, body %v", got.Status, got.Body)
			}
			return got.Body
		}
		if got, want := disconnect(), map[string]any{"status": "disconnected", "revoked": true}; !reflect.DeepEqual(got, want) {
			t.Errorf("POST /Disconnect = %v, want %v", got, want)
		}
		if b.cookie("gmail_session") != nil {
			t.Error("the session cookie is still set after Disconnect")
		}
		if got, want := disconnect(), map[string]any{"status": "disconnected", "revoked": false}; !reflect.DeepEqual(got, want) {
			t.Errorf("a second POST /Disconnect = %v, want %v", got, want)
		}

		resp := b.navigate(r.URL + "/ListMessages")
		if !strings.HasPrefix(resp.URL, r.FakeURL+consentPath+"?") {
			t.Errorf("GET /ListMessages after Disconnect ended at %s, want the consent page: %s", resp.URL, b.state())
		}
	})
}

func cookieNames(cs []*network.Cookie) []string {
	var names []string
	for _, c := range cs {
		names = append(names, c.Name)
	}
	return names
}
