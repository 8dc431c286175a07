package fakegoogle

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

func TestAuthorizationEndpointRejectsBadRequests(t *testing.T) {
	h := newHarness(t, Options{})
	valid := func() url.Values {
		return url.Values{
			"response_type": {"code"},
			"client_id":     {h.fake.ClientID()},
			"redirect_uri":  {testRedirectURI},
			"scope":         {"openid email " + GmailReadonlyScope},
			"state":         {"xyz"},
		}
	}
	tests := []struct {
		name       string
		change     func(url.Values)
		wantStatus int    // for error pages
		wantPage   string // text on the error page
		wantError  string // error= in the redirect to the app
	}{
		{"unknown client shows a 401 page", func(q url.Values) { q.Set("client_id", "other") }, http.StatusUnauthorized, "Error 401: invalid_client", ""},
		{"missing client shows a 400 page", func(q url.Values) { q.Del("client_id") }, http.StatusBadRequest, "Error 400: invalid_request", ""},
		{"unregistered redirect_uri shows a 400 page and does not redirect", func(q url.Values) { q.Set("redirect_uri", "http://localhost:8080/other") }, http.StatusBadRequest, "Error 400: redirect_uri_mismatch", ""},
		{"missing redirect_uri shows a 400 page", func(q url.Values) { q.Del("redirect_uri") }, http.StatusBadRequest, "Error 400: invalid_request", ""},
		{"missing response_type redirects with invalid_request", func(q url.Values) { q.Del("response_type") }, 0, "", "invalid_request"},
		{"response_type token redirects with unsupported_response_type", func(q url.Values) { q.Set("response_type", "token") }, 0, "", "unsupported_response_type"},
		{"missing scope redirects with invalid_request", func(q url.Values) { q.Del("scope") }, 0, "", "invalid_request"},
		{"unknown scope redirects with invalid_scope", func(q url.Values) { q.Set("scope", "openid https://example.com/nope") }, 0, "", "invalid_scope"},
		{"bad access_type redirects with invalid_request", func(q url.Values) { q.Set("access_type", "forever") }, 0, "", "invalid_request"},
		{"bad prompt redirects with invalid_request", func(q url.Values) { q.Set("prompt", "login") }, 0, "", "invalid_request"},
		{"prompt none with consent redirects with invalid_request", func(q url.Values) { q.Set("prompt", "none consent") }, 0, "", "invalid_request"},
		{"bad code_challenge_method redirects with invalid_request", func(q url.Values) {
			q.Set("code_challenge", strings.Repeat("a", 43))
			q.Set("code_challenge_method", "S512")
		}, 0, "", "invalid_request"},
		{"method without challenge redirects with invalid_request", func(q url.Values) { q.Set("code_challenge_method", "S256") }, 0, "", "invalid_request"},
		{"short code_challenge redirects with invalid_request", func(q url.Values) { q.Set("code_challenge", "short") }, 0, "", "invalid_request"},
		{"42-character code_challenge redirects with invalid_request", func(q url.Values) { q.Set("code_challenge", strings.Repeat("a", 42)) }, 0, "", "invalid_request"},
		{"129-character code_challenge redirects with invalid_request", func(q url.Values) { q.Set("code_challenge", strings.Repeat("a", 129)) }, 0, "", "invalid_request"},
		{"code_challenge outside the unreserved characters redirects with invalid_request", func(q url.Values) { q.Set("code_challenge", strings.Repeat("a", 42)+"+") }, 0, "", "invalid_request"},
		{"repeated scope redirects with invalid_request", func(q url.Values) { q.Add("scope", "openid") }, 0, "", "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := valid()
			tt.change(q)
			res, body := h.get(t, Endpoints(h.ts.URL).AuthURL+"?"+q.Encode())
			if tt.wantPage != "" {
				if res.StatusCode != tt.wantStatus || !strings.Contains(body, tt.wantPage) {
					t.Fatalf("got status %d, want %d with %q; body:\n%s", res.StatusCode, tt.wantStatus, tt.wantPage, body)
				}
				if loc := res.Header.Get("Location"); loc != "" {
					t.Fatalf("error page redirected to %q", loc)
				}
				return
			}
			if res.StatusCode != http.StatusFound {
				t.Fatalf("status %d, want 302; body:\n%s", res.StatusCode, body)
			}
			got := h.appRedirect(t, res)
			if got.Get("error") != tt.wantError || got.Get("state") != "xyz" || got.Get("code") != "" {
				t.Fatalf("redirect query %v, want error=%s state=xyz and no code", got, tt.wantError)
			}
		})
	}
}

