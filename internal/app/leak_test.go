package app

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/config"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/cookies"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/tokenstore"
)

// capturedResponse is one answer of a function, as the client saw it.
type capturedResponse struct {
	step   string
	status int
	header http.Header
	body   string
}

// leakRecorder runs a harness and keeps every answer, every token-endpoint
// answer of the fake Google and every record written to the store.
type leakRecorder struct {
	h *harness

	mu        sync.Mutex
	responses []capturedResponse
	idTokens  []string
	written   [][]byte // every record and access update written, as JSON
	verifiers []string // PKCE verifiers, read from the flow cookies
	gmail401  bool     // the fake Gmail refuses every access token
}

// recordingStore notes every write before passing it on.
type recordingStore struct {
	TokenStore
	rec *leakRecorder
}

func (s recordingStore) Update(ctx context.Context, sub string, fn func(cur *tokenstore.Record) (*tokenstore.Record, error)) (*tokenstore.Record, error) {
	return s.TokenStore.Update(ctx, sub, func(cur *tokenstore.Record) (*tokenstore.Record, error) {
		next, err := fn(cur)
		if next != nil {
			s.rec.keep(next)
		}
		return next, err
	})
}

func (s recordingStore) SaveAccess(ctx context.Context, sub string, version time.Time, u tokenstore.AccessUpdate) error {
	s.rec.keep(u)
	return s.TokenStore.SaveAccess(ctx, sub, version, u)
}

func (l *leakRecorder) keep(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	l.mu.Lock()
	l.written = append(l.written, b)
	l.mu.Unlock()
}

func newLeakRecorder(t *testing.T, opts ...harnessOpt) *leakRecorder {
	l := &leakRecorder{}
	l.h = newHarness(t, append([]harnessOpt{func(_ *config.Config, d *Deps) { d.Store = recordingStore{d.Store, l} }}, opts...)...)
	l.h.setIntercept(l.intercept)
	return l
}

