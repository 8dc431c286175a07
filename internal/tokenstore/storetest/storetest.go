// Package storetest is the conformance suite every token store passes: the
// embedded store and the Firestore store run the same tests, so that code
// tested against one behaves the same against the other.
package storetest

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/keyring"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/tokenstore"
)

// Store is the contract every token store implements.
type Store interface {
	// Get returns the user's record, or tokenstore.ErrNotFound.
	Get(ctx context.Context, sub string) (*tokenstore.Record, error)
	// FindByEmail returns the record with the email, or
	// tokenstore.ErrNotFound; among several, the most recently updated
	// usable one, else the most recently updated.
	FindByEmail(ctx context.Context, email string) (*tokenstore.Record, error)
	// Update runs fn in one transaction on the user's record (nil when there
	// is none) and writes what fn returns unless it is nil. fn may run more
	// than once. It returns the record as stored after the call.
	Update(ctx context.Context, sub string, fn func(cur *tokenstore.Record) (*tokenstore.Record, error)) (*tokenstore.Record, error)
	// SaveAccess applies u in one conditional write if the stored Version
	// equals version, and returns tokenstore.ErrConflict otherwise.
	SaveAccess(ctx context.Context, sub string, version time.Time, u tokenstore.AccessUpdate) error
	// Delete removes the user's record; deleting an absent one is no error.
	Delete(ctx context.Context, sub string) error
	// SetLease sets the record's refresh lease to l (the zero Lease
	// releases it) in one conditional write if the stored Version equals
	// version, and returns the new Version; tokenstore.ErrConflict
	// otherwise.
	SetLease(ctx context.Context, sub string, version time.Time, l tokenstore.Lease) (time.Time, error)
	// Watch calls fn with the record (nil when there is none) now and after
	// each change, until fn returns false (then nil) or ctx ends (ctx's
	// error).
	Watch(ctx context.Context, sub string, fn func(cur *tokenstore.Record) bool) error
}

// Run runs the conformance suite, each test on a fresh store from newStore.
func Run(t *testing.T, newStore func(t *testing.T) Store) {
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			tc.run(ctx, t, newStore(t))
		})
	}
}

// base is the tests' clock: microsecond precision, which is what Firestore
// keeps.
var base = time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.UTC)

func at(d time.Duration) time.Time { return base.Add(d) }

// sealed returns opaque bytes standing for a token sealed by keyring: the
// stores only ever handle such bytes, never a plaintext token.
func sealed(name string) keyring.Sealed {
	return keyring.Sealed{KeyID: "k1", Ciphertext: []byte("sealed:" + name)}
}

// grant returns the grant a Callback would make for sub at issued, with
// refresh token rt ("" for none).
func grant(sub, rt string, issued time.Time) tokenstore.Grant {
	g := tokenstore.Grant{
		Sub: sub, Email: sub + "@example.com",
		Scopes:      []string{"openid", "email", "https://www.googleapis.com/auth/gmail.readonly"},
		AccessToken: sealed("at-" + rt), AccessTokenExpiry: issued.Add(time.Hour),
		IssuedAt: issued,
	}
	if rt != "" {
		g.RefreshToken = sealed(rt)
	}
	return g
}

// apply returns an Update function that merges g as Callback does.
func apply(g tokenstore.Grant, now time.Time) func(*tokenstore.Record) (*tokenstore.Record, error) {
	return func(cur *tokenstore.Record) (*tokenstore.Record, error) { return g.Apply(cur, now), nil }
}

// mustUpdate merges g into sub's record and returns the stored record.
func mustUpdate(ctx context.Context, t *testing.T, s Store, g tokenstore.Grant, now time.Time) *tokenstore.Record {
	t.Helper()
	r, err := s.Update(ctx, g.Sub, apply(g, now))
	if err != nil {
		t.Fatalf("Update(%s): %v", g.Sub, err)
	}
	return r
}

func mustGet(ctx context.Context, t *testing.T, s Store, sub string) *tokenstore.Record {
	t.Helper()
	r, err := s.Get(ctx, sub)
	if err != nil {
		t.Fatalf("Get(%s): %v", sub, err)
	}
	return r
}

// normalize returns a deep copy of r that reflect.DeepEqual can compare:
// times in UTC, and empty slices nil.
func normalize(r *tokenstore.Record) *tokenstore.Record {
	if r == nil {
		return nil
	}
	c := *r
	for _, p := range []*time.Time{&c.RefreshTokenIssuedAt, &c.AccessTokenExpiry, &c.GrantedAt,
		&c.CreatedAt, &c.UpdatedAt, &c.RefreshedAt, &c.RefreshLease.Until, &c.Version} {
		*p = p.UTC()
	}
	c.Scopes = slices.Clone(c.Scopes)
	if len(c.Scopes) == 0 {
		c.Scopes = nil
	}
	for _, s := range []*keyring.Sealed{&c.RefreshToken, &c.AccessToken} {
		if len(s.Ciphertext) == 0 {
			s.Ciphertext = nil
		} else {
			s.Ciphertext = slices.Clone(s.Ciphertext)
		}
	}
	return &c
}

func sameRecord(a, b *tokenstore.Record) bool {
	return reflect.DeepEqual(normalize(a), normalize(b))
}

// checkRecord fails t when got differs from want.
func checkRecord(t *testing.T, what string, got, want *tokenstore.Record) {
	t.Helper()
	if !sameRecord(got, want) {
		t.Errorf("%s:\n got  %s\n want %s", what, describe(got), describe(want))
	}
}

// describe prints a record for a failure message. The tests' tokens are
// stand-ins, so printing their bytes is harmless.
func describe(r *tokenstore.Record) string {
	if r == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%+v", *normalize(r))
}

func sameSealed(a, b keyring.Sealed) bool {
	return a.KeyID == b.KeyID && bytes.Equal(a.Ciphertext, b.Ciphertext)
}
