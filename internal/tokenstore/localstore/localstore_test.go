package localstore_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/keyring"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/tokenstore"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/tokenstore/localstore"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/tokenstore/storetest"
)

func open(t *testing.T, path string) *localstore.Store {
	t.Helper()
	s, err := localstore.Open(path)
	if err != nil {
		t.Fatalf("Open(%q): %v", path, err)
	}
	return s
}

func TestConformanceInMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store { return open(t, "") })
}

func TestConformanceFileBacked(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store {
		return open(t, filepath.Join(t.TempDir(), "tokens.json"))
	})
}

var ctx = context.Background()

func grant(sub, rt string) tokenstore.Grant {
	return tokenstore.Grant{
		Sub: sub, Email: sub + "@example.com", Scopes: []string{"openid"},
		RefreshToken: keyring.Sealed{KeyID: "k1", Ciphertext: []byte("sealed:" + rt)},
		AccessToken:  keyring.Sealed{KeyID: "k1", Ciphertext: []byte{0, 1, 2, 0xff}},
		IssuedAt:     time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), AccessTokenExpiry: time.Date(2026, 1, 1, 1, 0, 0, 0, time.UTC),
	}
}

func put(t *testing.T, s *localstore.Store, g tokenstore.Grant) *tokenstore.Record {
	t.Helper()
	r, err := s.Update(ctx, g.Sub, func(cur *tokenstore.Record) (*tokenstore.Record, error) {
		return g.Apply(cur, g.IssuedAt), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestReopenKeepsRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "tokens.json")
	s := open(t, path)
	alice := put(t, s, grant("alice", "rt-a"))
	bob := put(t, s, grant("bob", "rt-b"))
	if err := s.SaveAccess(ctx, "bob", bob.Version, tokenstore.AccessUpdate{
		AccessToken: keyring.Sealed{KeyID: "k2", Ciphertext: []byte("sealed:at")}, RefreshedAt: time.Now(),
	}); err != nil {
		t.Fatal(err)
	}
	bob, _ = s.Get(ctx, "bob")
	put(t, s, grant("carol", "rt-c"))
	if err := s.Delete(ctx, "carol"); err != nil {
		t.Fatal(err)
	}

	r := open(t, path)
	for _, want := range []*tokenstore.Record{alice, bob} {
		got, err := r.Get(ctx, want.Sub)
		if err != nil {
			t.Fatalf("after reopening: Get(%s): %v", want.Sub, err)
		}
		if got.Email != want.Email || !got.Version.Equal(want.Version) || !got.UpdatedAt.Equal(want.UpdatedAt) ||
			!bytes.Equal(got.RefreshToken.Ciphertext, want.RefreshToken.Ciphertext) ||
			!bytes.Equal(got.AccessToken.Ciphertext, want.AccessToken.Ciphertext) || got.AccessToken.KeyID != want.AccessToken.KeyID {
			t.Errorf("after reopening:\n got  %+v\n want %+v", got, want)
		}
	}
	if _, err := r.Get(ctx, "carol"); err != tokenstore.ErrNotFound {
		t.Errorf("a deleted record came back after reopening: %v", err)
	}
	// A conditional write with the version read before the restart still
	// applies: versions survive.
	if err := r.SaveAccess(ctx, "alice", alice.Version, tokenstore.AccessUpdate{RefreshedAt: time.Now()}); err != nil {
		t.Errorf("SaveAccess with a version from before reopening: %v", err)
	}
	// New versions keep increasing across the restart.
	if got := put(t, r, grant("bob", "rt-b2")); !got.Version.After(bob.Version) {
		t.Errorf("Version after reopening %v is not after %v", got.Version, bob.Version)
	}
}

func TestFileAndDirectoryArePrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	path := filepath.Join(dir, "tokens.json")
	s := open(t, path)
	put(t, s, grant("alice", "rt-a"))
	for name, want := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, path: 0o600} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s mode %v; want %v", name, fi.Mode(), want)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries after writes; want only the store file (no temporary files left)", len(entries))
	}
}

func TestCorruptFileIsRefusedNotOverwritten(t *testing.T) {
	tests := []struct {
		name, content string
	}{
		{"truncated JSON", `{"format":1,"records":{"alice":{"email":`},
		{"not JSON", "hello"},
		{"unknown format", `{"format":99,"records":{}}`},
		{"null record", `{"format":1,"records":{"alice":null}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "tokens.json")
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := localstore.Open(path)
			if err == nil {
				t.Fatalf("Open(corrupt file) = %v, nil; want an error", s)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file %s", err, path)
			}
			if got, _ := os.ReadFile(path); string(got) != tc.content {
				t.Errorf("the corrupt file was changed to %q", got)
			}
		})
	}
}

func TestOpsCountRoundTrips(t *testing.T) {
	s := open(t, "")
	steps := []struct {
		name string
		do   func() error
		want localstore.Ops
	}{
		{"Get", func() error { _, err := s.Get(ctx, "alice"); return ignore(err, tokenstore.ErrNotFound) },
			localstore.Ops{Reads: 1}},
		{"FindByEmail", func() error { _, err := s.FindByEmail(ctx, "a@b"); return ignore(err, tokenstore.ErrNotFound) },
			localstore.Ops{Reads: 1}},
		{"Update that writes", func() error { put(t, s, grant("alice", "rt")); return nil },
			localstore.Ops{Transactions: 1, Writes: 1}},
		{"Update that writes nothing", func() error {
			_, err := s.Update(ctx, "alice", func(*tokenstore.Record) (*tokenstore.Record, error) { return nil, nil })
			return err
		}, localstore.Ops{Transactions: 1}},
		{"SaveAccess", func() error {
			r, _ := s.Get(ctx, "alice")
			s.ResetOps()
			return s.SaveAccess(ctx, "alice", r.Version, tokenstore.AccessUpdate{})
		}, localstore.Ops{Writes: 1}},
		{"SaveAccess that conflicts", func() error {
			return ignore(s.SaveAccess(ctx, "alice", time.Time{}, tokenstore.AccessUpdate{}), tokenstore.ErrConflict)
		}, localstore.Ops{}},
		{"SetLease", func() error {
			r, _ := s.Get(ctx, "alice")
			s.ResetOps()
			_, err := s.SetLease(ctx, "alice", r.Version, tokenstore.Lease{Holder: "a", Until: time.Now().Add(time.Second)})
			return err
		}, localstore.Ops{Leases: 1, Writes: 1}},
		{"SetLease that conflicts", func() error {
			_, err := s.SetLease(ctx, "alice", time.Time{}, tokenstore.Lease{})
			return ignore(err, tokenstore.ErrConflict)
		}, localstore.Ops{Leases: 1}},
		{"Watch", func() error {
			return s.Watch(ctx, "alice", func(*tokenstore.Record) bool { return false })
		}, localstore.Ops{Watches: 1}},
		{"Delete", func() error { return s.Delete(ctx, "alice") }, localstore.Ops{Writes: 1}},
		{"Delete of an absent record", func() error { return s.Delete(ctx, "alice") }, localstore.Ops{}},
	}
	for _, st := range steps {
		s.ResetOps()
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got := s.Ops(); got != st.want {
			t.Errorf("%s: Ops = %+v; want %+v", st.name, got, st.want)
		}
	}
}

func ignore(err, want error) error {
	if err == want {
		return nil
	}
	return err
}
