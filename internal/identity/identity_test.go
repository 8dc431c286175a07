package identity

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

var now = time.Unix(1_800_000_000, 0)

func jwt(c map[string]any) string {
	b, _ := json.Marshal(c)
	return "eyJhbGciOiJSUzI1NiJ9." + base64.RawURLEncoding.EncodeToString(b) + ".c2ln"
}

func good() map[string]any {
	return map[string]any{"iss": "https://accounts.google.com", "aud": "client", "azp": "client", "sub": "1234",
		"email": "a@example.com", "email_verified": true, "exp": now.Unix() + 3600, "iat": now.Unix(), "nonce": "n1"}
}

func with(k string, v any) string {
	c := good()
	if v == nil {
		delete(c, k)
	} else {
		c[k] = v
	}
	return jwt(c)
}

func TestFromIDToken(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		wantErr error
	}{
		{"valid", jwt(good()), nil},
		{"issuer without scheme", with("iss", "accounts.google.com"), nil},
		{"audience list", with("aud", []string{"other", "client"}), nil},
		{"other issuer", with("iss", "https://evil.example"), ErrInvalid},
		{"other audience", with("aud", "other-client"), ErrInvalid},
		{"other azp", with("azp", "other-client"), ErrInvalid},
		{"expired", with("exp", now.Unix()-int64(Skew/time.Second)-1), ErrInvalid},
		{"no exp", with("exp", nil), ErrInvalid},
		{"issued in the future", with("iat", now.Add(time.Hour).Unix()), ErrInvalid},
		{"nonce mismatch", with("nonce", "other"), ErrInvalid},
		{"nonce missing", with("nonce", nil), ErrInvalid},
		{"no sub", with("sub", nil), ErrNoIdentity},
		{"not a jwt", "abc", ErrInvalid},
		{"payload not base64", "a.%%%.c", ErrInvalid},
		{"payload not json", "a." + base64.RawURLEncoding.EncodeToString([]byte("x")) + ".c", ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := FromIDToken(tt.raw, "client", "n1", now)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err == nil && (id.Sub != "1234" || id.Email != "a@example.com" || !id.EmailVerified) {
				t.Fatalf("identity %+v", id)
			}
		})
	}
}

func TestFromUserinfo(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get("Authorization") {
		case "Bearer good":
			w.Write([]byte(`{"sub":"42","email":"b@example.com","email_verified":true}`))
		case "Bearer nosub":
			w.Write([]byte(`{"email":"b@example.com"}`))
		default:
			http.Error(w, `{"error":"invalid_request"}`, http.StatusUnauthorized)
		}
	}))
	defer srv.Close()
	tests := []struct {
		token   string
		wantSub string
		wantErr error
	}{{"good", "42", nil}, {"nosub", "", ErrNoIdentity}, {"bad", "", ErrNoIdentity}}
	for _, tt := range tests {
		t.Run(tt.token, func(t *testing.T) {
			id, err := FromUserinfo(context.Background(), srv.Client(), srv.URL, tt.token)
			if !errors.Is(err, tt.wantErr) || id.Sub != tt.wantSub {
				t.Fatalf("id %+v err %v", id, err)
			}
		})
	}
}

func TestNormalizeEmail_FoldsASCIICaseOnly(t *testing.T) {
	tests := []struct{ a, b string }{
		{"Demo@Example.COM", "demo@example.com"},
		{"DEMO@EXAMPLE.COM", "demo@example.com"},
		{"demo@example.com", "demo@example.com"},
	}
	for _, tt := range tests {
		if got := NormalizeEmail(tt.a); got != tt.b {
			t.Errorf("NormalizeEmail(%q) = %q, want %q", tt.a, got, tt.b)
		}
	}
	// Distinct addresses stay distinct: no Unicode folding (U+212A KELVIN
	// SIGN lower-cases to k), no trimming, no dropping of dots or +tags.
	for _, pair := range [][2]string{
		{"\u212aate@example.com", "kate@example.com"},
		{" demo@example.com", "demo@example.com"},
		{"de.mo@example.com", "demo@example.com"},
		{"demo+x@example.com", "demo@example.com"},
	} {
		if NormalizeEmail(pair[0]) == NormalizeEmail(pair[1]) {
			t.Errorf("NormalizeEmail makes %q and %q the same", pair[0], pair[1])
		}
	}
}
