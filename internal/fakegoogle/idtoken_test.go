package fakegoogle

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// verifyIDToken checks the RS256 signature of tok against the fake's JWKS
// and returns its claims.
func verifyIDToken(t *testing.T, h *harness, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("id_token has %d parts", len(parts))
	}
	enc := base64.RawURLEncoding
	var header struct{ Alg, Kid string }
	hb, _ := enc.DecodeString(parts[0])
	if err := json.Unmarshal(hb, &header); err != nil || header.Alg != "RS256" {
		t.Fatalf("header %s: %v", hb, err)
	}
	req, _ := http.NewRequest(http.MethodGet, h.ts.URL+"/oauth2/v3/certs", nil)
	_, jwks := doJSON(t, req)
	keys, _ := jwks["keys"].([]any)
	var pub *rsa.PublicKey
	for _, k := range keys {
		k := k.(map[string]any)
		if k["kid"] == header.Kid {
			n, _ := enc.DecodeString(k["n"].(string))
			e, _ := enc.DecodeString(k["e"].(string))
			pub = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		}
	}
	if pub == nil {
		t.Fatalf("kid %q not in JWKS %v", header.Kid, jwks)
	}
	sig, _ := enc.DecodeString(parts[2])
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
		t.Fatalf("id_token signature: %v", err)
	}
	pb, _ := enc.DecodeString(parts[1])
	var claims map[string]any
	if err := json.Unmarshal(pb, &claims); err != nil {
		t.Fatalf("claims: %v", err)
	}
	return claims
}

func TestIDTokenClaims(t *testing.T) {
	clock := newFakeClock()
	h := newHarness(t, Options{Now: clock.Now})
	const email = "claims@example.com"
	tests := []struct {
		name      string
		scopes    []string
		opts      []oauth2.AuthCodeOption
		wantNonce string
		wantEmail bool
		wantToken bool
	}{
		{"openid email with nonce", allScopes, []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("nonce", "n-0S6_WzA2Mj")}, "n-0S6_WzA2Mj", true, true},
		{"openid email without nonce", allScopes, nil, "", true, true},
		{"openid alone has no email", []string{OpenIDScope, GmailReadonlyScope}, nil, "", false, true},
		{"no openid, no id_token", []string{"email", GmailReadonlyScope}, nil, "", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.conf.Scopes = tt.scopes
			tok := h.login(t, consent{email: email}, tt.opts...)
			raw, _ := tok.Extra("id_token").(string)
			if (raw != "") != tt.wantToken {
				t.Fatalf("id_token present = %v, want %v", raw != "", tt.wantToken)
			}
			if raw == "" {
				return
			}
			c := verifyIDToken(t, h, raw)
			now := clock.Now().Unix()
			want := map[string]any{
				"iss": Issuer, "aud": h.fake.ClientID(), "azp": h.fake.ClientID(), "sub": h.fake.UserSub(email),
				"iat": float64(now), "exp": float64(now + 3600), "at_hash": atHash(tok.AccessToken),
			}
			for k, v := range want {
				if c[k] != v {
					t.Errorf("claim %s = %v, want %v", k, c[k], v)
				}
			}
			if got, _ := c["nonce"].(string); got != tt.wantNonce {
				t.Errorf("nonce = %q, want %q", got, tt.wantNonce)
			}
			if tt.wantEmail && (c["email"] != email || c["email_verified"] != true) {
				t.Errorf("email claims = %v/%v", c["email"], c["email_verified"])
			}
			if !tt.wantEmail && c["email"] != nil {
				t.Errorf("email claim without the email scope: %v", c["email"])
			}
		})
	}
}

func TestRefreshedIDTokenHasNoNonce(t *testing.T) {
	clock := newFakeClock()
	h := newHarness(t, Options{Now: clock.Now})
	tok := h.login(t, consent{}, oauth2.AccessTypeOffline, oauth2.SetAuthURLParam("nonce", "abc"))
	clock.Advance(2 * time.Hour)
	tok.Expiry = time.Now().Add(-time.Minute)
	fresh, err := h.conf.TokenSource(t.Context(), tok).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	c := verifyIDToken(t, h, fresh.Extra("id_token").(string))
	if c["nonce"] != nil || c["iat"] != float64(clock.Now().Unix()) {
		t.Fatalf("refreshed id_token claims %v", c)
	}
}

func TestDiscoveryDocumentPointsAtTheFake(t *testing.T) {
	h := newHarness(t, Options{})
	req, _ := http.NewRequest(http.MethodGet, h.ts.URL+"/.well-known/openid-configuration", nil)
	status, doc := doJSON(t, req)
	if status != 200 {
		t.Fatalf("status %d", status)
	}
	ep := Endpoints(h.ts.URL)
	want := map[string]string{
		"issuer":                 Issuer,
		"authorization_endpoint": ep.AuthURL,
		"token_endpoint":         ep.TokenURL,
		"userinfo_endpoint":      ep.UserinfoURL,
		"revocation_endpoint":    ep.RevokeURL,
		"jwks_uri":               h.ts.URL + "/oauth2/v3/certs",
	}
	for k, v := range want {
		if doc[k] != v {
			t.Errorf("%s = %v, want %v", k, doc[k], v)
		}
	}
	methods, _ := json.Marshal(doc["code_challenge_methods_supported"])
	if string(methods) != `["plain","S256"]` {
		t.Errorf("code_challenge_methods_supported = %s", methods)
	}
}
