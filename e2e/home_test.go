package e2e_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// TestBrowser_HomePage_ConnectListSearchPageDisconnect is what a newcomer
// does on the local runner's home page: Connect, Allow on the consent page,
// back on / with the inbox, search, the next page, Disconnect. The page runs
// under its own strict Content-Security-Policy, and the browser reports no
// violation of it and no script error.
func TestBrowser_HomePage_ConnectListSearchPageDisconnect(t *testing.T) {
	r := startRunner(t)
	b := newBrowser(t, r)
	console := watchConsole(t, b.ctx)
	shots := screenshotDir(t)
	const email = "browser-home@example.com"

	if resp := b.navigate(r.URL + "/"); resp.Status != http.StatusOK {
		t.Fatalf("GET / : status %d", resp.Status)
	}
	b.await("Not connected", `document.getElementById("status").textContent === "Not connected"`)
	if !b.visible("connect") || b.visible("inbox") || b.visible("disconnect") {
		t.Errorf("not connected: Connect shown %v, inbox %v, Disconnect %v; want only Connect", b.visible("connect"), b.visible("inbox"), b.visible("disconnect"))
	}
	b.screenshot(shots, "1-not-connected.png")

	// Connect → the consent page → Allow → back on the home page.
	if resp := b.click("connect"); !strings.HasPrefix(resp.URL, r.FakeURL+consentPath+"?") {
		t.Fatalf("Connect Gmail ended at %s, want the consent page: %s", resp.URL, b.state())
	}
	b.fillConsent(email, true)
	if resp := b.click("allow"); resp.Status != http.StatusOK || resp.URL != r.URL+"/" {
		t.Fatalf("Allow ended at %s with status %d, want the home page %s/ with 200: %s", resp.URL, resp.Status, r.URL, b.state())
	}
	b.await("Connected as "+email, `document.getElementById("status").textContent === "Connected as `+email+`"`)
	first := b.inbox()
	if len(first) != 25 {
		t.Fatalf("the inbox shows %d rows, want 25: %s", len(first), b.state())
	}
	for i, m := range first {
		if m.ID == "" || m.From == "" || m.Subject == "" || m.Date == "" || m.Snippet == "" {
			t.Errorf("row %d lacks a cell: %+v", i, m)
		}
	}
	b.screenshot(shots, "2-inbox.png")

	// A search narrows the inbox to the sender's mail.
	run(t, b.ctx, "search", chromedp.Steps(
		chromedp.Focus(chromedp.ID("q")),
		insertText("from:github"),
		chromedp.SendKeys(chromedp.ID("q"), kb.Enter),
	))
	b.awaitNewPage(first)
	found := b.inbox()
	if len(found) == 0 || len(found) > 25 {
		t.Fatalf("the search shows %d rows, want 1 to 25", len(found))
	}
	for _, m := range found {
		if m.From != "GitHub" {
			t.Errorf("the search from:github shows a message from %q", m.From)
		}
	}
	b.screenshot(shots, "3-search.png")

	// Next page: other messages, of the same search.
	if !b.enabled("next") {
		t.Fatalf("Next page is disabled after a search with more than 25 results: %s", b.state())
	}
	run(t, b.ctx, "click Next page", chromedp.Click(chromedp.ID("next")))
	b.awaitNewPage(found)
	next := b.inbox()
	if len(next) == 0 {
		t.Fatal("the next page is empty")
	}
	for _, m := range next {
		if slices.ContainsFunc(found, func(f row) bool { return f.ID == m.ID }) {
			t.Errorf("message %s is on both pages", m.ID)
		}
		if m.From != "GitHub" {
			t.Errorf("the next page of from:github shows a message from %q", m.From)
		}
	}
	if got := b.text("summary"); !strings.HasPrefix(got, "Page 2 ") {
		t.Errorf("the pager says %q, want page 2", got)
	}
	b.screenshot(shots, "4-next-page.png")

	// Disconnect: a same-origin POST, then "Not connected".
	before := len(r.Requests("Disconnect"))
	run(t, b.ctx, "click Disconnect", chromedp.Click(chromedp.ID("disconnect")))
	b.await("Not connected after Disconnect", `document.getElementById("status").textContent === "Not connected"`)
	if got := waitRequests(t, r, "Disconnect", before+1)[before]; got.Method != http.MethodPost || got.Status != http.StatusOK {
		t.Errorf("Disconnect was %s with status %d, want POST 200", got.Method, got.Status)
	}
	if b.cookie("gmail_session") != nil {
		t.Error("the session cookie is still set after Disconnect")
	}
	if !b.visible("connect") || b.visible("inbox") {
		t.Errorf("after Disconnect: Connect shown %v, inbox %v; want Connect and no inbox", b.visible("connect"), b.visible("inbox"))
	}
	b.screenshot(shots, "5-disconnected.png")

	if bad := console.problems(); len(bad) > 0 {
		t.Errorf("the browser reported %d policy violations or script errors:\n%s", len(bad), strings.Join(bad, "\n"))
	}

	// The watch sees a violation when there is one: an image from another
	// origin breaks img-src 'self'.
	run(t, b.ctx, "load a foreign image", chromedp.Evaluate[chromedp.Void](
		`document.body.append(Object.assign(document.createElement("img"), {src: "http://127.0.0.1:9/x.png"}))`))
	console.await(t, "a violation of img-src")
}

