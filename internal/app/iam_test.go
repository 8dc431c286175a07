package app

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/api/idtoken"
	"google.golang.org/api/option"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/config"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/fakegoogle"
)

// The IAM-mode tests use the real idtoken.Validator. It fetches the keys of
// RS256 tokens from Google's service-account certs URL (googleSACertsURL in
// idtoken/validate.go) and those of ES256 tokens from IAP's; a transport
// sends the first to a JWKS this test serves for its own RSA key, and
// refuses everything else.
const (
	googleCertsURL = "https://www.googleapis.com/oauth2/v3/certs"
	// allowedCaller is the service account on the allow-list.
	allowedCaller = "lister@caller-project.iam.gserviceaccount.com"
	// iamAudience is the function's URL, the audience callers mint tokens for.
	iamAudience = base + "/ListMessages"
)

// jwtSigner signs RS256 JWTs with an RSA key under a key id.
type jwtSigner struct {
	key *rsa.PrivateKey
	kid string
}

// The keys take a while to generate under -race: once per test binary.
var (
	trustedSigner = sync.OnceValue(func() jwtSigner { return newJWTSigner("trusted-kid") })
	// forgerSigner is another key claiming the trusted key's id.
	forgerSigner = sync.OnceValue(func() jwtSigner { return newJWTSigner("trusted-kid") })
)

func newJWTSigner(kid string) jwtSigner {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return jwtSigner{key: k, kid: kid}
}

// sign returns header.payload.signature; header fields given override the
// defaults (alg RS256, this signer's kid).
func (s jwtSigner) sign(header, claims map[string]any) string {
	h := map[string]any{"alg": "RS256", "typ": "JWT", "kid": s.kid}
	for k, v := range header {
		h[k] = v
	}
	enc := base64.RawURLEncoding
	hb, _ := json.Marshal(h)
	cb, _ := json.Marshal(claims)
	input := enc.EncodeToString(hb) + "." + enc.EncodeToString(cb)
	sum := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, s.key, crypto.SHA256, sum[:])
	if err != nil {
		panic(err)
	}
	return input + "." + enc.EncodeToString(sig)
}

// jwks is the JSON Web Key Set Google publishes, for these signers.
func jwks(signers ...jwtSigner) []byte {
	var out struct {
		Keys []map[string]string `json:"keys"`
	}
	for _, s := range signers {
		out.Keys = append(out.Keys, map[string]string{
			"kty": "RSA", "alg": "RS256", "use": "sig", "kid": s.kid,
			"n": base64.RawURLEncoding.EncodeToString(s.key.N.Bytes()),
			"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(s.key.E)).Bytes()),
		})
	}
	b, _ := json.Marshal(out)
	return b
}

// certsTransport sends idtoken's fetch of Google's certs to a local JWKS
// server and refuses any other request.
type certsTransport struct {
	target *url.URL
	base   http.RoundTripper

	mu      sync.Mutex
	fetched []string
}

func (c *certsTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	u := r.URL.Scheme + "://" + r.URL.Host + r.URL.Path
	c.mu.Lock()
	c.fetched = append(c.fetched, u)
	c.mu.Unlock()
	if u != googleCertsURL {
		return nil, fmt.Errorf("test: idtoken fetched %s, which this test does not serve", u)
	}
	out := r.Clone(r.Context())
	out.URL.Scheme, out.URL.Host, out.Host = c.target.Scheme, c.target.Host, ""
	return c.base.RoundTrip(out)
}

// newIDTokenValidator is the real idtoken.Validator, trusting only the
// trusted signer's key as Google's.
func newIDTokenValidator(t testing.TB) (*idtoken.Validator, *certsTransport) {
	t.Helper()
	certs := jwks(trustedSigner())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(certs)
	}))
	t.Cleanup(srv.Close)
	target, _ := url.Parse(srv.URL)
	ct := &certsTransport{target: target, base: srv.Client().Transport}
	v, err := idtoken.NewValidator(t.Context(), option.WithHTTPClient(&http.Client{Transport: ct}))
	if err != nil {
		t.Fatal(err)
	}
	return v, ct
}

// iamMode deploys ListMessages private: callers present ID tokens for
// iamAudience and must be allowedCaller.
func iamMode(v IDTokenValidator) harnessOpt {
	return func(c *config.Config, d *Deps) {
		c.ListAuthMode = config.AuthIAM
		c.IAMAudience = iamAudience
		c.IAMAllowedCallers = []string{allowedCaller}
		d.IDTokens = v
	}
}

// callerClaims are the claims of a Google-signed ID token of the allowed
// service account, for the function's URL, valid for an hour.
func callerClaims() map[string]any {
	now := time.Now() // idtoken checks exp against the real clock
	return map[string]any{
		"iss": "https://accounts.google.com", "aud": iamAudience, "azp": "1234567890",
		"sub": "1234567890", "email": allowedCaller, "email_verified": true,
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}
}

// callerToken is a valid token with edit applied to its claims.
func callerToken(edit func(c map[string]any)) string {
	c := callerClaims()
	if edit != nil {
		edit(c)
	}
	return trustedSigner().sign(nil, c)
}

