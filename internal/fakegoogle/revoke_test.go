package fakegoogle

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

func TestRevocationKillsTheWholeGrant(t *testing.T) {
	tests := []struct {
		name   string
		revoke func(t *testing.T, h *harness, tok *oauth2.Token)
	}{
		{"revoke endpoint with the refresh token in the body", func(t *testing.T, h *harness, tok *oauth2.Token) {
			if status, body := h.postForm(t, "/revoke", url.Values{"token": {tok.RefreshToken}}); status != 200 || len(body) != 0 {
				t.Fatalf("revoke: %d %v, want 200 {}", status, body)
			}
		}},
		{"revoke endpoint with the access token in the query", func(t *testing.T, h *harness, tok *oauth2.Token) {
			req, _ := http.NewRequest(http.MethodPost, h.ts.URL+"/revoke?token="+url.QueryEscape(tok.AccessToken), nil)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if status, body := doJSON(t, req); status != 200 || len(body) != 0 {
				t.Fatalf("revoke: %d %v, want 200 {}", status, body)
			}
		}},
		{"user removes access in their Google Account", func(t *testing.T, h *harness, tok *oauth2.Token) {
			h.fake.RevokeGrant(DemoEmail)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Options{})
			tok := h.login(t, consent{}, oauth2.AccessTypeOffline)
			tt.revoke(t, h, tok)

			status, body := h.tokenForm(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}})
			if e, d := oauthErr(body); status != 400 || e != "invalid_grant" || d != "Token has been expired or revoked." {
				t.Errorf("refresh after revocation: %d %v", status, body)
			}
			res, body := h.gmailGET(t, tok.AccessToken, "/gmail/v1/users/me/messages")
			if res.StatusCode != 401 {
				t.Errorf("Gmail after revocation: %d %v, want 401", res.StatusCode, body)
			}
			status, body = h.postForm(t, "/revoke", url.Values{"token": {tok.RefreshToken}})
			if e, d := oauthErr(body); status != 400 || e != "invalid_token" || d != "Token expired or revoked" {
				t.Errorf("revoking again: %d %v, want 400 invalid_token", status, body)
			}
		})
	}
}

func TestRevokeRejectsUnknownAndMissingTokens(t *testing.T) {
	h := newHarness(t, Options{})
	tests := []struct {
		name      string
		form      url.Values
		wantError string
	}{
		{"unknown token", url.Values{"token": {"ya29.nope"}}, "invalid_token"},
		{"missing token", url.Values{}, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if status, body := h.postForm(t, "/revoke", tt.form); status != 400 || body["error"] != tt.wantError {
				t.Fatalf("%d %v, want 400 %s", status, body, tt.wantError)
			}
		})
	}
}

func TestUserinfo(t *testing.T) {
	h := newHarness(t, Options{})
	const email = "info@example.com"
	tok := h.login(t, consent{email: email})
	tests := []struct {
		name       string
		token      string
		wantStatus int
	}{
		{"valid token", tok.AccessToken, 200},
		{"unknown token", "ya29.nope", 401},
		{"no token", "", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, Endpoints(h.ts.URL).UserinfoURL, nil)
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			status, body := doJSON(t, req)
			if status != tt.wantStatus {
				t.Fatalf("status %d body %v, want %d", status, body, tt.wantStatus)
			}
			if status == 401 {
				if e, d := oauthErr(body); e != "invalid_request" || d != "Invalid Credentials" {
					t.Fatalf("body %v", body)
				}
				return
			}
			if body["sub"] != h.fake.UserSub(email) || body["email"] != email || body["email_verified"] != true || body["name"] != "Info" || body["picture"] == nil {
				t.Fatalf("userinfo %v", body)
			}
		})
	}
}

func TestUserSubIsStableAndGoogleShaped(t *testing.T) {
	a, b := New(Options{}), New(Options{})
	sub := a.UserSub("Someone@Example.com")
	if sub != b.UserSub("someone@example.com") {
		t.Fatalf("sub differs between servers or by case")
	}
	if len(sub) != 21 || sub[0] != '1' {
		t.Fatalf("sub %q is not 21 digits starting with 1", sub)
	}
	for _, r := range sub {
		if r < '0' || r > '9' {
			t.Fatalf("sub %q is not decimal", sub)
		}
	}
	if a.UserSub("other@example.com") == sub {
		t.Fatalf("two users share a sub")
	}
}

// TestRefusedGrantRevoked_NextConsentIssuesARefreshToken is what the
// functions rely on when Callback refuses a grant: a consent with Gmail
// unticked still creates a grant (with a refresh token, for the scopes
// left), so the next consent without prompt=consent brings no refresh
// token, as at Google; once either token of that grant is revoked, it does.
func TestRefusedGrantRevoked_NextConsentIssuesARefreshToken(t *testing.T) {
	offline, withGmail := oauth2.AccessTypeOffline, oauth2.SetAuthURLParam("include_granted_scopes", "true")
	for _, revokeWith := range []string{"refresh_token", "access_token"} {
		t.Run("revoked with the "+revokeWith, func(t *testing.T) {
			h := newHarness(t, Options{})
			partial := h.login(t, consent{untick: []string{GmailReadonlyScope}}, offline, withGmail)
			if scope, _ := partial.Extra("scope").(string); strings.Contains(scope, GmailReadonlyScope) || partial.RefreshToken == "" {
				t.Fatalf("Gmail unticked: scope %q, refresh token %v; want no Gmail and a refresh token", scope, partial.RefreshToken != "")
			}
			if again := h.login(t, consent{}, offline, withGmail); again.RefreshToken != "" {
				t.Fatal("a consent over a live grant, without prompt=consent, issued a refresh token")
			}
			h.fake.RevokeGrant(DemoEmail) // start over from a partial grant
			partial = h.login(t, consent{untick: []string{GmailReadonlyScope}}, offline, withGmail)
			token := map[string]string{"refresh_token": partial.RefreshToken, "access_token": partial.AccessToken}[revokeWith]
			if status, body := h.postForm(t, "/revoke", url.Values{"token": {token}}); status != http.StatusOK {
				t.Fatalf("revoke: %d %v", status, body)
			}
			next := h.login(t, consent{}, offline, withGmail)
			if scope, _ := next.Extra("scope").(string); next.RefreshToken == "" || !strings.Contains(scope, GmailReadonlyScope) {
				t.Fatalf("after the revocation: scope %q, refresh token %v; want Gmail and a refresh token", scope, next.RefreshToken != "")
			}
		})
	}
}
