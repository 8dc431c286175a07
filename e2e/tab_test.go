package e2e_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/browsertest"
)

// consentPath is the fake Google's authorization endpoint, which shows the
// consent page.
const consentPath = "/o/oauth2/v2/auth"

// actionTimeout bounds each browser action.
const actionTimeout = 20 * time.Second

// run runs one browser action with a timeout and fails the test if it
// fails.
func run[T any](t testing.TB, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, actionTimeout)
	defer cancel()
	v, err := chromedp.Run(c, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// tab is a browser tab and the local runner it talks to.
type tab struct {
	t   *testing.T
	ctx context.Context
	r   *browsertest.Runner
}

// newBrowser opens a fresh browser context (no cookies, storage or cache
// yet, as with a new profile) in the package's browser and returns its
// first tab, talking to r.
func newBrowser(t *testing.T, r *browsertest.Runner) tab {
	t.Helper()
	return tab{t: t, ctx: browser.NewContext(t), r: r}
}

// startRunner starts the local runner with no settings but its ports and
// data folder, once it knows Chromium is there. The folder is seeded with
// the fake Google's state, so that the runner does not generate a key.
func startRunner(t *testing.T) *browsertest.Runner {
	t.Helper()
	browsertest.RequireChromium(t) // every test here needs it; skip before starting anything
	return browsertest.StartRunner(t, browsertest.RunnerConfig{Bin: runnerBin, SeedFakeState: true})
}

// newTab opens another tab in the same browser (same cookies), closed when
// the test ends.
func (b tab) newTab() tab {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	b.t.Cleanup(cancel)
	// The first Run binds the tab's life to its context: no timeout here.
	if err := chromedp.Do(ctx); err != nil {
		b.t.Fatalf("opening a tab: %v", err)
	}
	return tab{t: b.t, ctx: ctx, r: b.r}
}

func (b tab) navigate(url string) *network.Response {
	b.t.Helper()
	return run(b.t, b.ctx, "navigate to "+url, chromedp.NavigateResponse(url))
}

// click clicks the element with the id and returns the response of the
// page it leads to.
func (b tab) click(id string) *network.Response {
	b.t.Helper()
	c, cancel := context.WithTimeout(b.ctx, actionTimeout)
	defer cancel()
	resp, err := chromedp.RunResponse(c, chromedp.Click(chromedp.ID(id)))
	if err != nil {
		b.t.Fatalf("click #%s on %s: %v", id, b.state(), err)
	}
	return resp
}

func (b tab) location() string {
	b.t.Helper()
	return run(b.t, b.ctx, "location", chromedp.Location())
}

func (b tab) text(id string) string {
	b.t.Helper()
	return run(b.t, b.ctx, "text of #"+id, chromedp.Text(chromedp.ID(id)))
}

func (b tab) href(id string) string {
	b.t.Helper()
	return run(b.t, b.ctx, "href of #"+id, chromedp.JavascriptAttribute[string](chromedp.ID(id), "href"))
}

func (b tab) checked(id string) bool {
	b.t.Helper()
	return run(b.t, b.ctx, "checked of #"+id, chromedp.JavascriptAttribute[bool](chromedp.ID(id), "checked"))
}

func (b tab) value(id string) string {
	b.t.Helper()
	return run(b.t, b.ctx, "value of #"+id, chromedp.Value(chromedp.ID(id)))
}

// bodyText is the text of the page: for a JSON answer, the JSON.
func (b tab) bodyText() string {
	b.t.Helper()
	return run(b.t, b.ctx, "page text", chromedp.Evaluate[string](`(document.querySelector("body > pre") || document.body).textContent`))
}

// state describes the page for failure messages.
func (b tab) state() string {
	c, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(c, chromedp.Location())
	text, _ := chromedp.Run(c, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	return loc + " showing " + strings.Join(strings.Fields(text), " ")
}

// cookies are the browser's cookies for the functions' origin.
func (b tab) cookies() []*network.Cookie {
	b.t.Helper()
	c, cancel := context.WithTimeout(b.ctx, actionTimeout)
	defer cancel()
	res, err := chromedp.Call(c, network.GetCookies, network.GetCookiesParams{URLs: []string{b.r.URL + "/"}})
	if err != nil {
		b.t.Fatalf("reading cookies: %v", err)
	}
	return res.Cookies
}

// cookie is the named cookie for the functions' origin, or nil.
func (b tab) cookie(name string) *network.Cookie {
	b.t.Helper()
	for _, c := range b.cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// screenshot saves a PNG of the page into dir and logs where. With no dir
// (E2E_SCREENSHOT_DIR unset) it takes none: a full-page capture costs a
// second or more on a busy machine, and nobody would see it.
func (b tab) screenshot(dir, name string) {
	b.t.Helper()
	if dir == "" {
		return
	}
	png := run(b.t, b.ctx, "screenshot", chromedp.FullScreenshot(100))
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot of %s: %s", b.location(), path)
}

// screenshotDir is where a test's screenshots go: a folder for the test
// under $E2E_SCREENSHOT_DIR, or "" (none taken) when it is not set.
func screenshotDir(t *testing.T) string {
	t.Helper()
	root := os.Getenv("E2E_SCREENSHOT_DIR")
	if root == "" {
		return ""
	}
	dir := filepath.Join(root, filepath.FromSlash(t.Name()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// insertText enters text into the focused field in one protocol call, as
// pasting or an input method does (the page sees its input event).
// chromedp.SendKeys sends three key events per character, each a round trip
// to the page: 7 s for an email address on a busy machine.
func insertText(text string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, input.InsertText, input.InsertTextParams{Text: text})
		return err
	})
}

// openConsent navigates to Authorize and checks it lands on the fake
// Google's consent page.
func (b tab) openConsent() {
	b.t.Helper()
	resp := b.navigate(b.r.URL + "/Authorize")
	if !strings.HasPrefix(resp.URL, b.r.FakeURL+consentPath+"?") || resp.Status != 200 {
		b.t.Fatalf("GET /Authorize ended at %s with status %d, want the consent page %s%s with 200", resp.URL, resp.Status, b.r.FakeURL, consentPath)
	}
	run(b.t, b.ctx, "wait for #allow", chromedp.WaitVisible(chromedp.ID("allow")))
}

// fillConsent types the email and ticks or unticks the Gmail box.
func (b tab) fillConsent(email string, gmail bool) {
	b.t.Helper()
	run(b.t, b.ctx, "type the email", chromedp.Steps(
		chromedp.Clear(chromedp.ID("email")),
		chromedp.Focus(chromedp.ID("email")),
		insertText(email),
	))
	if got := b.value("email"); got != email {
		b.t.Fatalf("#email = %q after typing, want %q", got, email)
	}
	if b.checked("scope-gmail") != gmail {
		run(b.t, b.ctx, "click #scope-gmail", chromedp.Click(chromedp.ID("scope-gmail")))
	}
	if got := b.checked("scope-gmail"); got != gmail {
		b.t.Fatalf("#scope-gmail checked = %v, want %v", got, gmail)
	}
}

// connect runs the whole flow for email and checks it ends on Callback's
// success page.
func (b tab) connect(email string) {
	b.t.Helper()
	b.openConsent()
	b.fillConsent(email, true)
	resp := b.click("allow")
	if resp.Status != 200 || resp.URL != b.r.URL+"/Callback" {
		b.t.Fatalf("Allow ended at %s with status %d, want %s/Callback with 200 and no code left in the address bar: %s", resp.URL, resp.Status, b.r.URL, b.state())
	}
	if got := b.text("title"); got != "Gmail connected" {
		b.t.Fatalf("Callback's title = %q, want %q", got, "Gmail connected")
	}
}

// listResponse is ListMessages' answer.
type listResponse struct {
	Messages []struct {
		ID       string `json:"id"`
		ThreadID string `json:"threadId"`
	} `json:"messages"`
	NextPageToken      string `json:"nextPageToken"`
	ResultSizeEstimate int    `json:"resultSizeEstimate"`
}

// listMessages opens ListMessages with the query (e.g. "?maxResults=5")
// and decodes the JSON page. It fails the test unless the answer is 200.
func (b tab) listMessages(query string) listResponse {
	b.t.Helper()
	resp := b.navigate(b.r.URL + "/ListMessages" + query)
	if resp.Status != 200 || resp.URL != b.r.URL+"/ListMessages"+query {
		b.t.Fatalf("GET /ListMessages%s ended at %s with status %d, want 200 there: %s", query, resp.URL, resp.Status, b.state())
	}
	return b.pageList()
}

// pageList decodes the page as ListMessages' answer and checks every
// message has an id and a threadId.
func (b tab) pageList() listResponse {
	b.t.Helper()
	text := b.bodyText()
	var l listResponse
	if err := json.Unmarshal([]byte(text), &l); err != nil {
		b.t.Fatalf("the ListMessages page is not its JSON answer (%v): %q", err, text)
	}
	for i, m := range l.Messages {
		if m.ID == "" || m.ThreadID == "" {
			b.t.Errorf("message %d has id %q and threadId %q; both must be set", i, m.ID, m.ThreadID)
		}
	}
	return l
}

// waitRequests waits until the runner has logged n requests of the
// function and returns them.
func waitRequests(t *testing.T, r *browsertest.Runner, function string, n int) []browsertest.LogRequest {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := r.Requests(function)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("the runner logged %d %s requests, want %d; its output:\n%s", len(got), function, n, r.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
