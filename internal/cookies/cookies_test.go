package cookies

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/keyring"
)

type payload struct {
	Sub string `json:"sub"`
}

func ring(t *testing.T, primary string, ids ...string) *keyring.Ring {
	t.Helper()
	keys := map[string][]byte{}
	for _, id := range ids {
		keys[id] = bytes.Repeat([]byte(id[:1]), keyring.KeySize)
	}
	r, err := keyring.New(primary, keys)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestDecode(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	r := ring(t, "a", "a")
	good, err := Encode(r, "session", payload{Sub: "123"}, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(good)
	flipped := bytes.Clone(raw)
	flipped[len(flipped)-1] ^= 1
	expired, _ := Encode(r, "session", payload{Sub: "123"}, now.Add(-time.Second))

	tests := []struct {
		name    string
		ring    *keyring.Ring
		cookie  string
		value   string
		wantErr error
	}{
		{"authentic", r, "session", good, nil},
		{"rotated ring still opens old cookie", ring(t, "b", "a", "b"), "session", good, nil},
		{"expired", r, "session", expired, ErrExpired},
		{"other cookie name", r, "flow", good, ErrInvalid},
		{"tampered", r, "session", base64.RawURLEncoding.EncodeToString(flipped), ErrInvalid},
		{"unknown key", ring(t, "b", "b"), "session", good, ErrInvalid},
		{"not base64", r, "session", "%%%", ErrInvalid},
		{"empty", r, "session", "", ErrInvalid},
		{"key id longer than value", r, "session", base64.RawURLEncoding.EncodeToString([]byte{200, 'a'}), ErrInvalid},
		{"too long", r, "session", strings.Repeat("A", MaxLen+1), ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p payload
			err := Decode(tt.ring, tt.cookie, tt.value, now, &p)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Decode err = %v, want %v", err, tt.wantErr)
			}
			if err == nil && p.Sub != "123" {
				t.Fatalf("decoded %+v", p)
			}
		})
	}
}

func TestEncode_ValueIsOpaque(t *testing.T) {
	v, err := Encode(ring(t, "a", "a"), "flow", payload{Sub: "very-secret-verifier"}, time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(v)
	if bytes.Contains(raw, []byte("very-secret-verifier")) || strings.Contains(v, "very-secret") {
		t.Fatal("cookie value shows its content")
	}
}
