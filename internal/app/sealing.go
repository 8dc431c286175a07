package app

import (
	"encoding/binary"
	"errors"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/identity"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/keyring"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/tokenstore"
)

// What a user's stored values are bound to. Every Seal and Open of a token
// and every tag of an email goes through this file, so that the associated
// data is built in one place.
//
// A token is bound to its place: the collection, the user's sub and the
// field. A ciphertext copied to another user, into the other token's field
// or into another collection does not open. It is not bound to a record
// version: any version would live in the same document, so a writer who
// restores an older copy of a user's document restores its version too.
// What such a rollback can bring back is that same user's older tokens,
// which Google refuses once they were revoked (Disconnect revokes them).

// The token fields, named as the stores name them.
const (
	refreshTokenField = "refresh_token"
	accessTokenField  = "access_token"
)

// boundTo is purpose followed by each part, length-prefixed, so that no two
// lists of parts give the same bytes.
func boundTo(purpose string, parts ...string) []byte {
	b := []byte(purpose)
	for _, p := range parts {
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
	}
	return b
}

// tokenAAD is the associated data of the user's token in field.
func (a *App) tokenAAD(sub, field string) []byte {
	return boundTo("gmail-oauth-functions/token/v2", a.cfg.FirestoreCollection, sub, field)
}

// legacyTokenAAD is how tokens were sealed before they were bound to their
// field and collection: with the sub alone. Such a token still opens, and
// is sealed again on the record's next write.
func legacyTokenAAD(sub string) []byte { return []byte(sub) }

// sealToken seals the user's token for field.
func (a *App) sealToken(rs *rings, sub, field, plain string) keyring.Sealed {
	return rs.token.Seal([]byte(plain), a.tokenAAD(sub, field))
}

// openToken opens the user's token in field. stale reports that it should
// be sealed again on the next write: it was sealed under a key that is no
// longer the primary, or the old way.
func (a *App) openToken(rs *rings, sub, field string, s keyring.Sealed) (plain string, stale bool, err error) {
	b, err := rs.token.Open(s, a.tokenAAD(sub, field))
	if errors.Is(err, keyring.ErrOpen) {
		if old, lerr := rs.token.Open(s, legacyTokenAAD(sub)); lerr == nil {
			return string(old), true, nil
		}
	}
	if err != nil {
		return "", false, err
	}
	return string(b), rs.token.NeedsReseal(s), nil
}

// emailBindingData is what an email binding covers: the collection, the
// sub and the email as lookups compare it.
func (a *App) emailBindingData(sub, email string) []byte {
	return boundTo("gmail-oauth-functions/email/v1", a.cfg.FirestoreCollection, sub, identity.NormalizeEmail(email))
}

// bindEmail returns the tag that binds the user's verified email to their
// sub, kept beside the record's email.
func (a *App) bindEmail(rs *rings, sub, email string) keyring.Tag {
	return rs.email.Tag(a.emailBindingData(sub, email))
}

// errUnbound: the record was stored before emails were bound to records.
var errUnbound = errors.New("record has no email binding")

// checkEmailBinding returns nil when the record's email is bound to its
// sub under the key set: written by these functions, not relabelled since.
func (a *App) checkEmailBinding(rs *rings, rec *tokenstore.Record) error {
	if rec.EmailBinding.IsZero() {
		return errUnbound
	}
	return rs.email.CheckTag(rec.EmailBinding, a.emailBindingData(rec.Sub, rec.Email))
}
