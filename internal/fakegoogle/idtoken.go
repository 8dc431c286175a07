package fakegoogle

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"sync"
	"time"
)

// Issuer is the iss claim of the fake's id_tokens: Google's, so that callers
// check it exactly as in production.
const Issuer = "https://accounts.google.com"

// idTokenTTL is the life of an id_token, as at Google.
const idTokenTTL = time.Hour

// signer signs id_tokens with RS256.
type signer struct {
	key   *rsa.PrivateKey
	keyID string
}

// sharedSigner returns the process-wide signing key. Generating an RSA key
// takes a while, and tests create many Servers.
var sharedSigner = sync.OnceValue(func() *signer {
	sg, err := generateSigner()
	if err != nil {
		panic(err.Error())
	}
	return sg
})

// generateSigner returns a signer with a new key.
func generateSigner() (*signer, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("fakegoogle: generating the id_token signing key: %w", err)
	}
	return newSigner(key)
}

// newSigner returns a signer for key, whose key ID is derived from its
// public half.
func newSigner(key *rsa.PrivateKey) (*signer, error) {
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("fakegoogle: encoding the id_token public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return &signer{key: key, keyID: fmt.Sprintf("%x", sum[:20])}, nil
}

// idClaims are the claims of a Google id_token.
type idClaims struct {
	Iss           string `json:"iss"`
	Azp           string `json:"azp"`
	Aud           string `json:"aud"`
	Sub           string `json:"sub"`
	Email         string `json:"email,omitempty"`
	EmailVerified bool   `json:"email_verified,omitempty"`
	AtHash        string `json:"at_hash,omitempty"`
	Nonce         string `json:"nonce,omitempty"`
	Name          string `json:"name,omitempty"`
	Picture       string `json:"picture,omitempty"`
	Iat           int64  `json:"iat"`
	Exp           int64  `json:"exp"`
}

// sign returns the compact JWS of claims.
func (sg *signer) sign(claims any) (string, error) {
	header, err := json.Marshal(map[string]string{"alg": "RS256", "kid": sg.keyID, "typ": "JWT"})
	if err != nil {
		return "", fmt.Errorf("encoding JWT header: %w", err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("encoding JWT claims: %w", err)
	}
	enc := base64.RawURLEncoding
	signingInput := enc.EncodeToString(header) + "." + enc.EncodeToString(payload)
	digest := sha256.Sum256([]byte(signingInput))
	sig, err := rsa.SignPKCS1v15(rand.Reader, sg.key, crypto.SHA256, digest[:])
	if err != nil {
		return "", fmt.Errorf("signing JWT: %w", err)
	}
	return signingInput + "." + enc.EncodeToString(sig), nil
}

// idToken returns a signed id_token for u, as issued with accessToken.
func (s *Server) idToken(u *user, scopes []string, nonce, accessToken string) (string, error) {
	now := s.now()
	c := idClaims{
		Iss:    Issuer,
		Azp:    s.opts.ClientID,
		Aud:    s.opts.ClientID,
		Sub:    u.sub,
		AtHash: atHash(accessToken),
		Nonce:  nonce,
		Iat:    now.Unix(),
		Exp:    now.Add(idTokenTTL).Unix(),
	}
	granted := scopeSet(scopes)
	if granted[EmailScope] {
		c.Email, c.EmailVerified = u.email, true
	}
	if granted[profileScope] {
		c.Name, c.Picture = u.name, pictureURL(u)
	}
	tok, err := s.signer.sign(c)
	if err != nil {
		return "", fmt.Errorf("fakegoogle: id_token: %w", err)
	}
	return tok, nil
}

// atHash is the OpenID Connect access token hash: the left half of its
// SHA-256, base64url encoded.
func atHash(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}

// pictureURL is the user's (made-up) profile picture.
func pictureURL(u *user) string {
	return "https://lh3.googleusercontent.com/a/fake-" + u.sub + "=s96-c"
}

// jwk is an RSA public key in JSON Web Key form.
type jwk struct {
	Kty string `json:"kty"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	Kid string `json:"kid"`
	N   string `json:"n"`
	E   string `json:"e"`
}

// handleJWKS serves the id_token verification keys, like
// https://www.googleapis.com/oauth2/v3/certs.
func (s *Server) handleJWKS(w http.ResponseWriter, r *http.Request) {
	pub := s.signer.key.PublicKey
	enc := base64.RawURLEncoding
	writeJSON(w, http.StatusOK, map[string][]jwk{"keys": {{
		Kty: "RSA",
		Alg: "RS256",
		Use: "sig",
		Kid: s.signer.keyID,
		N:   enc.EncodeToString(pub.N.Bytes()),
		E:   enc.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}}})
}

// handleDiscovery serves the OpenID Connect discovery document with the
// fake's own endpoints.
func (s *Server) handleDiscovery(w http.ResponseWriter, r *http.Request) {
	base := requestBaseURL(r)
	ep := Endpoints(base)
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                Issuer,
		"authorization_endpoint":                ep.AuthURL,
		"token_endpoint":                        ep.TokenURL,
		"userinfo_endpoint":                     ep.UserinfoURL,
		"revocation_endpoint":                   ep.RevokeURL,
		"jwks_uri":                              base + "/oauth2/v3/certs",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"scopes_supported":                      []string{"openid", "email", "profile"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "client_secret_basic"},
		"claims_supported":                      []string{"aud", "email", "email_verified", "exp", "iat", "iss", "name", "picture", "sub", "nonce", "at_hash", "azp"},
		"code_challenge_methods_supported":      []string{"plain", "S256"},
		"grant_types_supported":                 []string{"authorization_code", "refresh_token"},
	})
}

// requestBaseURL returns the URL the fake was reached at, without a trailing
// slash.
func requestBaseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}
