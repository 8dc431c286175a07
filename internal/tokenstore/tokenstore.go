// Package tokenstore defines the per-user token record the functions keep,
// and the merge rules every store applies when a new grant arrives.
// The tokens in a Record are always sealed (see package keyring): a store
// never sees a plaintext token.
package tokenstore

import (
	"errors"
	"slices"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/keyring"
)

// ErrNotFound is returned when no record exists for the user.
var ErrNotFound = errors.New("tokenstore: no token record")

// ErrConflict is returned by a conditional write when the record changed (or
// was deleted) since it was read.
var ErrConflict = errors.New("tokenstore: record changed since it was read")

// Status says whether a record's refresh token can still be used.
type Status string

const (
	// StatusActive marks a record whose refresh token Google last honoured.
	StatusActive Status = "active"
	// StatusDead marks a record whose refresh token Google refused
	// (invalid_grant): the user must authorize again.
	StatusDead Status = "dead"
)

// Record is one user's stored tokens, keyed by the Google account's stable
// subject identifier (the id_token "sub").
type Record struct {
	Sub    string
	Email  string
	Scopes []string // scopes the user granted, as Google reported them

	RefreshToken         keyring.Sealed // sealed with the Sub as associated data
	RefreshTokenIssuedAt time.Time      // when Google issued RefreshToken
	AccessToken          keyring.Sealed // sealed with the Sub as associated data
	AccessTokenExpiry    time.Time

	Status      Status
	GrantedAt   time.Time // the newest grant merged into the record
	CreatedAt   time.Time
	UpdatedAt   time.Time
	RefreshedAt time.Time // last access-token refresh

	// RefreshLease, until it ends, says that one instance is refreshing the
	// access token and will write it back: the others wait for that rather
	// than call Google too. The store's SetLease takes and releases it;
	// SaveAccess ends it.
	RefreshLease Lease

	// Version identifies the stored revision, for conditional writes. The
	// store sets it on every read and write; callers only pass it back.
	Version time.Time
}

// Usable reports whether the record holds a refresh token Google has not
// refused.
func (r *Record) Usable() bool {
	return r != nil && r.Status != StatusDead && !r.RefreshToken.IsZero()
}

// HasScope reports whether the user granted scope.
func (r *Record) HasScope(scope string) bool { return r != nil && slices.Contains(r.Scopes, scope) }

// Preferred reports whether a should be chosen over b (nil) among records
// that share an email: usable first, then the most recently updated; ties
// broken by version, then sub, so every store picks the same one.
func Preferred(a, b *Record) bool {
	switch {
	case b == nil:
		return true
	case a.Usable() != b.Usable():
		return a.Usable()
	case !a.UpdatedAt.Equal(b.UpdatedAt):
		return a.UpdatedAt.After(b.UpdatedAt)
	case !a.Version.Equal(b.Version):
		return a.Version.After(b.Version)
	default:
		return a.Sub < b.Sub
	}
}

// Grant is what one completed authorization brings: the identity, the
// granted scopes and the tokens from the code exchange.
type Grant struct {
	Sub, Email        string
	Scopes            []string
	RefreshToken      keyring.Sealed // zero when Google sent none
	AccessToken       keyring.Sealed
	AccessTokenExpiry time.Time
	IssuedAt          time.Time // when the code exchange answered
}

// Apply merges g into the stored record cur (nil when there is none) and
// returns the record to write, or nil when nothing should be written.
//
// The rules make concurrent and out-of-order callbacks safe: a refresh token
// is replaced only by a non-empty one issued no earlier than it, so an empty
// or older token never overwrites a newer one, and a record without a usable
// refresh token is never created.
func (g Grant) Apply(cur *Record, now time.Time) *Record {
	hasNew := !g.RefreshToken.IsZero()
	if cur == nil {
		if !hasNew {
			return nil
		}
		return &Record{
			Sub: g.Sub, Email: g.Email, Scopes: slices.Clone(g.Scopes),
			RefreshToken: g.RefreshToken, RefreshTokenIssuedAt: g.IssuedAt,
			AccessToken: g.AccessToken, AccessTokenExpiry: g.AccessTokenExpiry,
			Status: StatusActive, GrantedAt: g.IssuedAt, CreatedAt: now, UpdatedAt: now,
		}
	}
	next := *cur
	next.Scopes = slices.Clone(cur.Scopes)
	replace := hasNew && (!cur.Usable() || !g.IssuedAt.Before(cur.RefreshTokenIssuedAt))
	if replace {
		next.RefreshToken, next.RefreshTokenIssuedAt, next.Status = g.RefreshToken, g.IssuedAt, StatusActive
	}
	if !next.Usable() {
		return nil // a dead record and no new refresh token: nothing worth writing
	}
	if !g.IssuedAt.Before(cur.GrantedAt) {
		next.Email, next.Scopes, next.GrantedAt = g.Email, slices.Clone(g.Scopes), g.IssuedAt
	}
	if !g.AccessToken.IsZero() && g.AccessTokenExpiry.After(cur.AccessTokenExpiry) {
		next.AccessToken, next.AccessTokenExpiry = g.AccessToken, g.AccessTokenExpiry
	}
	next.UpdatedAt = now
	return &next
}

// AccessUpdate is the write-back after a refresh: the new access token and,
// when the refresh token was sealed under a retired key or the token
// endpoint rotated it, the refresh token to keep. It also ends the refresh
// lease.
type AccessUpdate struct {
	AccessToken       keyring.Sealed
	AccessTokenExpiry time.Time
	RefreshedAt       time.Time
	RefreshToken      *keyring.Sealed // nil: leave the stored refresh token as it is
	// RefreshTokenIssuedAt goes with a rotated RefreshToken; zero leaves
	// the stored time (a refresh token sealed again is the same token).
	RefreshTokenIssuedAt time.Time
}

// Apply returns cur with u applied.
func (u AccessUpdate) Apply(cur Record) Record {
	cur.AccessToken, cur.AccessTokenExpiry = u.AccessToken, u.AccessTokenExpiry
	cur.RefreshedAt, cur.UpdatedAt = u.RefreshedAt, u.RefreshedAt
	cur.RefreshLease = Lease{}
	if u.RefreshToken != nil {
		cur.RefreshToken = *u.RefreshToken
		if !u.RefreshTokenIssuedAt.IsZero() {
			cur.RefreshTokenIssuedAt = u.RefreshTokenIssuedAt
		}
	}
	return cur
}

// Lease is an instance's claim to refresh a record's access token. The zero
// Lease is none.
type Lease struct {
	// Holder names the claim: random for each one taken, so that taking a
	// lease always changes the record, even when Until repeats.
	Holder string
	Until  time.Time
}

// Leased reports whether, at now, an instance holds the lease to refresh
// the record's access token.
func (r *Record) Leased(now time.Time) bool {
	return r != nil && now.Before(r.RefreshLease.Until)
}
