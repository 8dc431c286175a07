package fakegoogle

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

func TestCodeExchangeChecksPKCE(t *testing.T) {
	tests := []struct {
		name     string
		method   string // code_challenge_method; "" sends no challenge at all
		verifier func(right string) string
		wantErr  string // error_description; "" means success
	}{
		{"S256 with the right verifier succeeds", "S256", func(v string) string { return v }, ""},
		{"S256 with a wrong verifier fails", "S256", func(string) string { return oauth2.GenerateVerifier() }, "Invalid code verifier."},
		{"S256 without a verifier fails", "S256", func(string) string { return "" }, "Missing code verifier."},
		{"plain with the right verifier succeeds", "plain", func(v string) string { return v }, ""},
		{"plain with the S256 transform of the verifier fails", "plain", func(v string) string { return oauth2.S256ChallengeFromVerifier(v) + "x" }, "Invalid code verifier."},
		{"no challenge needs no verifier", "", func(string) string { return "" }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Options{AutoApprove: true})
			verifier := oauth2.GenerateVerifier()
			var opts []oauth2.AuthCodeOption
			switch tt.method {
			case "S256":
				opts = append(opts, oauth2.S256ChallengeOption(verifier))
			case "plain":
				opts = append(opts, oauth2.SetAuthURLParam("code_challenge", verifier), oauth2.SetAuthURLParam("code_challenge_method", "plain"))
			}
			code := h.authorize(t, consent{}, opts...).Get("code")
			form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {testRedirectURI}}
			if v := tt.verifier(verifier); v != "" {
				form.Set("code_verifier", v)
			}
			status, body := h.tokenForm(t, form)
			if tt.wantErr == "" {
				if status != http.StatusOK || body["access_token"] == nil {
					t.Fatalf("status %d body %v, want a token", status, body)
				}
				return
			}
			if e, d := oauthErr(body); status != http.StatusBadRequest || e != "invalid_grant" || d != tt.wantErr {
				t.Fatalf("got %d %s %q, want 400 invalid_grant %q", status, e, d, tt.wantErr)
			}
		})
	}
}

func TestCodeIsSingleUse(t *testing.T) {
	h := newHarness(t, Options{})
	const email = "once@example.com"
	code, verifier := h.code(t, consent{email: email}, oauth2.AccessTypeOffline)
	if _, err := h.conf.Exchange(t.Context(), code, oauth2.VerifierOption(verifier)); err != nil {
		t.Fatalf("first exchange: %v", err)
	}
	status, body := h.tokenForm(t, url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {testRedirectURI}, "code_verifier": {verifier},
	})
	if e, d := oauthErr(body); status != http.StatusBadRequest || e != "invalid_grant" || d != "Bad Request" {
		t.Fatalf("second exchange: %d %v, want 400 invalid_grant Bad Request", status, body)
	}
	if n := len(h.fake.AccessTokens(email)); n != 1 {
		t.Errorf("%d access tokens issued, want 1", n)
	}
	if n := len(h.fake.RefreshTokens(email)); n != 1 {
		t.Errorf("%d refresh tokens issued, want 1", n)
	}
}

func TestCodeExchangeFailures(t *testing.T) {
	clock := newFakeClock()
	h := newHarness(t, Options{AutoApprove: true, Now: clock.Now})
	freshCode := func(t *testing.T) string {
		return h.authorize(t, consent{}).Get("code")
	}
	tests := []struct {
		name       string
		form       func(t *testing.T) url.Values
		wantStatus int
		wantError  string
		wantDesc   string
	}{
		{"unknown code is malformed", func(t *testing.T) url.Values {
			return url.Values{"grant_type": {"authorization_code"}, "code": {"4/0Anope"}, "redirect_uri": {testRedirectURI}}
		}, 400, "invalid_grant", "Malformed auth code."},
		{"expired code is a bad request", func(t *testing.T) url.Values {
			code := freshCode(t)
			clock.Advance(DefaultCodeTTL)
			return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {testRedirectURI}}
		}, 400, "invalid_grant", "Bad Request"},
		{"different redirect_uri is a mismatch", func(t *testing.T) url.Values {
			return url.Values{"grant_type": {"authorization_code"}, "code": {freshCode(t)}, "redirect_uri": {"http://localhost:8080/other"}}
		}, 400, "redirect_uri_mismatch", "Bad Request"},
		{"missing redirect_uri is invalid", func(t *testing.T) url.Values {
			return url.Values{"grant_type": {"authorization_code"}, "code": {freshCode(t)}}
		}, 400, "invalid_request", "Missing required parameter: redirect_uri"},
		{"missing code is invalid", func(t *testing.T) url.Values {
			return url.Values{"grant_type": {"authorization_code"}, "redirect_uri": {testRedirectURI}}
		}, 400, "invalid_request", "Missing required parameter: code"},
		{"unsupported grant_type", func(t *testing.T) url.Values {
			return url.Values{"grant_type": {"password"}}
		}, 400, "unsupported_grant_type", "Invalid grant_type: password"},
		{"missing grant_type", func(t *testing.T) url.Values { return url.Values{} }, 400, "invalid_request", "Missing required parameter: grant_type"},
		{"missing refresh_token", func(t *testing.T) url.Values {
			return url.Values{"grant_type": {"refresh_token"}}
		}, 400, "invalid_request", "Missing required parameter: refresh_token"},
		{"unknown refresh token is expired or revoked", func(t *testing.T) url.Values {
			return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"1//nope"}}
		}, 400, "invalid_grant", "Token has been expired or revoked."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := h.tokenForm(t, tt.form(t))
			if e, d := oauthErr(body); status != tt.wantStatus || e != tt.wantError || d != tt.wantDesc {
				t.Fatalf("got %d %s %q, want %d %s %q", status, e, d, tt.wantStatus, tt.wantError, tt.wantDesc)
			}
		})
	}
}