// iamHarness is a harness in IAM mode with demo's grant stored (by the
// browser flow, which IAM mode leaves as it is) and an empty cookie jar.
func iamHarness(t *testing.T, opts ...harnessOpt) (*harness, *certsTransport) {
	t.Helper()
	v, ct := newIDTokenValidator(t)
	h := newHarness(t, append([]harnessOpt{iamMode(v)}, opts...)...)
	wantStatus(t, h.login(demo), http.StatusOK)
	h.jar = map[string]string{}
	h.fake.ResetCounts()
	return h, ct
}

func TestIAM_AllowedCaller_ListsUserBySubOrEmail(t *testing.T) {
	h, ct := iamHarness(t)
	for _, user := range []string{h.fake.UserSub(demo), demo} {
		t.Run(user, func(t *testing.T) {
			resp := h.get("/ListMessages?maxResults=3&user="+url.QueryEscape(user), "Authorization", "Bearer "+callerToken(nil))
			b := wantStatus(t, resp, http.StatusOK)
			if !strings.Contains(b, `"messages"`) {
				t.Fatalf("body %s", b)
			}
		})
	}
	ct.mu.Lock()
	defer ct.mu.Unlock()
	if len(ct.fetched) == 0 || slices.ContainsFunc(ct.fetched, func(u string) bool { return u != googleCertsURL }) {
		t.Fatalf("idtoken fetched %v, want only %s", ct.fetched, googleCertsURL)
	}
}

// TestIAM_CallerRefused covers every way a caller's credentials are
// refused; none of them reaches the store's token or Gmail.
func TestIAM_CallerRefused(t *testing.T) {
	tests := []struct {
		name   string
		auth   func() string // the Authorization header; "" sends none
		status int
		code   string
		// present: the header holds a bearer token (else the answer says one is required)
		present bool
	}{
		{"no Authorization header", func() string { return "" }, 401, "unauthenticated", false},
		{"Basic instead of Bearer", func() string { return "Basic " + base64.StdEncoding.EncodeToString([]byte("a:b")) }, 401, "unauthenticated", false},
		{"Bearer without a token", func() string { return "Bearer " }, 401, "unauthenticated", false},
		{"token without Bearer", func() string { return callerToken(nil) }, 401, "unauthenticated", false},
		{"malformed: not a JWT", func() string { return "Bearer not-a-jwt" }, 401, "unauthenticated", true},
		{"malformed: payload not base64", func() string {
			p := strings.Split(callerToken(nil), ".")
			return "Bearer " + p[0] + ".%%%." + p[2]
		}, 401, "unauthenticated", true},
		{"malformed: signature cut", func() string { t := callerToken(nil); return "Bearer " + t[:len(t)-10] }, 401, "unauthenticated", true},
		{"alg none, no signature", func() string {
			p := strings.Split(callerToken(nil), ".")
			h, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT"})
			return "Bearer " + base64.RawURLEncoding.EncodeToString(h) + "." + p[1] + "."
		}, 401, "unauthenticated", true},
		{"forged: signed by another key under Google's key id", func() string {
			return "Bearer " + forgerSigner().sign(nil, callerClaims())
		}, 401, "unauthenticated", true},
		{"forged: claims changed after signing", func() string {
			return "Bearer " + forgeIDToken(callerToken(func(c map[string]any) { c["email"] = "someone@else.example" }), "email", allowedCaller)
		}, 401, "unauthenticated", true},
		{"unknown key id", func() string { return "Bearer " + trustedSigner().sign(map[string]any{"kid": "other"}, callerClaims()) }, 401, "unauthenticated", true},
		{"ES256 (IAP keys, not trusted here)", func() string {
			return "Bearer " + trustedSigner().sign(map[string]any{"alg": "ES256"}, callerClaims())
		}, 401, "unauthenticated", true},
		{"expired", func() string {
			return "Bearer " + callerToken(func(c map[string]any) { c["exp"] = time.Now().Add(-time.Minute).Unix() })
		}, 401, "unauthenticated", true},
		{"wrong audience: another function", func() string {
			return "Bearer " + callerToken(func(c map[string]any) { c["aud"] = base + "/Disconnect-elsewhere" })
		}, 401, "unauthenticated", true},
		{"wrong audience: none", func() string { return "Bearer " + callerToken(func(c map[string]any) { delete(c, "aud") }) }, 401, "unauthenticated", true},
		{"issuer not Google", func() string {
			return "Bearer " + callerToken(func(c map[string]any) { c["iss"] = "https://evil.example" })
		}, 401, "unauthenticated", true},
		{"issuer missing", func() string { return "Bearer " + callerToken(func(c map[string]any) { delete(c, "iss") }) }, 401, "unauthenticated", true},
		{"caller not on the allow-list", func() string {
			return "Bearer " + callerToken(func(c map[string]any) { c["email"] = "intruder@other-project.iam.gserviceaccount.com" })
		}, 403, "forbidden", true},
		{"caller email differs in case", func() string {
			return "Bearer " + callerToken(func(c map[string]any) { c["email"] = strings.ToUpper(allowedCaller) })
		}, 403, "forbidden", true},
		{"no email claim", func() string { return "Bearer " + callerToken(func(c map[string]any) { delete(c, "email") }) }, 403, "forbidden", true},
		{"email_verified false", func() string {
			return "Bearer " + callerToken(func(c map[string]any) { c["email_verified"] = false })
		}, 403, "forbidden", true},
		{"email_verified \"false\"", func() string {
			return "Bearer " + callerToken(func(c map[string]any) { c["email_verified"] = "false" })
		}, 403, "forbidden", true},
		{"email_verified missing", func() string {
			return "Bearer " + callerToken(func(c map[string]any) { delete(c, "email_verified") })
		}, 403, "forbidden", true},
	}
	h, _ := iamHarness(t)
	sub := h.fake.UserSub(demo) // a user with a stored grant
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.fake.ResetCounts()
			h.store.ResetOps()
			var hdr []string
			if a := tt.auth(); a != "" {
				hdr = []string{"Authorization", a}
			}
			resp := h.get("/ListMessages?user="+sub, hdr...)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body(resp))
			}
			e := decode[apiError](t, resp)
			if e.Code != tt.code {
				t.Fatalf("answer %+v, want %s", e, tt.code)
			}
			if !tt.present && !strings.Contains(e.Description, "an ID token is required") {
				t.Fatalf("answer %+v, want it to ask for an ID token", e)
			}
			if n := googleCalls(h); n != 0 {
				t.Fatalf("a refused caller reached Google: %v", h.fake.Counts())
			}
			if ops := h.store.Ops(); ops.Reads != 0 {
				t.Fatalf("a refused caller read the store: %+v", ops)
			}
		})
	}
}

