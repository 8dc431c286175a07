// Package keyring holds the AES-256-GCM keys that protect tokens at rest and
// cookies in transit. Several keys can be live at once: new data is sealed with
// the primary key, and data sealed under any live key still opens, which makes
// rotation a matter of adding a key and promoting it.
package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// KeySize is the length of every key: AES-256.
const KeySize = 32

// ErrUnknownKey is returned when sealed data names a key the ring does not hold.
var ErrUnknownKey = errors.New("keyring: unknown key id")

// ErrOpen is returned when sealed data fails authentication: it was tampered
// with, sealed for other associated data, or sealed under another key.
var ErrOpen = errors.New("keyring: message authentication failed")

// Sealed is ciphertext together with the id of the key that sealed it.
// The zero value means "nothing sealed".
type Sealed struct {
	KeyID      string
	Ciphertext []byte // nonce || AES-GCM ciphertext and tag
}

// IsZero reports whether s holds nothing.
func (s Sealed) IsZero() bool { return s.KeyID == "" && len(s.Ciphertext) == 0 }

// Tag is a message authentication code together with the id of the key
// that made it. The zero value means "nothing tagged".
type Tag struct {
	KeyID string
	Sum   []byte // HMAC-SHA256
}

// IsZero reports whether t holds nothing.
func (t Tag) IsZero() bool { return t.KeyID == "" && len(t.Sum) == 0 }

// Ring is an immutable set of keys with one primary. It is safe for
// concurrent use.
type Ring struct {
	primary string
	ids     []string // sorted, for stable derivation and listing
	raw     map[string][]byte
	aeads   map[string]cipher.AEAD
}

// New returns a ring holding keys, sealing with the key named primary.
func New(primary string, keys map[string][]byte) (*Ring, error) {
	if _, ok := keys[primary]; !ok {
		return nil, fmt.Errorf("keyring: primary key %q is not in the key set", primary)
	}
	r := &Ring{primary: primary, raw: make(map[string][]byte, len(keys)), aeads: make(map[string]cipher.AEAD, len(keys))}
	for id, k := range keys {
		if id == "" || len(id) > 64 {
			return nil, fmt.Errorf("keyring: key id %q must be 1 to 64 characters", id)
		}
		if len(k) != KeySize {
			return nil, fmt.Errorf("keyring: key %q is %d bytes, want %d", id, len(k), KeySize)
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, fmt.Errorf("keyring: key %q: %w", id, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("keyring: key %q: %w", id, err)
		}
		r.raw[id] = slices.Clone(k)
		r.aeads[id] = aead
		r.ids = append(r.ids, id)
	}
	slices.Sort(r.ids)
	return r, nil
}

// keySetJSON is the stored form of a key set:
// {"primary":"k2","keys":{"k1":"<base64>","k2":"<base64>"}}.
type keySetJSON struct {
	Primary string            `json:"primary"`
	Keys    map[string]string `json:"keys"`
}

// Parse reads a key set in its JSON form. Key values are standard base64 of
// 32 random bytes (`openssl rand -base64 32`).
func Parse(data []byte) (*Ring, error) {
	var ks keySetJSON
	if err := json.Unmarshal(data, &ks); err != nil {
		return nil, fmt.Errorf("keyring: parse key set: %w", err)
	}
	if len(ks.Keys) == 0 {
		return nil, errors.New("keyring: key set has no keys")
	}
	keys := make(map[string][]byte, len(ks.Keys))
	for id, v := range ks.Keys {
		k, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return nil, fmt.Errorf("keyring: key %q is not base64", id)
		}
		keys[id] = k
	}
	return New(ks.Primary, keys)
}

// Generate returns a key set with one fresh random key, in the JSON form
// Parse reads. It is used for local development and by tests.
func Generate(id string) []byte {
	k := make([]byte, KeySize)
	rand.Read(k)
	b, _ := json.Marshal(keySetJSON{Primary: id, Keys: map[string]string{id: base64.StdEncoding.EncodeToString(k)}})
	return b
}

// Primary returns the id of the key new data is sealed with.
func (r *Ring) Primary() string { return r.primary }

// Derive returns a ring whose keys are derived from r's with HKDF-SHA256 for
// one purpose, so that a cookie can never be opened as a stored token and
// the other way round. Key ids and the primary are kept.
func (r *Ring) Derive(purpose string) *Ring {
	keys := make(map[string][]byte, len(r.raw))
	for _, id := range r.ids {
		k, err := hkdf.Key(sha256.New, r.raw[id], nil, "gmail-oauth-functions/"+purpose, KeySize)
		if err != nil {
			panic(fmt.Sprintf("keyring: derive: %v", err)) // only on an impossible length
		}
		keys[id] = k
	}
	d, err := New(r.primary, keys)
	if err != nil {
		panic(fmt.Sprintf("keyring: derive: %v", err)) // the keys came from a valid ring
	}
	return d
}

// Seal encrypts plaintext under the primary key, authenticating aad with it.
func (r *Ring) Seal(plaintext, aad []byte) Sealed {
	aead := r.aeads[r.primary]
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	rand.Read(nonce)
	return Sealed{KeyID: r.primary, Ciphertext: aead.Seal(nonce, nonce, plaintext, aad)}
}

// Open decrypts s with the key it names, checking aad.
func (r *Ring) Open(s Sealed, aad []byte) ([]byte, error) {
	aead, ok := r.aeads[s.KeyID]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownKey, s.KeyID)
	}
	if len(s.Ciphertext) < aead.NonceSize()+aead.Overhead() {
		return nil, ErrOpen
	}
	n := aead.NonceSize()
	pt, err := aead.Open(nil, s.Ciphertext[:n], s.Ciphertext[n:], aad)
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

// NeedsReseal reports whether s was sealed under a key other than the primary,
// so that the next write should seal it again.
func (r *Ring) NeedsReseal(s Sealed) bool { return !s.IsZero() && s.KeyID != r.primary }

// Tag returns the HMAC-SHA256 of data under the primary key. Use it on a
// ring derived for tagging only (see Derive), so that no key both seals
// and tags.
func (r *Ring) Tag(data []byte) Tag {
	return Tag{KeyID: r.primary, Sum: r.sum(r.primary, data)}
}

// CheckTag returns nil when t is data's tag under the key t names: an
// ErrUnknownKey when the ring does not hold that key, ErrOpen when the tag
// does not match.
func (r *Ring) CheckTag(t Tag, data []byte) error {
	if _, ok := r.raw[t.KeyID]; !ok {
		return fmt.Errorf("%w %q", ErrUnknownKey, t.KeyID)
	}
	if !hmac.Equal(t.Sum, r.sum(t.KeyID, data)) {
		return ErrOpen
	}
	return nil
}

func (r *Ring) sum(id string, data []byte) []byte {
	m := hmac.New(sha256.New, r.raw[id])
	m.Write(data)
	return m.Sum(nil)
}
