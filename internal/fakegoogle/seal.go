package fakegoogle

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// errTampered is returned for sealed values that were not made by this
// Server or were altered.
var errTampered = errors.New("fakegoogle: sealed value is malformed or was altered")

// mac returns the HMAC-SHA256 of b under the server's form key, domain
// separated by purpose.
func (s *Server) mac(purpose string, b []byte) []byte {
	h := hmac.New(sha256.New, s.formKey)
	h.Write([]byte(purpose))
	h.Write([]byte{0})
	h.Write(b)
	return h.Sum(nil)
}

// seal encodes v as JSON and authenticates it, for a round trip through the
// browser.
func (s *Server) seal(purpose string, v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("fakegoogle: sealing %s: %w", purpose, err)
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString(b) + "." + enc.EncodeToString(s.mac(purpose, b)), nil
}

// unseal reverses seal.
func (s *Server) unseal(purpose, sealed string, v any) error {
	payload, sig, ok := strings.Cut(sealed, ".")
	if !ok {
		return errTampered
	}
	enc := base64.RawURLEncoding
	b, err := enc.DecodeString(payload)
	if err != nil {
		return errTampered
	}
	got, err := enc.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac(purpose, b)) {
		return errTampered
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("fakegoogle: unsealing %s: %w", purpose, err)
	}
	return nil
}
