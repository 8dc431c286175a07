package fakegoogle

import (
	"context"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	"google.golang.org/api/gmail/v1"
	"google.golang.org/api/option"
)

// testRedirectURI is the redirect URI the test client registers.
const testRedirectURI = "http://localhost:8080/callback"

// allScopes is what the test client asks for, as the functions do.
var allScopes = []string{OpenIDScope, "email", GmailReadonlyScope}

// fakeClock is a settable clock for Options.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, time.July, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// harness is a fake served by httptest with a real oauth2 client configured
// from its client_secret.json.
type harness struct {
	fake    *Server
	ts      *httptest.Server
	conf    *oauth2.Config
	browser *http.Client // does not follow redirects
}

func newHarness(t *testing.T, opts Options) *harness {
	t.Helper()
	if opts.RedirectURIs == nil {
		opts.RedirectURIs = []string{testRedirectURI}
	}
	fake, ts := NewTestServer(t, opts)
	conf, err := google.ConfigFromJSON(fake.ClientSecretJSON(ts.URL), allScopes...)
	if err != nil {
		t.Fatalf("google.ConfigFromJSON: %v", err)
	}
	browser := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &harness{fake: fake, ts: ts, conf: conf, browser: browser}
}

// consent is what the user does on the consent page.
type consent struct {
	email  string   // empty: keep the prefilled address
	untick []string // scopes to untick
	deny   bool
}

// authorize opens the authorization URL, acts on the consent page (unless
// the fake redirects at once) and returns the query of the redirect to the
// app.
func (h *harness) authorize(t *testing.T, c consent, opts ...oauth2.AuthCodeOption) url.Values {
	t.Helper()
	res, body := h.get(t, h.conf.AuthCodeURL("st4te", opts...))
	if res.StatusCode == http.StatusFound {
		return h.appRedirect(t, res)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("authorization endpoint: status %d, body:\n%s", res.StatusCode, body)
	}
	return h.submitConsent(t, body, c)
}

// submitConsent posts the consent form found in page.
func (h *harness) submitConsent(t *testing.T, page string, c consent) url.Values {
	t.Helper()
	form := url.Values{"request": {formValue(t, page, "request")}}
	form.Set("email", formValue(t, page, "email"))
	if c.email != "" {
		form.Set("email", c.email)
	}
	for _, m := range regexp.MustCompile(`<input type="checkbox" id="[^"]*" name="scope" value="([^"]*)" checked>`).FindAllStringSubmatch(page, -1) {
		if !slices.Contains(c.untick, m[1]) {
			form.Add("scope", m[1])
		}
	}
	form.Set("action", "allow")
	if c.deny {
		form.Set("action", "deny")
	}
	res, err := h.browser.PostForm(h.ts.URL+consentPath, form)
	if err != nil {
		t.Fatalf("posting consent: %v", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusFound {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("consent: status %d, want 302; body:\n%s", res.StatusCode, b)
	}
	return h.appRedirect(t, res)
}

// appRedirect checks that res redirects to the app and returns its query.
func (h *harness) appRedirect(t *testing.T, res *http.Response) url.Values {
	t.Helper()
	loc, err := url.Parse(res.Header.Get("Location"))
	if err != nil {
		t.Fatalf("parsing Location: %v", err)
	}
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != testRedirectURI && !strings.HasPrefix(got, "http://127.0.0.1") {
		t.Fatalf("redirected to %q, want the app's redirect URI", got)
	}
	return loc.Query()
}

// code runs the consent flow with PKCE and returns the code and verifier.
func (h *harness) code(t *testing.T, c consent, opts ...oauth2.AuthCodeOption) (code, verifier string) {
	t.Helper()
	verifier = oauth2.GenerateVerifier()
	q := h.authorize(t, c, append(opts, oauth2.S256ChallengeOption(verifier))...)
	if q.Get("code") == "" {
		t.Fatalf("no code in redirect: %v", q)
	}
	return q.Get("code"), verifier
}

// login runs the whole flow and returns the token.
func (h *harness) login(t *testing.T, c consent, opts ...oauth2.AuthCodeOption) *oauth2.Token {
	t.Helper()
	code, verifier := h.code(t, c, opts...)
	tok, err := h.conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	return tok
}

// get fetches u without following redirects.
func (h *harness) get(t *testing.T, u string) (*http.Response, string) {
	t.Helper()
	res, err := h.browser.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("reading %s: %v", u, err)
	}
	return res, string(b)
}

// postForm posts form to path and decodes the JSON answer.
func (h *harness) postForm(t *testing.T, path string, form url.Values, basicAuth ...string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.ts.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if len(basicAuth) == 2 {
		req.SetBasicAuth(url.QueryEscape(basicAuth[0]), url.QueryEscape(basicAuth[1]))
	}
	return doJSON(t, req)
}

// tokenForm posts a token request with the client credentials in the body.
func (h *harness) tokenForm(t *testing.T, form url.Values) (int, map[string]any) {
	t.Helper()
	form.Set("client_id", h.fake.ClientID())
	form.Set("client_secret", h.fake.ClientSecret())
	return h.postForm(t, "/token", form)
}

// doJSON sends req and decodes the JSON answer.
func doJSON(t *testing.T, req *http.Request) (int, map[string]any) {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s %s: Content-Type %q, want application/json", req.Method, req.URL.Path, ct)
	}
	var body map[string]any
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		t.Fatalf("%s %s: decoding: %v", req.Method, req.URL.Path, err)
	}
	return res.StatusCode, body
}

// gmail returns a real Gmail client that sends accessToken.
func (h *harness) gmail(t *testing.T, accessToken string) *gmail.Service {
	t.Helper()
	hc := oauth2.NewClient(context.Background(), oauth2.StaticTokenSource(&oauth2.Token{AccessToken: accessToken, TokenType: "Bearer"}))
	svc, err := gmail.NewService(context.Background(), option.WithEndpoint(Endpoints(h.ts.URL).GmailEndpoint), option.WithHTTPClient(hc))
	if err != nil {
		t.Fatalf("gmail.NewService: %v", err)
	}
	return svc
}

// gmailGET sends a raw Gmail request with a bearer token and decodes the
// answer.
func (h *harness) gmailGET(t *testing.T, accessToken, pathAndQuery string) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, h.ts.URL+pathAndQuery, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accessToken != "" {
		req.Header.Set("Authorization", "Bearer "+accessToken)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", pathAndQuery, err)
	}
	defer res.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		t.Fatalf("GET %s: decoding: %v", pathAndQuery, err)
	}
	return res, body
}

// formValue returns the value attribute of the input named name in page.
func formValue(t *testing.T, page, name string) string {
	t.Helper()
	m := regexp.MustCompile(`name="` + name + `" value="([^"]*)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no input %q in page:\n%s", name, page)
	}
	return html.UnescapeString(m[1])
}

// oauthErr returns the error and description of an OAuth error body.
func oauthErr(body map[string]any) (string, string) {
	e, _ := body["error"].(string)
	d, _ := body["error_description"].(string)
	return e, d
}

// tokenFor runs the flow for email with scopes (allScopes if none) and
// returns the token.
func (h *harness) tokenFor(t *testing.T, email string, scopes ...string) *oauth2.Token {
	t.Helper()
	if len(scopes) == 0 {
		scopes = allScopes
	}
	saved := h.conf.Scopes
	h.conf.Scopes = scopes
	defer func() { h.conf.Scopes = saved }()
	return h.login(t, consent{email: email}, oauth2.SetAuthURLParam("login_hint", email), oauth2.AccessTypeOffline)
}