func TestConsentPageOffersEachScopeAndPrefillsLoginHint(t *testing.T) {
	h := newHarness(t, Options{})
	res, body := h.get(t, h.conf.AuthCodeURL("s", oauth2.SetAuthURLParam("login_hint", "jane@example.com")))
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
	for _, want := range []string{
		h.fake.ClientID(),
		`id="email" name="email" value="jane@example.com"`,
		`id="scope-gmail" name="scope" value="` + GmailReadonlyScope + `" checked>`,
		`id="scope-openid" name="scope" value="openid" checked disabled>`,
		`id="scope-userinfo-email" name="scope" value="` + EmailScope + `" checked disabled>`,
		`id="allow"`, `id="deny"`,
		`action="/o/oauth2/v2/consent"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("consent page lacks %q", want)
		}
	}
	if strings.Contains(body, "src=") || strings.Contains(body, "href=") {
		t.Errorf("consent page loads external resources:\n%s", body)
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}

	_, body = h.get(t, h.conf.AuthCodeURL("s"))
	if !strings.Contains(body, `value="`+DemoEmail+`"`) {
		t.Errorf("without login_hint the email is not prefilled with %s", DemoEmail)
	}
}

func TestConsentOutcomes(t *testing.T) {
	tests := []struct {
		name      string
		consent   consent
		wantError string
		wantScope string
	}{
		{"allow grants every requested scope", consent{}, "", EmailScope + " openid " + GmailReadonlyScope},
		{"unticking Gmail grants only sign-in scopes", consent{untick: []string{GmailReadonlyScope}}, "", EmailScope + " openid"},
		{"basic scopes cannot be unticked", consent{untick: []string{OpenIDScope, EmailScope}}, "", EmailScope + " openid " + GmailReadonlyScope},
		{"deny redirects with access_denied", consent{deny: true}, "access_denied", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Options{})
			q := h.authorize(t, tt.consent)
			if q.Get("state") != "st4te" {
				t.Errorf("state = %q, want st4te", q.Get("state"))
			}
			if tt.wantError != "" {
				if q.Get("error") != tt.wantError || q.Get("code") != "" {
					t.Fatalf("redirect %v, want error=%s and no code", q, tt.wantError)
				}
				return
			}
			if q.Get("code") == "" || q.Get("scope") != tt.wantScope || q.Get("authuser") != "0" {
				t.Fatalf("redirect %v, want a code, authuser=0 and scope=%q", q, tt.wantScope)
			}
		})
	}
}

func TestConsentRejectsTamperedFormAndBadEmail(t *testing.T) {
	h := newHarness(t, Options{})
	_, page := h.get(t, h.conf.AuthCodeURL("s"))
	sealed := formValue(t, page, "request")
	tests := []struct {
		name    string
		form    url.Values
		wantMsg string
	}{
		{"altered request", url.Values{"request": {sealed + "x"}, "email": {"a@b.c"}, "action": {"allow"}}, "expired or was altered"},
		{"missing request", url.Values{"email": {"a@b.c"}, "action": {"allow"}}, "expired or was altered"},
		{"invalid email", url.Values{"request": {sealed}, "email": {"not an email"}, "action": {"allow"}}, "Enter a valid email address."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := h.browser.PostForm(h.ts.URL+consentPath, tt.form)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			b, err := io.ReadAll(res.Body)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), tt.wantMsg) {
				t.Fatalf("status %d, want 400 with %q; body:\n%s", res.StatusCode, tt.wantMsg, b)
			}
		})
	}
}

func TestAutoApproveRedirectsAtOnceForTheHintedUser(t *testing.T) {
	h := newHarness(t, Options{AutoApprove: true})
	q := h.authorize(t, consent{}, oauth2.SetAuthURLParam("login_hint", "auto@example.com"), oauth2.AccessTypeOffline)
	if q.Get("code") == "" || q.Get("scope") != EmailScope+" openid "+GmailReadonlyScope {
		t.Fatalf("redirect %v, want a code for every scope", q)
	}
	tok, err := h.conf.Exchange(t.Context(), q.Get("code"))
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	if got := h.fake.AccessTokens("auto@example.com"); len(got) != 1 || got[0] != tok.AccessToken {
		t.Fatalf("the code was not issued to the hinted user")
	}
	if h.fake.Count(CountConsent) != 0 {
		t.Errorf("consent form was posted under AutoApprove")
	}
}

func TestPromptNoneApprovesOnlyPreviouslyGrantedScopes(t *testing.T) {
	h := newHarness(t, Options{})
	hint := oauth2.SetAuthURLParam("login_hint", "quiet@example.com")
	none := oauth2.SetAuthURLParam("prompt", "none")

	if q := h.authorize(t, consent{}, hint, none); q.Get("error") != "consent_required" {
		t.Fatalf("before any consent: redirect %v, want error=consent_required", q)
	}
	if q := h.authorize(t, consent{}, none); q.Get("error") != "login_required" {
		t.Fatalf("without login_hint: redirect %v, want error=login_required", q)
	}
	h.login(t, consent{email: "quiet@example.com"})
	q := h.authorize(t, consent{}, hint, none)
	if q.Get("code") == "" || q.Get("prompt") != "none" {
		t.Fatalf("after consent: redirect %v, want a code and prompt=none", q)
	}
}

func TestIncludeGrantedScopesReturnsTheUnion(t *testing.T) {
	h := newHarness(t, Options{})
	const email = "union@example.com"
	// First grant: only Gmail.
	h.conf.Scopes = []string{GmailReadonlyScope}
	first := h.login(t, consent{email: email})
	if got := first.Extra("scope"); got != GmailReadonlyScope {
		t.Fatalf("first grant scope = %q", got)
	}
	// Second grant: sign-in only, with and without include_granted_scopes.
	h.conf.Scopes = []string{"openid", "email"}
	tests := []struct {
		name string
		opts []oauth2.AuthCodeOption
		want string
	}{
		{"include_granted_scopes=true adds earlier grants", []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("include_granted_scopes", "true")}, EmailScope + " openid " + GmailReadonlyScope},
		{"without include_granted_scopes only the requested scopes", nil, EmailScope + " openid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := h.login(t, consent{email: email}, tt.opts...)
			if got := tok.Extra("scope"); got != tt.want {
				t.Fatalf("scope = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLoopbackRedirectURIsAcceptedWhenNoneRegistered(t *testing.T) {
	fake := New(Options{})
	tests := []struct {
		uri  string
		want bool
	}{
		{"http://localhost:8080/callback", true},
		{"http://127.0.0.1:5555/cb", true},
		{"http://localhost/", true},
		{"https://localhost:8080/callback", false},
		{"http://localhost.evil.example/callback", false},
		{"http://example.com/callback", false},
		{"http://user@localhost/callback", false},
	}
	for _, tt := range tests {
		if got := fake.redirectURIAllowed(tt.uri); got != tt.want {
			t.Errorf("redirectURIAllowed(%q) = %v, want %v", tt.uri, got, tt.want)
		}
	}
}