func TestTokenEndpointAuthenticatesTheClient(t *testing.T) {
	h := newHarness(t, Options{AutoApprove: true})
	form := func(t *testing.T) url.Values {
		return url.Values{"grant_type": {"authorization_code"}, "code": {h.authorize(t, consent{}).Get("code")}, "redirect_uri": {testRedirectURI}}
	}
	id, secret := h.fake.ClientID(), h.fake.ClientSecret()
	tests := []struct {
		name       string
		body       url.Values // client fields added to the form
		basic      []string
		wantStatus int
	}{
		{"secret in the body", url.Values{"client_id": {id}, "client_secret": {secret}}, nil, 200},
		{"secret in Basic auth", nil, []string{id, secret}, 200},
		{"wrong secret in the body", url.Values{"client_id": {id}, "client_secret": {"wrong"}}, nil, 401},
		{"wrong secret in Basic auth", nil, []string{id, "wrong"}, 401},
		{"missing secret", url.Values{"client_id": {id}}, nil, 401},
		{"unknown client", url.Values{"client_id": {"other.apps.googleusercontent.com"}, "client_secret": {secret}}, nil, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := form(t)
			for k, v := range tt.body {
				f[k] = v
			}
			status, body := h.postForm(t, "/token", f, tt.basic...)
			if status != tt.wantStatus {
				t.Fatalf("status %d body %v, want %d", status, body, tt.wantStatus)
			}
			if status == 401 {
				if e, d := oauthErr(body); e != "invalid_client" || d != "Unauthorized" {
					t.Fatalf("body %v, want invalid_client Unauthorized", body)
				}
			}
		})
	}

	t.Run("oauth2 client with a wrong secret gets invalid_client", func(t *testing.T) {
		conf := *h.conf
		conf.ClientSecret = "wrong"
		_, err := conf.Exchange(t.Context(), h.authorize(t, consent{}).Get("code"))
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.ErrorCode != "invalid_client" || re.Response.StatusCode != 401 {
			t.Fatalf("Exchange error = %v, want 401 invalid_client", err)
		}
	})
}

func TestTokenEndpointRejectsNonFormRequests(t *testing.T) {
	h := newHarness(t, Options{})
	req, _ := http.NewRequest(http.MethodPost, h.ts.URL+"/token", strings.NewReader(`{"grant_type":"refresh_token"}`))
	req.Header.Set("Content-Type", "application/json")
	if status, body := doJSON(t, req); status != 400 || body["error"] != "invalid_request" {
		t.Fatalf("JSON body: %d %v, want 400 invalid_request", status, body)
	}
	req, _ = http.NewRequest(http.MethodGet, h.ts.URL+"/token", nil)
	if status, _ := doJSON(t, req); status != http.StatusMethodNotAllowed {
		t.Fatalf("GET: status %d, want 405", status)
	}
}

func TestRefreshTokenIssuedOnlyOnConsentOffline(t *testing.T) {
	h := newHarness(t, Options{})
	const email = "offline@example.com"
	offline, consentPrompt := oauth2.AccessTypeOffline, oauth2.ApprovalForce
	steps := []struct {
		name        string
		opts        []oauth2.AuthCodeOption
		revokeFirst bool
		wantRefresh bool
	}{
		{"online first consent gives none", nil, false, false},
		{"offline first consent gives one", []oauth2.AuthCodeOption{offline}, false, true},
		{"offline again without prompt=consent gives none", []oauth2.AuthCodeOption{offline}, false, false},
		{"online with prompt=consent gives none", []oauth2.AuthCodeOption{consentPrompt}, false, false},
		{"offline with prompt=consent gives one", []oauth2.AuthCodeOption{offline, consentPrompt}, false, true},
		{"offline after the user revoked access gives one", []oauth2.AuthCodeOption{offline}, true, true},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.revokeFirst {
				h.fake.RevokeGrant(email)
			}
			code, verifier := h.code(t, consent{email: email}, st.opts...)
			status, body := h.tokenForm(t, url.Values{
				"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {testRedirectURI}, "code_verifier": {verifier},
			})
			if status != 200 {
				t.Fatalf("exchange: %d %v", status, body)
			}
			_, got := body["refresh_token"]
			if got != st.wantRefresh {
				t.Fatalf("refresh_token present = %v, want %v", got, st.wantRefresh)
			}
		})
	}
}

