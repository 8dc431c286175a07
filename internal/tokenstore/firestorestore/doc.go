package firestorestore

import (
	"fmt"
	"slices"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/keyring"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/tokenstore"
)

// tokenDoc is the stored form of a tokenstore.Record; the document ID is the
// record's Sub. Empty tokens and zero times are left out.
type tokenDoc struct {
	Email                string     `firestore:"email"`
	Scopes               []string   `firestore:"scopes"`
	RefreshToken         *sealedDoc `firestore:"refresh_token,omitempty"`
	AccessToken          *sealedDoc `firestore:"access_token,omitempty"`
	AccessTokenExpiry    time.Time  `firestore:"access_token_expiry,omitempty"`
	RefreshTokenIssuedAt time.Time  `firestore:"refresh_token_issued_at,omitempty"`
	GrantedAt            time.Time  `firestore:"granted_at,omitempty"`
	CreatedAt            time.Time  `firestore:"created_at,omitempty"`
	UpdatedAt            time.Time  `firestore:"updated_at,omitempty"`
	RefreshedAt          time.Time  `firestore:"refreshed_at,omitempty"`
	RefreshLease         *leaseDoc  `firestore:"refresh_lease,omitempty"`
	Status               string     `firestore:"status"`
}

// sealedDoc is a sealed token: the id of the key that sealed it and the
// ciphertext, stored as bytes.
type sealedDoc struct {
	KeyID      string `firestore:"key_id"`
	Ciphertext []byte `firestore:"ciphertext"`
}

// toDoc returns the stored form of r, with times cut to the microseconds
// Firestore keeps.
func toDoc(r *tokenstore.Record) *tokenDoc {
	scopes := slices.Clone(r.Scopes)
	if scopes == nil {
		scopes = []string{} // always an array, never null
	}
	return &tokenDoc{
		Email: r.Email, Scopes: scopes,
		RefreshToken: toSealedDoc(r.RefreshToken), AccessToken: toSealedDoc(r.AccessToken),
		AccessTokenExpiry: stored(r.AccessTokenExpiry), RefreshTokenIssuedAt: stored(r.RefreshTokenIssuedAt),
		GrantedAt: stored(r.GrantedAt), CreatedAt: stored(r.CreatedAt),
		UpdatedAt: stored(r.UpdatedAt), RefreshedAt: stored(r.RefreshedAt),
		RefreshLease: toLeaseDoc(r.RefreshLease), Status: string(r.Status),
	}
}

// fromDoc returns the record d stores for sub. Its Version is left for the
// caller to set.
func fromDoc(sub string, d *tokenDoc) *tokenstore.Record {
	r := &tokenstore.Record{
		Sub: sub, Email: d.Email, Scopes: slices.Clone(d.Scopes),
		RefreshToken: d.RefreshToken.sealed(), AccessToken: d.AccessToken.sealed(),
		AccessTokenExpiry: d.AccessTokenExpiry, RefreshTokenIssuedAt: d.RefreshTokenIssuedAt,
		GrantedAt: d.GrantedAt, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt, RefreshedAt: d.RefreshedAt,
		RefreshLease: d.RefreshLease.lease(), Status: tokenstore.Status(d.Status),
	}
	if len(r.Scopes) == 0 {
		r.Scopes = nil
	}
	return r
}

// fromSnapshot decodes an existing document, setting Version to its update
// time.
func fromSnapshot(snap *firestore.DocumentSnapshot) (*tokenstore.Record, error) {
	var d tokenDoc
	if err := snap.DataTo(&d); err != nil {
		return nil, fmt.Errorf("decode %s: %w", snap.Ref.Path, err)
	}
	r := fromDoc(snap.Ref.ID, &d)
	r.Version = snap.UpdateTime
	return r, nil
}

func toSealedDoc(s keyring.Sealed) *sealedDoc {
	if s.IsZero() {
		return nil
	}
	return &sealedDoc{KeyID: s.KeyID, Ciphertext: slices.Clone(s.Ciphertext)}
}

func (s *sealedDoc) sealed() keyring.Sealed {
	if s == nil {
		return keyring.Sealed{}
	}
	return keyring.Sealed{KeyID: s.KeyID, Ciphertext: s.Ciphertext}
}

// leaseDoc is a refresh lease: who holds it and until when.
type leaseDoc struct {
	Holder string    `firestore:"holder"`
	Until  time.Time `firestore:"until"`
}

func toLeaseDoc(l tokenstore.Lease) *leaseDoc {
	if l == (tokenstore.Lease{}) {
		return nil
	}
	return &leaseDoc{Holder: l.Holder, Until: stored(l.Until)}
}

func (l *leaseDoc) lease() tokenstore.Lease {
	if l == nil {
		return tokenstore.Lease{}
	}
	return tokenstore.Lease{Holder: l.Holder, Until: l.Until}
}

// leaseValue gives the value of a lease update: the stored form, or
// firestore.Delete for none.
func leaseValue(l tokenstore.Lease) any {
	if d := toLeaseDoc(l); d != nil {
		return d
	}
	return firestore.Delete
}

// stored returns t as Firestore keeps it: in UTC, to the microsecond.
func stored(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC().Truncate(time.Microsecond)
}

// sealedValue and timeValue give the value of a field update: the stored
// form, or firestore.Delete for what toDoc leaves out.
func sealedValue(s keyring.Sealed) any {
	if d := toSealedDoc(s); d != nil {
		return d
	}
	return firestore.Delete
}

func timeValue(t time.Time) any {
	if t.IsZero() {
		return firestore.Delete
	}
	return stored(t)
}
