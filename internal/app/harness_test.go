package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/config"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/fakegoogle"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/keyring"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/secrets"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/tokenstore"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/tokenstore/localstore"
)

// base is where the functions are served in tests: https, so cookies are
// Secure and carry the __Host- prefix as in production.
const base = "https://fn.example"

// clock is a settable time shared by the App and the fake Google.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// harness is one App over a fake Google and a memory store, with a tiny
// browser: a cookie jar that follows Set-Cookie.
type harness struct {
	t       testing.TB
	fake    *fakegoogle.Server
	fakeURL string
	store   *localstore.Store
	app     *App
	cfg     config.Config
	clock   *clock
	logs    *bytes.Buffer
	jar     map[string]string
	keys    *swapFetcher
	secret  secrets.Fetcher // the OAuth client
	pending string          // a callback URL a test set up

	mu        sync.Mutex
	intercept func(w http.ResponseWriter, r *http.Request) bool // in front of the fake; true = handled
}

type harnessOpt func(*config.Config, *Deps)

func newHarness(t testing.TB, opts ...harnessOpt) *harness {
	t.Helper()
	h := &harness{t: t, clock: &clock{t: time.Now()}, logs: &bytes.Buffer{}, jar: map[string]string{}}
	h.fake = fakegoogle.New(fakegoogle.Options{Now: h.clock.Now, RedirectURIs: []string{base + "/Callback"}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		ic := h.intercept
		h.mu.Unlock()
		if ic != nil && ic(w, r) {
			return
		}
		h.fake.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	h.fakeURL = srv.URL
	ep := fakegoogle.Endpoints(srv.URL)
	h.cfg = config.Config{
		SecretTTL: time.Minute, RedirectURL: base + "/Callback", AuthorizeURL: base + "/Authorize", ListMessagesURL: base + "/ListMessages",
		GmailScope: config.GmailReadonly, Store: config.StoreLocal, ListAuthMode: config.AuthSession,
		SessionTTL: 24 * time.Hour, MetadataConcurrency: 2, GmailBatchSize: 50, GmailRetryBudget: 50 * time.Millisecond,
		Endpoints: config.Endpoints{AuthURL: ep.AuthURL, TokenURL: ep.TokenURL, RevokeURL: ep.RevokeURL,
			UserinfoURL: ep.UserinfoURL, Gmail: ep.GmailEndpoint},
	}
	st, err := localstore.Open("")
	if err != nil {
		t.Fatal(err)
	}
	h.store = st
	h.keys = &swapFetcher{b: keyring.Generate("k1")}
	h.secret = secrets.Static(h.fake.ClientSecretJSON(srv.URL, base+"/Callback"))
	d := Deps{
		ClientSecret: h.secret,
		Keys:         h.keys, Store: st, HTTPClient: srv.Client(),
		Logger: slog.New(slog.NewJSONHandler(&lockedWriter{w: h.logs}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:    h.clock.Now,
	}
	for _, o := range opts {
		o(&h.cfg, &d)
	}
	h.app, err = New(h.cfg, d)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// renewSecrets lets a request find the secrets past their TTL and waits
// for the background renewal it starts, so that the requests after it see
// what the sources now hold.
func (h *harness) renewSecrets() {
	h.t.Helper()
	ctx := context.Background()
	h.app.client.Get(ctx)
	h.app.keys.Get(ctx)
	h.app.client.Wait()
	h.app.keys.Wait()
}

// swapFetcher is a key set source a test can rotate.
type swapFetcher struct {
	mu sync.Mutex
	b  []byte
}

func (s *swapFetcher) Fetch(context.Context) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b, nil
}

func (s *swapFetcher) set(b []byte) { s.mu.Lock(); s.b = b; s.mu.Unlock() }

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (h *harness) setIntercept(f func(w http.ResponseWriter, r *http.Request) bool) {
	h.mu.Lock()
	h.intercept = f
	h.mu.Unlock()
}

// do sends a request to a function, with the jar's cookies, and keeps the
// cookies it sets. hdr is pairs of header name and value.
func (h *harness) do(method, target string, hdr ...string) *http.Response {
	h.t.Helper()
	if !strings.HasPrefix(target, "http") {
		target = base + target
	}
	req := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	for k, v := range h.jar {
		req.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	name := strings.TrimPrefix(req.URL.Path, "/")
	fn, ok := h.app.Handlers()[name]
	if !ok {
		h.t.Fatalf("no function %q", name)
	}
	rec := httptest.NewRecorder()
	fn(rec, req)
	resp := rec.Result()
	for _, c := range resp.Cookies() {
		if c.MaxAge < 0 || c.Value == "" {
			delete(h.jar, c.Name)
		} else {
			h.jar[c.Name] = c.Value
		}
	}
	return resp
}

func (h *harness) get(target string, hdr ...string) *http.Response {
	h.t.Helper()
	return h.do(http.MethodGet, target, hdr...)
}

// consent plays the user on the fake's consent page for authURL: Allow or
// Deny, with or without the Gmail box ticked. It returns the URL Google
// redirects back to.
func (h *harness) consent(authURL, email string, allow, gmail bool) string {
	h.t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(authURL)
	if err != nil {
		h.t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		h.t.Fatalf("consent page: %d %s", resp.StatusCode, page)
	}
	m := regexp.MustCompile(`name="request" value="([^"]+)"`).FindSubmatch(page)
	if m == nil {
		h.t.Fatalf("no request field in consent page")
	}
	form := url.Values{"request": {htmlUnescape(string(m[1]))}, "email": {email}, "action": {"deny"}}
	if allow {
		form.Set("action", "allow")
	}
	for _, s := range regexp.MustCompile(`name="scope" value="([^"]+)"`).FindAllSubmatch(page, -1) {
		if v := htmlUnescape(string(s[1])); gmail || v != fakegoogle.GmailReadonlyScope {
			form.Add("scope", v)
		}
	}
	resp, err = c.PostForm(h.fakeURL+"/o/oauth2/v2/consent", form)
	if err != nil {
		h.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		h.t.Fatalf("consent answered %d", resp.StatusCode)
	}
	return resp.Header.Get("Location")
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&#43;", "+", "&#34;", `"`, "&#39;", "'", "&lt;", "<", "&gt;", ">").Replace(s)
}

// authorize calls Authorize and returns Google's consent URL.
func (h *harness) authorize(query string) string {
	h.t.Helper()
	resp := h.get("/Authorize?" + query)
	if resp.StatusCode != http.StatusFound {
		h.t.Fatalf("Authorize: %d %s", resp.StatusCode, body(resp))
	}
	return resp.Header.Get("Location")
}

// callback delivers Google's redirect to the Callback function.
func (h *harness) callback(redirect string, hdr ...string) *http.Response {
	h.t.Helper()
	if !strings.HasPrefix(redirect, base+"/Callback") {
		h.t.Fatalf("Google redirected to %q", redirect)
	}
	resp := h.get(redirect, hdr...)
	if resp.StatusCode == http.StatusFound && resp.Header.Get("Location") == "/Callback" {
		return h.get(base+"/Callback", hdr...) // the browser follows to the clean success URL
	}
	return resp
}

// login runs the whole flow for email and returns the Callback answer.
func (h *harness) login(email string) *http.Response {
	h.t.Helper()
	return h.callback(h.consent(h.authorize("login_hint="+url.QueryEscape(email)), email, true, true))
}

func body(resp *http.Response) string {
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return string(b)
}

func decode[T any](t testing.TB, resp *http.Response) T {
	t.Helper()
	var v T
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
	return v
}

// record returns the stored record of email's account, or nil.
func (h *harness) record(email string) *tokenstore.Record {
	h.t.Helper()
	r, err := h.store.Get(context.Background(), h.fake.UserSub(email))
	if errors.Is(err, tokenstore.ErrNotFound) {
		return nil
	}
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

// wantStatus fails unless resp has status.
func wantStatus(t testing.TB, resp *http.Response, status int) string {
	t.Helper()
	b := body(resp)
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d; body %s", resp.StatusCode, status, b)
	}
	return b
}

const jsonAccept = "application/json"
const htmlAccept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