func TestTokenResponsesHaveGoogleShape(t *testing.T) {
	h := newHarness(t, Options{})
	code, verifier := h.code(t, consent{}, oauth2.AccessTypeOffline)
	status, first := h.tokenForm(t, url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {testRedirectURI}, "code_verifier": {verifier},
	})
	if status != 200 {
		t.Fatalf("exchange: %d %v", status, first)
	}
	refresh, _ := first["refresh_token"].(string)
	status, second := h.tokenForm(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}})
	if status != 200 {
		t.Fatalf("refresh: %d %v", status, second)
	}
	wantScope := EmailScope + " openid " + GmailReadonlyScope
	tests := []struct {
		name        string
		body        map[string]any
		wantRefresh bool
	}{
		{"code exchange", first, true},
		{"refresh", second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.body["expires_in"] != float64(3599) || tt.body["token_type"] != "Bearer" || tt.body["scope"] != wantScope {
				t.Errorf("expires_in/token_type/scope = %v/%v/%v", tt.body["expires_in"], tt.body["token_type"], tt.body["scope"])
			}
			if tt.body["access_token"] == "" || tt.body["id_token"] == nil {
				t.Errorf("missing access_token or id_token: %v", tt.body)
			}
			if _, ok := tt.body["refresh_token"]; ok != tt.wantRefresh {
				t.Errorf("refresh_token present = %v, want %v", ok, tt.wantRefresh)
			}
		})
	}
}

func TestExpiresInFollowsAccessTokenTTL(t *testing.T) {
	tests := []struct {
		ttl  time.Duration
		want int
	}{
		{0, 3599},
		{10 * time.Minute, 599},
		{time.Second, 1},
	}
	for _, tt := range tests {
		if got := New(Options{AccessTokenTTL: tt.ttl}).expiresIn(); got != tt.want {
			t.Errorf("AccessTokenTTL %v: expires_in %d, want %d", tt.ttl, got, tt.want)
		}
	}
}

func TestOAuth2ClientRefreshesAnExpiredAccessToken(t *testing.T) {
	clock := newFakeClock()
	h := newHarness(t, Options{Now: clock.Now})
	tok := h.login(t, consent{}, oauth2.AccessTypeOffline)
	h.fake.ExpireAccessTokens(DemoEmail)
	tok.Expiry = time.Now().Add(-time.Minute) // what the client would know by now
	got, err := h.conf.TokenSource(t.Context(), tok).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if got.AccessToken == tok.AccessToken || got.RefreshToken != tok.RefreshToken {
		t.Fatalf("refresh did not give a new access token with the same refresh token")
	}
	if h.fake.Count(CountTokenRefresh) == 0 {
		t.Fatalf("no refresh request reached the fake")
	}
}

func TestOldestLiveRefreshTokenDiesAtTheHundredAndFirst(t *testing.T) {
	h := newHarness(t, Options{AutoApprove: true})
	const email = "many@example.com"
	hint := oauth2.SetAuthURLParam("login_hint", email)
	for range maxLiveRefreshTokens + 1 {
		code := h.authorize(t, consent{}, hint, oauth2.AccessTypeOffline, oauth2.ApprovalForce).Get("code")
		if _, err := h.conf.Exchange(t.Context(), code); err != nil {
			t.Fatalf("Exchange: %v", err)
		}
	}
	tokens := h.fake.RefreshTokens(email)
	if len(tokens) != maxLiveRefreshTokens+1 {
		t.Fatalf("%d refresh tokens issued, want %d", len(tokens), maxLiveRefreshTokens+1)
	}
	tests := []struct {
		name  string
		token string
		live  bool
	}{
		{"the first is dead", tokens[0], false},
		{"the second lives", tokens[1], true},
		{"the newest lives", tokens[len(tokens)-1], true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := h.tokenForm(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tt.token}})
			if live := status == 200; live != tt.live {
				t.Fatalf("refresh: %d %v, want live=%v", status, body, tt.live)
			}
		})
	}
}