// row is one message as the home page's table shows it.
type row struct {
	ID, From, Subject, Date, Snippet string
}

// inbox reads the table, once the page is not loading.
func (b tab) inbox() []row {
	b.t.Helper()
	b.await("the inbox loaded", `document.getElementById("messages").getAttribute("aria-busy") === "false"`)
	return run(b.t, b.ctx, "read the inbox", chromedp.Evaluate[[]row](`[...document.querySelectorAll("#rows tr[data-id]")].map(tr => ({
		ID: tr.dataset.id, From: tr.cells[0].textContent, Subject: tr.cells[1].textContent,
		Date: tr.cells[2].textContent, Snippet: tr.cells[3].textContent}))`))
}

// awaitNewPage waits until the table's first row is no longer old's.
func (b tab) awaitNewPage(old []row) {
	b.t.Helper()
	b.await("another page of messages", `(() => {
		const tr = document.querySelector("#rows tr");
		return document.getElementById("messages").getAttribute("aria-busy") === "false" && !!tr && tr.dataset.id !== `+jsString(old[0].ID)+`;
	})()`)
}

// await evaluates the JavaScript condition until it is true. It polls from
// Go: chromedp.Poll builds its predicate with new Function, which the page's
// policy forbids.
func (b tab) await(what, cond string) {
	b.t.Helper()
	deadline := time.Now().Add(actionTimeout)
	for {
		ok := run(b.t, b.ctx, "await "+what, chromedp.Evaluate[bool](cond))
		if ok {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("waited %v for %s: %s", actionTimeout, what, b.state())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func (b tab) visible(id string) bool {
	b.t.Helper()
	return run(b.t, b.ctx, "is #"+id+" visible", chromedp.Evaluate[bool](`document.getElementById(`+jsString(id)+`).checkVisibility()`))
}

func (b tab) enabled(id string) bool {
	b.t.Helper()
	return !run(b.t, b.ctx, "is #"+id+" disabled", chromedp.JavascriptAttribute[bool](chromedp.ID(id), "disabled"))
}

// jsString quotes s as a JavaScript string literal (s has no quote or
// backslash: an id).
func jsString(s string) string { return `"` + s + `"` }

// consoleWatch collects what the browser reports to the console.
type consoleWatch struct {
	mu   sync.Mutex
	msgs []chromedp.ConsoleMessage
}

// watchConsole starts collecting the console messages of the tab.
func watchConsole(t *testing.T, ctx context.Context) *consoleWatch {
	t.Helper()
	w := &consoleWatch{}
	ctx, cancel := context.WithCancel(ctx)
	messages := chromedp.Console(ctx) // subscribed from here on
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			w.mu.Lock()
			w.msgs = append(w.msgs, m)
			w.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return w
}

// problems are the reported policy violations and uncaught script errors.
func (w *consoleWatch) problems() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var bad []string
	for _, m := range w.msgs {
		if m.IsException() || m.Source == "security" || strings.Contains(m.Text, "Content Security Policy") || strings.Contains(m.Text, "Trusted Type") {
			bad = append(bad, m.String()+" ("+m.URL+")")
		}
	}
	return bad
}

// await waits until the watch has seen a problem.
func (w *consoleWatch) await(t *testing.T, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(w.problems()) == 0 {
		if time.Now().After(deadline) {
			w.mu.Lock()
			defer w.mu.Unlock()
			t.Fatalf("the console watch saw no %s in 5s; it saw: %v", what, w.msgs)
		}
		time.Sleep(25 * time.Millisecond)
	}
}
