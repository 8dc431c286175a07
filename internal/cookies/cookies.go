// Package cookies seals small values into cookies that are encrypted,
// authenticated, bound to their name and expiring, with the keys of a
// keyring.Ring (so a key rotation needs no code change).
package cookies

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/keyring"
)

// MaxLen is the longest cookie value Decode looks at. Browsers keep 4096
// bytes per cookie; anything longer is not ours.
const MaxLen = 4096

// ErrInvalid is returned for a value that is malformed, tampered with,
// sealed for another cookie name or under an unknown key.
var ErrInvalid = errors.New("cookies: invalid value")

// ErrExpired is returned for an authentic value past its expiry.
var ErrExpired = errors.New("cookies: expired")

type envelope struct {
	Exp int64           `json:"e"`
	Val json.RawMessage `json:"v"`
}

// Encode seals v (as JSON) for the cookie called name, valid until exp.
// The result is URL-safe base64 and can be used as a cookie value as is.
func Encode(ring *keyring.Ring, name string, v any, exp time.Time) (string, error) {
	val, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("cookies: encode %s: %w", name, err)
	}
	plain, err := json.Marshal(envelope{Exp: exp.Unix(), Val: val})
	if err != nil {
		return "", fmt.Errorf("cookies: encode %s: %w", name, err)
	}
	s := ring.Seal(plain, []byte(name))
	buf := make([]byte, 0, 1+len(s.KeyID)+len(s.Ciphertext))
	buf = append(buf, byte(len(s.KeyID)))
	buf = append(buf, s.KeyID...)
	buf = append(buf, s.Ciphertext...)
	out := base64.RawURLEncoding.EncodeToString(buf)
	if len(out) > MaxLen {
		return "", fmt.Errorf("cookies: encode %s: %d bytes is more than a cookie holds", name, len(out))
	}
	return out, nil
}

// Decode opens a value made by Encode for the same name into v, refusing it
// if it is not authentic or has expired at now.
func Decode(ring *keyring.Ring, name, value string, now time.Time, v any) error {
	if value == "" || len(value) > MaxLen {
		return ErrInvalid
	}
	buf, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil || len(buf) < 1 || len(buf) < 1+int(buf[0]) {
		return ErrInvalid
	}
	n := int(buf[0])
	plain, err := ring.Open(keyring.Sealed{KeyID: string(buf[1 : 1+n]), Ciphertext: buf[1+n:]}, []byte(name))
	if err != nil {
		return ErrInvalid
	}
	var env envelope
	if err := json.Unmarshal(plain, &env); err != nil {
		return ErrInvalid
	}
	if !now.Before(time.Unix(env.Exp, 0)) {
		return ErrExpired
	}
	if err := json.Unmarshal(env.Val, v); err != nil {
		return ErrInvalid
	}
	return nil
}