// intercept sits in front of the fake Google: it keeps the id_tokens the
// token endpoint hands out, and can make Gmail refuse every token.
func (l *leakRecorder) intercept(w http.ResponseWriter, r *http.Request) bool {
	l.mu.Lock()
	refuse := l.gmail401
	l.mu.Unlock()
	switch {
	case refuse && strings.HasPrefix(r.URL.Path, "/gmail/"):
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"error":{"code":401,"message":"Invalid Credentials","status":"UNAUTHENTICATED"}}`))
		return true
	case r.URL.Path == "/token":
		rec := newRecorder()
		l.h.fake.ServeHTTP(rec, r)
		var m map[string]any
		if json.Unmarshal(rec.buf.Bytes(), &m) == nil {
			if s, _ := m["id_token"].(string); s != "" {
				l.mu.Lock()
				l.idTokens = append(l.idTokens, s)
				l.mu.Unlock()
			}
		}
		for k, v := range rec.h {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.status)
		w.Write(rec.buf.Bytes())
		return true
	}
	return false
}

// do calls a function and keeps its answer; the body stays readable.
func (l *leakRecorder) do(step, method, target string, hdr ...string) *http.Response {
	l.h.t.Helper()
	resp := l.h.do(method, target, hdr...)
	b, _ := io.ReadAll(resp.Body)
	resp.Body = io.NopCloser(bytes.NewReader(b))
	l.mu.Lock()
	l.responses = append(l.responses, capturedResponse{step, resp.StatusCode, resp.Header.Clone(), string(b)})
	l.mu.Unlock()
	return resp
}

func (l *leakRecorder) get(step, target string, hdr ...string) *http.Response {
	l.h.t.Helper()
	return l.do(step, http.MethodGet, target, hdr...)
}

// authorize starts a flow and returns Google's URL. It reads the PKCE
// verifier out of the flow cookie, and checks that the URL carries the
// state and the S256 challenge of that verifier but never the verifier.
func (l *leakRecorder) authorize(step, query string) string {
	h := l.h
	h.t.Helper()
	resp := l.get(step, "/Authorize?"+query, "Accept", htmlAccept)
	wantStatus(h.t, resp, http.StatusFound)
	loc := resp.Header.Get("Location")
	u, err := url.Parse(loc)
	if err != nil {
		h.t.Fatal(err)
	}
	q := u.Query()
	state := q.Get("state")
	name := h.app.flowCookieName(state)
	var f flowState
	if err := cookies.Decode(secRings(h.t, h.secKeys()).cookie, name, h.jar[name], h.clock.Now(), &f); err != nil {
		h.t.Fatalf("%s: open the flow cookie: %v", step, err)
	}
	sum := sha256.Sum256([]byte(f.Verifier))
	if f.State != state || q.Get("code_challenge") != base64.RawURLEncoding.EncodeToString(sum[:]) || q.Get("code_challenge_method") != "S256" {
		h.t.Fatalf("%s: Google URL %s lacks the state or the S256 challenge of the flow's verifier", step, loc)
	}
	if strings.Contains(loc, f.Verifier) || len(f.Verifier) < 43 {
		h.t.Fatalf("%s: the PKCE verifier is in the Google URL", step)
	}
	l.verifiers = append(l.verifiers, f.Verifier)
	return loc
}

// login runs a whole flow for email; the Callback answer is kept. A step
// whose name has "consent" in it asks for prompt=consent.
func (l *leakRecorder) login(step, email string, hdr ...string) *http.Response {
	l.h.t.Helper()
	query := "login_hint=" + url.QueryEscape(email) + "&return_to=/app"
	if strings.Contains(step, "consent") {
		query += "&prompt=consent"
	}
	redirect := l.h.consent(l.authorize(step+": Authorize", query), email, true, true)
	return l.get(step+": Callback", redirect, hdr...)
}

// secret is a value that must not leak, and what it is.
type secret struct{ what, value string }

// forms are the encodings in which a secret could leak.
func (s secret) forms() []string {
	j, _ := json.Marshal(s.value)
	return []string{s.value, url.QueryEscape(s.value), url.PathEscape(s.value), string(j[1 : len(j)-1])}
}

// foundIn returns the secret's encoding found in text, or "".
func (s secret) foundIn(text string) string {
	for _, f := range s.forms() {
		if strings.Contains(text, f) {
			return f
		}
	}
	return ""
}

// keyMaterial lists every form of the key set's keys: the JSON itself,
// each key in base64, base64url, hex and raw, and the per-purpose keys the
// App derives from them.
func keyMaterial(t testing.TB, keySet []byte) []secret {
	var ks struct {
		Keys map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(keySet, &ks); err != nil {
		t.Fatal(err)
	}
	out := []secret{{"key set JSON", string(keySet)}}
	for id, b64 := range ks.Keys {
		raw, _ := base64.StdEncoding.DecodeString(b64)
		keys := map[string][]byte{"key " + id: raw}
		for _, purpose := range []string{"token", "cookie", "email-binding"} {
			d, err := hkdf.Key(sha256.New, raw, nil, "gmail-oauth-functions/"+purpose, 32)
			if err != nil {
				t.Fatal(err)
			}
			keys["key "+id+" for "+purpose] = d
		}
		for what, k := range keys {
			out = append(out,
				secret{what + " (base64)", base64.StdEncoding.EncodeToString(k)},
				secret{what + " (base64url)", base64.RawURLEncoding.EncodeToString(k)},
				secret{what + " (hex)", hex.EncodeToString(k)},
				secret{what + " (raw)", string(k)})
		}
	}
	return out
}

// TestNothingLeaks runs every path a token takes (login, listing, a
// refresh on expiry, a refresh after Gmail's 401, a refused refresh, a
// reused code, Google failing, disconnecting) with debug logging, then
// looks for every secret the run produced in every log line, every answer
// and every stored record.
func TestNothingLeaks(t *testing.T) {
	l := newLeakRecorder(t)
	h := l.h
	const other, third = "second@example.com", "third@example.com"

	// Logins: a page, JSON, a second user, a reused code, a bad state.
	wantStatus(t, l.login("login", demo, "Accept", htmlAccept), http.StatusFound)
	wantStatus(t, l.get("list", "/ListMessages?maxResults=5&format=metadata", "Accept", jsonAccept), http.StatusOK)
	wantStatus(t, l.get("Authorize JSON", "/Authorize?login_hint="+other, "Accept", jsonAccept), http.StatusOK)
	redirect := h.consent(l.authorize("second user: Authorize", "login_hint="+other), other, true, true)
	flow := map[string]string{}
	for k, v := range h.jar {
		flow[k] = v
	}
	wantStatus(t, l.get("second user: Callback JSON", redirect, "Accept", jsonAccept), http.StatusOK)
	for k, v := range flow {
		h.jar[k] = v
	}
	l.get("reused code", redirect, "Accept", jsonAccept)
	l.get("reused code, page", redirect, "Accept", htmlAccept)
	l.get("bad state", strings.Replace(redirect, "state=", "state=x", 1), "Accept", htmlAccept)

	// Back to the first user: refresh on expiry, refresh after a 401.
	h.jar = map[string]string{}
	wantStatus(t, l.login("login again", demo, "Accept", jsonAccept), http.StatusOK)
	h.clock.Advance(time.Hour)
	wantStatus(t, l.get("refresh on expiry", "/ListMessages"), http.StatusOK)
	h.fake.ExpireAccessTokens(demo)
	wantStatus(t, l.get("refresh after a 401", "/ListMessages?all=true&limit=600"), http.StatusOK)

	// Google failing: the token endpoint on a refresh and on a code exchange.
	h.clock.Advance(time.Hour)
	h.fake.InjectTokenFault(http.StatusInternalServerError, "internal_failure", 1)
	l.get("refresh, token endpoint down", "/ListMessages", "Accept", jsonAccept)
	red := h.consent(l.authorize("exchange fails: Authorize", ""), demo, true, true)
	h.fake.InjectTokenFault(http.StatusServiceUnavailable, "", 1)
	l.get("exchange fails: Callback", red, "Accept", htmlAccept)
	red = h.consent(l.authorize("exchange, connection broken: Authorize", ""), demo, true, true)
	h.fake.InjectTokenFault(0, "", 1)
	l.get("exchange, connection broken: Callback", red, "Accept", jsonAccept)
	h.clock.Advance(time.Hour)
	h.fake.InjectTokenFault(0, "", 1)
	l.get("refresh, connection broken", "/ListMessages", "Accept", jsonAccept)

	// A 401 that a refresh does not cure, then a revoked grant (invalid_grant).
	h.jar = map[string]string{}
	wantStatus(t, l.login("login before the 401", demo, "Accept", jsonAccept), http.StatusOK)
	l.mu.Lock()
	l.gmail401 = true
	l.mu.Unlock()
	l.get("401 not cured", "/ListMessages", "Accept", jsonAccept)
	l.mu.Lock()
	l.gmail401 = false
	l.mu.Unlock()
	wantStatus(t, l.login("consent after the 401", demo, "Accept", jsonAccept), http.StatusOK)
	h.fake.RevokeGrant(demo)
	h.clock.Advance(time.Hour)
	l.get("invalid_grant", "/ListMessages", "Accept", jsonAccept)
	l.get("invalid_grant, page", "/ListMessages", "Accept", htmlAccept)

	// A grant Callback does not keep (Gmail unticked) is revoked at Google.
	h.jar = map[string]string{}
	red = h.consent(l.authorize("Gmail unticked: Authorize", ""), demo, true, false)
	wantStatus(t, l.get("Gmail unticked: Callback", red, "Accept", htmlAccept), http.StatusForbidden)

	// Consent again, then disconnect: revoked at Google, then a failed revocation.
	h.jar = map[string]string{}
	wantStatus(t, l.login("consent again", demo, "Accept", jsonAccept), http.StatusOK)
	wantStatus(t, l.do("Disconnect", http.MethodPost, "/Disconnect"), http.StatusOK)
	h.jar = map[string]string{}
	wantStatus(t, l.login("second user again", other, "Accept", jsonAccept), http.StatusOK)
	h.fake.InjectTokenFault(0, "", 0)
	l.h.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/revoke" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}
		return l.intercept(w, r)
	})
	wantStatus(t, l.do("Disconnect, revocation fails", http.MethodPost, "/Disconnect"), http.StatusOK)
	red = h.consent(l.authorize("Gmail unticked, revocation fails: Authorize", "login_hint="+third), third, true, false)
	wantStatus(t, l.get("Gmail unticked, revocation fails: Callback", red, "Accept", jsonAccept), http.StatusForbidden)

	// Every secret of the run.
	var secrets []secret
	for _, email := range []string{demo, other, third} {
		for _, v := range h.fake.AccessTokens(email) {
			secrets = append(secrets, secret{"access token of " + email, v})
		}
		for _, v := range h.fake.RefreshTokens(email) {
			secrets = append(secrets, secret{"refresh token of " + email, v})
		}
	}
	codes := h.fake.Codes()
	for _, v := range codes {
		secrets = append(secrets, secret{"authorization code", v})
	}
	for _, v := range l.idTokens {
		secrets = append(secrets, secret{"id_token", v})
	}
	for _, v := range l.verifiers {
		secrets = append(secrets, secret{"PKCE verifier", v})
	}
	secrets = append(secrets, secret{"client secret", h.fake.ClientSecret()})
	secrets = append(secrets, keyMaterial(t, h.secKeys())...)
	cookieValues := map[string]bool{}
	for _, r := range l.responses {
		for _, c := range (&http.Response{Header: r.header}).Cookies() {
			if c.Value != "" && !cookieValues[c.Value] {
				cookieValues[c.Value] = true
				secrets = append(secrets, secret{"cookie " + c.Name, c.Value})
			}
		}
	}
	if len(codes) < 6 || len(l.idTokens) < 6 || len(cookieValues) < 10 || len(h.fake.RefreshTokens(demo)) < 3 {
		t.Fatalf("the run did not exercise what it should: %d codes, %d id_tokens, %d cookies, %d refresh tokens",
			len(codes), len(l.idTokens), len(cookieValues), len(h.fake.RefreshTokens(demo)))
	}
	for _, s := range secrets {
		if len(s.value) < 16 {
			t.Fatalf("%s is too short to search for: %q", s.what, s.value)
		}
	}

	// The logs, at debug level.
	logs := h.logs.String()
	if !strings.Contains(logs, `"level":"DEBUG"`) && !strings.Contains(logs, "refresh failed") {
		t.Fatalf("the run logged too little to prove anything:\n%s", logs)
	}
	for _, s := range secrets {
		if f := s.foundIn(logs); f != "" {
			t.Errorf("%s in the logs:\n%s", s.what, lineWith(logs, f))
		}
	}

	// Every answer: bodies, and headers; a cookie's value only in its own Set-Cookie.
	for _, r := range l.responses {
		for _, s := range secrets {
			if f := s.foundIn(r.body); f != "" {
				t.Errorf("%s: %s in the body: %s", r.step, s.what, r.body)
			}
			for name, values := range r.header {
				for _, v := range values {
					if strings.EqualFold(name, "Set-Cookie") && cookieValue(v) == s.value {
						continue
					}
					if s.foundIn(v) != "" {
						t.Errorf("%s: %s in header %s: %s", r.step, s.what, name, v)
					}
				}
			}
		}
	}

	// The store: every write, and what is left.
	for _, email := range []string{demo, other} {
		if rec := h.record(email); rec != nil {
			l.keep(rec)
		}
	}
	if len(l.written) < 8 {
		t.Fatalf("only %d store writes were seen", len(l.written))
	}
	for _, w := range l.written {
		var raw bytes.Buffer
		raw.Write(w)
		// The sealed fields, decoded, as they would lie in Firestore.
		var rec map[string]any
		json.Unmarshal(w, &rec)
		for _, f := range []string{"RefreshToken", "AccessToken"} {
			if m, ok := rec[f].(map[string]any); ok {
				if c, ok := m["Ciphertext"].(string); ok {
					b, _ := base64.StdEncoding.DecodeString(c)
					raw.Write(b)
				}
			}
		}
		for _, s := range secrets {
			if strings.HasPrefix(s.what, "cookie") || strings.HasPrefix(s.what, "key") {
				continue
			}
			if s.foundIn(raw.String()) != "" {
				t.Errorf("%s stored in clear: %s", s.what, w)
			}
		}
	}
}

// cookieValue is the value of a Set-Cookie header line.
func cookieValue(setCookie string) string {
	c, err := http.ParseSetCookie(setCookie)
	if err != nil {
		return ""
	}
	return c.Value
}

func lineWith(text, s string) string {
	for line := range strings.SplitSeq(text, "\n") {
		if strings.Contains(line, s) {
			return line
		}
	}
	return ""
}

// TestNothingLeaks_IAMCallerTokens: a caller's ID token, accepted or
// refused, is never logged or echoed.
func TestNothingLeaks_IAMCallerTokens(t *testing.T) {
	h, _ := iamHarness(t)
	tokens := []string{
		callerToken(nil),
		callerToken(func(c map[string]any) { c["aud"] = "https://elsewhere.example" }),
		callerToken(func(c map[string]any) { c["email"] = "intruder@x.iam.gserviceaccount.com" }),
		callerToken(func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() }),
		forgerSigner().sign(nil, callerClaims()),
	}
	for _, tok := range tokens {
		resp := h.get("/ListMessages?user="+h.fake.UserSub(demo), "Authorization", "Bearer "+tok)
		b := body(resp)
		for _, part := range append(strings.Split(tok, "."), tok) {
			if strings.Contains(b, part) || strings.Contains(h.logs.String(), part) {
				t.Fatalf("status %d: the caller's token (or a part of it) leaked", resp.StatusCode)
			}
		}
	}
}
