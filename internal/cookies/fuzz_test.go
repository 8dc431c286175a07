package cookies

import (
	"bytes"
	"encoding/base64"
	"testing"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/keyring"
)

// FuzzDecode checks that no input makes Decode panic or accept a value that
// was not sealed with the ring's keys.
func FuzzDecode(f *testing.F) {
	r, _ := keyring.New("a", map[string][]byte{"a": bytes.Repeat([]byte{1}, keyring.KeySize)})
	now := time.Unix(1_800_000_000, 0)
	// good was sealed once by Encode under r's key; sealing again would pick
	// a new nonce, and every fuzz worker must agree on the one value.
	const good = "AWETOxIocT8diRPE74YKt8aCyDQSo9R08Nk4WukBNOKdzkb_6qXDUHz4gNf4zMsrYv4FD3NUlW_ae1Ul4IQ"
	if err := Decode(r, "session", good, now, &payload{}); err != nil {
		f.Fatalf("the seed value no longer opens: %v", err)
	}
	f.Add(good)
	f.Add("")
	f.Add("AA")
	f.Add(good[:len(good)/2])
	f.Fuzz(func(t *testing.T, value string) {
		var p payload
		err := Decode(r, "session", value, now, &p)
		if err != nil {
			return
		}
		// Only a value sealed under the key can open: a fuzzer cannot forge
		// GCM, so anything accepted must decode to the sealed bytes.
		got, _ := base64.RawURLEncoding.DecodeString(value)
		want, _ := base64.RawURLEncoding.DecodeString(good)
		if !bytes.Equal(got, want) {
			t.Fatalf("accepted a value that was never sealed: %q", value)
		}
	})
}
