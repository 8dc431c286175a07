package e2e_test

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// consentPages counts, from now on, the consent pages the tab is shown.
func (b tab) consentPages() *atomic.Int32 {
	b.t.Helper()
	var n atomic.Int32
	err := chromedp.Listen(b.ctx, func(ev any) {
		if e, ok := ev.(*network.EventResponseReceived); ok && e.Type == network.ResourceTypeDocument &&
			strings.HasPrefix(e.Response.URL, b.r.FakeURL+consentPath+"?") {
			n.Add(1)
		}
	})
	if err != nil {
		b.t.Fatalf("listening to the tab: %v", err)
	}
	return &n
}

// TestBrowser_GmailUnticked_ThenOneConsentConnects: the user unticks Gmail
// and is refused; Callback revokes what Google issued for that consent. A
// fresh Authorize (not the refusal page's link, which asks for consent
// anyway) then shows exactly one consent page, and Allow connects. Were the
// refused grant left alive at Google, Google would send no refresh token,
// and Callback would have to send the user to a second consent page.
func TestBrowser_GmailUnticked_ThenOneConsentConnects(t *testing.T) {
	r := startRunner(t)
	b := newBrowser(t, r)
	shots := screenshotDir(t)
	const email = "browser-untick-then-allow@example.com"

	b.openConsent()
	b.fillConsent(email, false)
	if resp := b.click("allow"); resp.Status != http.StatusForbidden || !strings.HasPrefix(resp.URL, r.URL+"/Callback?") {
		t.Fatalf("Allow without Gmail ended at %s with status %d, want %s/Callback with 403: %s", resp.URL, resp.Status, r.URL, b.state())
	}
	b.screenshot(shots, "1-refused.png")

	pages := b.consentPages()
	b.openConsent()
	b.fillConsent(email, true)
	resp := b.click("allow")
	b.screenshot(shots, "2-after-allow.png")
	if resp.Status != http.StatusOK || resp.URL != r.URL+"/Callback" {
		t.Fatalf("Allow with Gmail ended at %s with status %d, want %s/Callback with 200 (the connected page): %s", resp.URL, resp.Status, r.URL, b.state())
	}
	if got := b.text("title"); got != "Gmail connected" {
		t.Fatalf("title = %q, want %q", got, "Gmail connected")
	}
	if n := pages.Load(); n != 1 {
		t.Fatalf("the user saw %d consent pages after the refusal, want 1", n)
	}
	if got := len(b.listMessages("?maxResults=2").Messages); got != 2 {
		t.Errorf("ListMessages?maxResults=2 after connecting: %d messages", got)
	}
}
