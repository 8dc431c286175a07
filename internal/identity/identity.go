// Package identity learns who completed an authorization: from the id_token
// the token endpoint returned, or, when none came, from the OpenID Connect
// userinfo endpoint.
package identity

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// ErrNoIdentity is returned when no subject could be learned.
var ErrNoIdentity = errors.New("identity: no user id")

// ErrInvalid is returned when an id_token fails a check (issuer, audience,
// expiry or nonce).
var ErrInvalid = errors.New("identity: id_token rejected")

// Identity is the Google account that consented.
type Identity struct {
	Sub           string
	Email         string
	EmailVerified bool
}

// Issuers are Google's two spellings of its issuer in ID tokens.
var Issuers = []string{"https://accounts.google.com", "accounts.google.com"}

// EmailVerified reads an email_verified claim, which Google has sent both
// as a boolean and as the string "true".
func EmailVerified(v any) bool { return v == true || v == "true" }

// NormalizeEmail is the form in which emails are compared: ASCII letters
// lower-cased, nothing else changed. Google treats addresses without regard
// to case; folding only ASCII keeps two addresses that differ in other
// characters (a Kelvin sign for a K, say) apart.
func NormalizeEmail(email string) string {
	b := []byte(email)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// Skew is the clock difference tolerated on exp and iat.
const Skew = 5 * time.Minute

type claims struct {
	Iss           string          `json:"iss"`
	Aud           json.RawMessage `json:"aud"`
	Azp           string          `json:"azp"`
	Sub           string          `json:"sub"`
	Email         string          `json:"email"`
	EmailVerified any             `json:"email_verified"` // Google has sent both true and "true"
	Exp           int64           `json:"exp"`
	Iat           int64           `json:"iat"`
	Nonce         string          `json:"nonce"`
}

// FromIDToken reads the identity from an id_token received directly from
// Google's token endpoint over TLS. As OpenID Connect Core 3.1.3.7 allows for
// that channel, the signature is not fetched and checked; the issuer,
// audience, expiry and nonce are.
func FromIDToken(raw, clientID, nonce string, now time.Time) (Identity, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return Identity{}, fmt.Errorf("%w: not a JWT", ErrInvalid)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return Identity{}, fmt.Errorf("%w: payload is not base64url", ErrInvalid)
	}
	var c claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return Identity{}, fmt.Errorf("%w: payload is not JSON", ErrInvalid)
	}
	switch {
	case !contains(Issuers, c.Iss):
		return Identity{}, fmt.Errorf("%w: issuer %q", ErrInvalid, c.Iss)
	case !audienceHas(c.Aud, clientID):
		return Identity{}, fmt.Errorf("%w: audience is not this client", ErrInvalid)
	case c.Azp != "" && c.Azp != clientID:
		return Identity{}, fmt.Errorf("%w: authorized party is not this client", ErrInvalid)
	case c.Exp == 0 || !now.Before(time.Unix(c.Exp, 0).Add(Skew)):
		return Identity{}, fmt.Errorf("%w: expired", ErrInvalid)
	case c.Iat != 0 && now.Add(Skew).Before(time.Unix(c.Iat, 0)):
		return Identity{}, fmt.Errorf("%w: issued in the future", ErrInvalid)
	case subtle.ConstantTimeCompare([]byte(c.Nonce), []byte(nonce)) != 1:
		return Identity{}, fmt.Errorf("%w: nonce does not match", ErrInvalid)
	case c.Sub == "":
		return Identity{}, ErrNoIdentity
	}
	return Identity{Sub: c.Sub, Email: c.Email, EmailVerified: EmailVerified(c.EmailVerified)}, nil
}

// FromUserinfo asks the userinfo endpoint with the access token, for the
// rare exchange that returned no id_token.
func FromUserinfo(ctx context.Context, hc *http.Client, userinfoURL, accessToken string) (Identity, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, userinfoURL, nil)
	if err != nil {
		return Identity{}, fmt.Errorf("userinfo: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+accessToken)
	resp, err := hc.Do(req)
	if err != nil {
		return Identity{}, fmt.Errorf("userinfo: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Identity{}, fmt.Errorf("userinfo: status %d: %w", resp.StatusCode, ErrNoIdentity)
	}
	var c claims
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&c); err != nil {
		return Identity{}, fmt.Errorf("userinfo: decode: %w", err)
	}
	if c.Sub == "" {
		return Identity{}, ErrNoIdentity
	}
	return Identity{Sub: c.Sub, Email: c.Email, EmailVerified: EmailVerified(c.EmailVerified)}, nil
}

func audienceHas(raw json.RawMessage, clientID string) bool {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return one == clientID
	}
	var many []string
	return json.Unmarshal(raw, &many) == nil && contains(many, clientID)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
