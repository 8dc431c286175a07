package tokenstore

import (
	"testing"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/keyring"
)

func sealed(s string) keyring.Sealed { return keyring.Sealed{KeyID: "k1", Ciphertext: []byte(s)} }

func TestGrantApply(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	t1, now := t0.Add(time.Minute), t0.Add(time.Hour)
	stored := &Record{Sub: "s", Email: "old@x", Scopes: []string{"a"}, RefreshToken: sealed("rt0"),
		RefreshTokenIssuedAt: t0, GrantedAt: t0, Status: StatusActive, AccessTokenExpiry: t0}
	dead := *stored
	dead.Status = StatusDead

	tests := []struct {
		name      string
		cur       *Record
		g         Grant
		wantNil   bool
		wantRT    string
		wantEmail string
	}{
		{"first grant with refresh token creates", nil,
			Grant{Sub: "s", Email: "a@x", RefreshToken: sealed("rt1"), IssuedAt: t1}, false, "rt1", "a@x"},
		{"first grant without refresh token writes nothing", nil,
			Grant{Sub: "s", Email: "a@x", IssuedAt: t1}, true, "", ""},
		{"newer refresh token replaces", stored,
			Grant{Sub: "s", Email: "a@x", RefreshToken: sealed("rt1"), IssuedAt: t1}, false, "rt1", "a@x"},
		{"empty refresh token keeps stored one", stored,
			Grant{Sub: "s", Email: "a@x", IssuedAt: t1}, false, "rt0", "a@x"},
		{"older refresh token does not replace newer", stored,
			Grant{Sub: "s", Email: "a@x", RefreshToken: sealed("rt-old"), IssuedAt: t0.Add(-time.Minute)}, false, "rt0", "old@x"},
		{"dead record revived by new refresh token", &dead,
			Grant{Sub: "s", Email: "a@x", RefreshToken: sealed("rt1"), IssuedAt: t0.Add(-time.Minute)}, false, "rt1", "old@x"},
		{"dead record and no refresh token writes nothing", &dead,
			Grant{Sub: "s", Email: "a@x", IssuedAt: t1}, true, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.g.Apply(tt.cur, now)
			if tt.wantNil {
				if got != nil {
					t.Fatalf("Apply = %+v, want nothing written", got)
				}
				return
			}
			if got == nil {
				t.Fatal("Apply wrote nothing")
			}
			if string(got.RefreshToken.Ciphertext) != tt.wantRT || got.Email != tt.wantEmail {
				t.Fatalf("refresh token %q email %q, want %q %q", got.RefreshToken.Ciphertext, got.Email, tt.wantRT, tt.wantEmail)
			}
			if got.Status != StatusActive || !got.UpdatedAt.Equal(now) {
				t.Fatalf("status %q updated %v", got.Status, got.UpdatedAt)
			}
		})
	}
}

func TestGrantApply_DoesNotAliasStoredScopes(t *testing.T) {
	cur := &Record{Sub: "s", Scopes: []string{"a"}, RefreshToken: sealed("rt"), Status: StatusActive}
	next := Grant{Sub: "s", Scopes: []string{"b"}, IssuedAt: time.Now()}.Apply(cur, time.Now())
	next.Scopes[0] = "changed"
	if cur.Scopes[0] != "a" {
		t.Fatal("Apply shares the scopes slice with the stored record")
	}
}

func TestAccessUpdateApply_ResealsOnlyWhenAsked(t *testing.T) {
	cur := Record{RefreshToken: sealed("rt")}
	now := time.Now()
	got := AccessUpdate{AccessToken: sealed("at"), AccessTokenExpiry: now, RefreshedAt: now}.Apply(cur)
	if string(got.RefreshToken.Ciphertext) != "rt" || string(got.AccessToken.Ciphertext) != "at" {
		t.Fatalf("got %+v", got)
	}
	re := sealed("rt-resealed")
	got = AccessUpdate{AccessToken: sealed("at"), RefreshToken: &re}.Apply(cur)
	if string(got.RefreshToken.Ciphertext) != "rt-resealed" {
		t.Fatal("reseal not applied")
	}
}