func TestIAM_AllowedCaller_UserParameter(t *testing.T) {
	tests := []struct {
		name   string
		query  string
		status int
		code   string
	}{
		{"user= missing: 400", "", 400, "invalid_request"},
		{"user= empty: 400", "user=", 400, "invalid_request"},
		{"user= too long: 400", "user=" + strings.Repeat("1", 321), 400, "invalid_request"},
		{"unknown sub: authorization_required", "user=109999999999999999999", 401, "authorization_required"},
		{"unknown email: authorization_required", "user=nobody%40example.com", 401, "authorization_required"},
	}
	h, _ := iamHarness(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A server caller gets JSON whatever it accepts: never a redirect.
			resp := h.get("/ListMessages?"+tt.query, "Authorization", "Bearer "+callerToken(nil), "Accept", htmlAccept)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body(resp))
			}
			e := decode[apiError](t, resp)
			if e.Code != tt.code {
				t.Fatalf("answer %+v", e)
			}
			if tt.status == 401 && (!strings.HasPrefix(e.AuthorizationURL, base+"/Authorize") || strings.Contains(e.AuthorizationURL, "return_to")) {
				t.Fatalf("authorization_url %q: want Authorize, with no return_to in IAM mode", e.AuthorizationURL)
			}
			if h.fake.Count(fakegoogle.CountGmailList) != 0 {
				t.Fatal("Gmail was called")
			}
		})
	}
}

// TestIAM_SessionCookieAloneGetsNothing: in IAM mode the browser's session
// does not name the user; only an allowed caller does.
func TestIAM_SessionCookieAloneGetsNothing(t *testing.T) {
	v, _ := newIDTokenValidator(t)
	h := newHarness(t, iamMode(v))
	wantStatus(t, h.login(demo), http.StatusOK)
	if _, ok := h.jar["__Host-gmail_session"]; !ok {
		t.Fatal("no session cookie to try")
	}
	h.fake.ResetCounts()
	for _, q := range []string{"", "?user=" + h.fake.UserSub(demo), "?user=" + url.QueryEscape(demo)} {
		for _, accept := range []string{jsonAccept, htmlAccept} {
			resp := h.get("/ListMessages"+q, "Accept", accept)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("%s %s: status %d: %s", q, accept, resp.StatusCode, body(resp))
			}
			if e := decode[apiError](t, resp); e.Code != "unauthenticated" {
				t.Fatalf("%s: answer %+v", q, e)
			}
		}
	}
	if googleCalls(h) != 0 {
		t.Fatalf("Google was called: %v", h.fake.Counts())
	}
}

// TestIAM_NoAudienceOrCallersConfigured_AppRefusesToStart: idtoken.Validate
// skips the audience check when given none, so an App in IAM mode without
// an audience (or an allow-list) must never serve.
func TestIAM_NoAudienceOrCallersConfigured_AppRefusesToStart(t *testing.T) {
	for name, change := range map[string]func(c *config.Config){
		"no audience":        func(c *config.Config) { c.IAMAudience = "" },
		"no allowed callers": func(c *config.Config) { c.IAMAllowedCallers = nil },
	} {
		t.Run(name, func(t *testing.T) {
			h, _ := iamHarness(t)
			cfg := h.cfg
			change(&cfg)
			if _, err := New(cfg, Deps{ClientSecret: h.secret, Keys: h.keys, Store: h.store, IDTokens: h.app.idTokens}); err == nil {
				t.Fatal("New accepted IAM mode without an audience or allowed callers")
			}
		})
	}
}