func TestRefreshTokenDiesAfterSixMonthsUnused(t *testing.T) {
	clock := newFakeClock()
	h := newHarness(t, Options{Now: clock.Now})
	tok := h.login(t, consent{}, oauth2.AccessTypeOffline)
	refresh := func() int {
		status, _ := h.tokenForm(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}})
		return status
	}
	clock.Advance(150 * 24 * time.Hour)
	if got := refresh(); got != 200 {
		t.Fatalf("after 150 days: status %d, want 200", got)
	}
	clock.Advance(150 * 24 * time.Hour) // 150 days since last use
	if got := refresh(); got != 200 {
		t.Fatalf("150 days after last use: status %d, want 200", got)
	}
	clock.Advance(184 * 24 * time.Hour)
	if got := refresh(); got != 400 {
		t.Fatalf("184 days after last use: status %d, want 400", got)
	}
}

func TestInjectedTokenFaults(t *testing.T) {
	h := newHarness(t, Options{})
	tok := h.login(t, consent{}, oauth2.AccessTypeOffline)
	refreshForm := func() url.Values {
		return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}
	}

	h.fake.InjectTokenFault(http.StatusServiceUnavailable, "", 2)
	for i := range 2 {
		status, body := h.tokenForm(t, refreshForm())
		if e, _ := oauthErr(body); status != 503 || e != "internal_failure" {
			t.Fatalf("request %d: %d %v, want 503 internal_failure", i, status, body)
		}
	}
	if status, body := h.tokenForm(t, refreshForm()); status != 200 {
		t.Fatalf("after the faults: %d %v, want 200", status, body)
	}

	h.fake.InjectTokenFault(http.StatusBadRequest, "invalid_grant", 1)
	if status, body := h.tokenForm(t, refreshForm()); status != 400 || body["error"] != "invalid_grant" {
		t.Fatalf("injected invalid_grant: %d %v", status, body)
	}

	h.fake.InjectTokenFault(0, "", 1)
	req, _ := http.NewRequest(http.MethodPost, h.ts.URL+"/token", strings.NewReader(refreshForm().Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := http.DefaultClient.Do(req)
	if err == nil {
		_, err = io.ReadAll(res.Body)
		res.Body.Close()
	}
	if err == nil {
		t.Fatalf("status 0 fault: got a whole answer, want a network error")
	}

	h.fake.InjectTokenFault(0, "", 1)
	tok.Expiry = time.Now().Add(-time.Minute)
	if _, err := h.conf.TokenSource(t.Context(), tok).Token(); err == nil {
		t.Fatalf("oauth2 refresh through a status 0 fault succeeded")
	}
	if got := h.fake.Count(CountTokenRefresh); got != 6 {
		t.Errorf("token.refresh count = %d, want 6 (faulted requests count)", got)
	}
}

func TestLatencyIsAppliedAndRespectsCancellation(t *testing.T) {
	h := newHarness(t, Options{Latency: 200 * time.Millisecond})
	start := time.Now()
	h.get(t, h.ts.URL+"/oauth2/v3/certs")
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("answered after %v, want at least 200ms", d)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.ts.URL+"/oauth2/v3/certs", nil)
	if _, err := http.DefaultClient.Do(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled request: err = %v, want deadline exceeded", err)
	}
}

func TestTokenEndpointSwitches(t *testing.T) {
	tests := []struct {
		name        string
		opts        Options
		wantScope   bool // scope present in both answers
		wantRotated bool // the refresh answers with a new refresh token, and the one used dies
	}{
		{"Google: scope always, no rotation", Options{}, true, false},
		{"OmitScope", Options{OmitScope: true}, false, false},
		{"RotateRefreshTokens", Options{RotateRefreshTokens: true}, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.opts)
			code, verifier := h.code(t, consent{}, oauth2.AccessTypeOffline)
			_, first := h.tokenForm(t, url.Values{
				"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {testRedirectURI}, "code_verifier": {verifier},
			})
			used, _ := first["refresh_token"].(string)
			status, second := h.tokenForm(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {used}})
			if status != 200 {
				t.Fatalf("refresh: %d %v", status, second)
			}
			for what, body := range map[string]map[string]any{"code exchange": first, "refresh": second} {
				if _, ok := body["scope"]; ok != tt.wantScope {
					t.Errorf("%s: scope present = %v, want %v", what, ok, tt.wantScope)
				}
			}
			rotated, _ := second["refresh_token"].(string)
			if (rotated != "") != tt.wantRotated || rotated == used {
				t.Fatalf("refresh answered refresh_token %q (used %q); want a new one: %v", rotated, used, tt.wantRotated)
			}
			status, third := h.tokenForm(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {used}})
			if usedLives := status == 200; usedLives == tt.wantRotated {
				t.Errorf("the refresh token used, refreshed again: %d %v; want it dead: %v", status, third, tt.wantRotated)
			}
			if tt.wantRotated {
				if status, body := h.tokenForm(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rotated}}); status != 200 {
					t.Errorf("the rotated refresh token: %d %v; want it live", status, body)
				}
			}
		})
	}
}
