package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/keyring"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/tokenstore"
)

// tests is the suite: each runs on a fresh, empty store.
var tests = []struct {
	name string
	run  func(ctx context.Context, t *testing.T, s Store)
}{
	{"Get of an absent record returns ErrNotFound", getAbsent},
	{"Update creates the record with Grant.Apply", updateCreates},
	{"Update gives fn the stored record", updateGivesStored},
	{"an empty refresh token never overwrites a stored one", emptyNeverOverwrites},
	{"an older refresh token never overwrites a newer one", olderNeverOverwrites},
	{"fn returning nil writes nothing", fnNilWritesNothing},
	{"an error from fn is returned and nothing is written", fnErrorWritesNothing},
	{"Version changes on every write", versionChanges},
	{"SaveAccess with the current version applies the update", saveAccessCurrent},
	{"SaveAccess with a stale version conflicts and changes nothing", saveAccessStale},
	{"SaveAccess on a deleted record conflicts and does not recreate it", saveAccessDeleted},
	{"Delete is idempotent", deleteIdempotent},
	{"FindByEmail returns the user's record", findByEmail},
	{"FindByEmail prefers the most recently updated usable record", findByEmailPrefers},
	{"sealed bytes round-trip exactly", sealedRoundTrip},
	{"marking a record dead makes it unusable", markDead},
	{"records returned are the caller's copies", returnsCopies},
	{"concurrent callbacks keep the newest refresh token", concurrentCallbacks},
	{"SetLease on the version read takes the lease, once", setLeaseOnce},
	{"of concurrent SetLease calls on one version exactly one wins", setLeaseRace},
	{"SetLease on a deleted record conflicts and does not recreate it", setLeaseDeleted},
	{"SaveAccess ends the lease and can replace the refresh token", saveAccessEndsLease},
	{"Watch sees the record now and after each change", watchSeesChanges},
	{"Watch of an absent record sees it created", watchAbsent},
	{"Watch ends with its context", watchEndsWithContext},
}

func getAbsent(ctx context.Context, t *testing.T, s Store) {
	r, err := s.Get(ctx, "nobody")
	if !errors.Is(err, tokenstore.ErrNotFound) || r != nil {
		t.Fatalf("Get(absent) = %v, %v; want nil, ErrNotFound", describe(r), err)
	}
}

func updateCreates(ctx context.Context, t *testing.T, s Store) {
	g := grant("alice", "rt1", at(0))
	got := mustUpdate(ctx, t, s, g, at(time.Second))
	if got == nil || got.Version.IsZero() {
		t.Fatalf("Update returned %s; want a record with a Version", describe(got))
	}
	want := g.Apply(nil, at(time.Second))
	want.Version = got.Version
	checkRecord(t, "Update result", got, want)
	checkRecord(t, "Get after Update", mustGet(ctx, t, s, "alice"), want)
}

func updateGivesStored(ctx context.Context, t *testing.T, s Store) {
	mustUpdate(ctx, t, s, grant("alice", "rt1", at(0)), at(time.Second))
	stored := mustGet(ctx, t, s, "alice")
	calls := 0
	_, err := s.Update(ctx, "alice", func(cur *tokenstore.Record) (*tokenstore.Record, error) {
		calls++
		checkRecord(t, "fn's cur", cur, stored)
		return nil, nil
	})
	if err != nil || calls == 0 {
		t.Fatalf("Update: err %v after %d calls of fn", err, calls)
	}
}

func emptyNeverOverwrites(ctx context.Context, t *testing.T, s Store) {
	mustUpdate(ctx, t, s, grant("alice", "rt1", at(0)), at(time.Second))
	later := grant("alice", "", at(time.Minute))
	later.Email = "alice@example.org"
	got := mustUpdate(ctx, t, s, later, at(time.Minute))
	stored := mustGet(ctx, t, s, "alice")
	checkRecord(t, "Get after Update", stored, got)
	if !sameSealed(stored.RefreshToken, sealed("rt1")) || !stored.RefreshTokenIssuedAt.Equal(at(0)) {
		t.Errorf("refresh token after an empty one = %q issued %v; want rt1 issued %v",
			stored.RefreshToken.Ciphertext, stored.RefreshTokenIssuedAt, at(0))
	}
	if stored.Email != "alice@example.org" || !stored.GrantedAt.Equal(at(time.Minute)) {
		t.Errorf("newer grant's identity not merged: email %q granted %v", stored.Email, stored.GrantedAt)
	}
}

func olderNeverOverwrites(ctx context.Context, t *testing.T, s Store) {
	steps := []struct {
		rt     string
		issued time.Time
		want   string // the refresh token kept after the step
	}{
		{"rt-2m", at(2 * time.Minute), "rt-2m"},
		{"rt-1m", at(time.Minute), "rt-2m"},
		{"rt-3m", at(3 * time.Minute), "rt-3m"},
		{"rt-0m", at(0), "rt-3m"},
	}
	for _, st := range steps {
		mustUpdate(ctx, t, s, grant("alice", st.rt, st.issued), at(time.Hour))
		if got := mustGet(ctx, t, s, "alice"); !sameSealed(got.RefreshToken, sealed(st.want)) {
			t.Errorf("after %s: refresh token %q, want %q", st.rt, got.RefreshToken.Ciphertext, st.want)
		}
	}
}

func fnNilWritesNothing(ctx context.Context, t *testing.T, s Store) {
	r, err := s.Update(ctx, "nobody", apply(grant("nobody", "", at(0)), at(0)))
	if r != nil || err != nil {
		t.Fatalf("Update(absent, fn → nil) = %s, %v; want nil, nil", describe(r), err)
	}
	if _, err := s.Get(ctx, "nobody"); !errors.Is(err, tokenstore.ErrNotFound) {
		t.Fatalf("Get after a nil write: %v; want ErrNotFound", err)
	}

	stored := mustUpdate(ctx, t, s, grant("alice", "rt1", at(0)), at(0))
	r, err = s.Update(ctx, "alice", func(*tokenstore.Record) (*tokenstore.Record, error) { return nil, nil })
	if err != nil {
		t.Fatal(err)
	}
	checkRecord(t, "Update(present, fn → nil) result", r, stored)
	checkRecord(t, "Get after a nil write", mustGet(ctx, t, s, "alice"), stored)
}

func fnErrorWritesNothing(ctx context.Context, t *testing.T, s Store) {
	errBoom := errors.New("boom")
	fail := func(cur *tokenstore.Record) (*tokenstore.Record, error) {
		return grant("x", "rt-x", at(time.Hour)).Apply(cur, at(time.Hour)), errBoom
	}
	if _, err := s.Update(ctx, "nobody", fail); !errors.Is(err, errBoom) {
		t.Errorf("Update(absent) error = %v; want one wrapping %v", err, errBoom)
	}
	if _, err := s.Get(ctx, "nobody"); !errors.Is(err, tokenstore.ErrNotFound) {
		t.Errorf("Get after a failed Update: %v; want ErrNotFound", err)
	}

	stored := mustUpdate(ctx, t, s, grant("alice", "rt1", at(0)), at(0))
	if _, err := s.Update(ctx, "alice", fail); !errors.Is(err, errBoom) {
		t.Errorf("Update(present) error = %v; want one wrapping %v", err, errBoom)
	}
	checkRecord(t, "Get after a failed Update", mustGet(ctx, t, s, "alice"), stored)
}

func versionChanges(ctx context.Context, t *testing.T, s Store) {
	var versions []time.Time
	check := func(what string, returned time.Time) {
		t.Helper()
		got := mustGet(ctx, t, s, "alice").Version
		if !returned.IsZero() && !returned.Equal(got) {
			t.Errorf("%s returned Version %v, Get says %v", what, returned, got)
		}
		if n := len(versions); n > 0 && !got.After(versions[n-1]) {
			t.Errorf("Version after %s = %v, not after the previous %v", what, got, versions[n-1])
		}
		versions = append(versions, got)
	}
	check("create", mustUpdate(ctx, t, s, grant("alice", "rt1", at(0)), at(0)).Version)
	check("update", mustUpdate(ctx, t, s, grant("alice", "rt2", at(time.Minute)), at(time.Minute)).Version)
	u := tokenstore.AccessUpdate{AccessToken: sealed("at3"), AccessTokenExpiry: at(2 * time.Hour), RefreshedAt: at(time.Hour)}
	if err := s.SaveAccess(ctx, "alice", versions[len(versions)-1], u); err != nil {
		t.Fatalf("SaveAccess: %v", err)
	}
	check("SaveAccess", time.Time{})
}

func saveAccessCurrent(ctx context.Context, t *testing.T, s Store) {
	r := mustUpdate(ctx, t, s, grant("alice", "rt1", at(0)), at(0))
	u := tokenstore.AccessUpdate{AccessToken: sealed("at2"), AccessTokenExpiry: at(2 * time.Hour), RefreshedAt: at(time.Hour)}
	if err := s.SaveAccess(ctx, "alice", r.Version, u); err != nil {
		t.Fatalf("SaveAccess(current version): %v", err)
	}
	got := mustGet(ctx, t, s, "alice")
	want := u.Apply(*r)
	want.Version = got.Version
	checkRecord(t, "Get after SaveAccess", got, &want)

	resealed := keyring.Sealed{KeyID: "k2", Ciphertext: []byte("sealed:rt1 again")}
	u = tokenstore.AccessUpdate{AccessToken: sealed("at3"), AccessTokenExpiry: at(3 * time.Hour), RefreshedAt: at(2 * time.Hour), RefreshToken: &resealed}
	if err := s.SaveAccess(ctx, "alice", got.Version, u); err != nil {
		t.Fatalf("SaveAccess(current version, resealed refresh token): %v", err)
	}
	got2 := mustGet(ctx, t, s, "alice")
	want = u.Apply(*got)
	want.Version = got2.Version
	checkRecord(t, "Get after SaveAccess with a resealed refresh token", got2, &want)
}

func saveAccessStale(ctx context.Context, t *testing.T, s Store) {
	old := mustUpdate(ctx, t, s, grant("alice", "rt1", at(0)), at(0))
	cur := mustUpdate(ctx, t, s, grant("alice", "rt2", at(time.Minute)), at(time.Minute))
	u := tokenstore.AccessUpdate{AccessToken: sealed("at-stale"), AccessTokenExpiry: at(9 * time.Hour), RefreshedAt: at(time.Hour)}
	if err := s.SaveAccess(ctx, "alice", old.Version, u); !errors.Is(err, tokenstore.ErrConflict) {
		t.Fatalf("SaveAccess(stale version) = %v; want ErrConflict", err)
	}
	checkRecord(t, "Get after a conflicting SaveAccess", mustGet(ctx, t, s, "alice"), cur)
}

func saveAccessDeleted(ctx context.Context, t *testing.T, s Store) {
	r := mustUpdate(ctx, t, s, grant("alice", "rt1", at(0)), at(0))
	if err := s.Delete(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	u := tokenstore.AccessUpdate{AccessToken: sealed("at2"), AccessTokenExpiry: at(2 * time.Hour), RefreshedAt: at(time.Hour)}
	if err := s.SaveAccess(ctx, "alice", r.Version, u); !errors.Is(err, tokenstore.ErrConflict) {
		t.Fatalf("SaveAccess(deleted record) = %v; want ErrConflict", err)
	}
	if got, err := s.Get(ctx, "alice"); !errors.Is(err, tokenstore.ErrNotFound) {
		t.Fatalf("SaveAccess recreated a deleted record: %s, %v", describe(got), err)
	}
}

func deleteIdempotent(ctx context.Context, t *testing.T, s Store) {
	if err := s.Delete(ctx, "alice"); err != nil {
		t.Fatalf("Delete(absent) = %v; want nil", err)
	}
	mustUpdate(ctx, t, s, grant("alice", "rt1", at(0)), at(0))
	mustUpdate(ctx, t, s, grant("bob", "rt1", at(0)), at(0))
	for i := range 2 {
		if err := s.Delete(ctx, "alice"); err != nil {
			t.Fatalf("Delete #%d = %v; want nil", i+1, err)
		}
		if _, err := s.Get(ctx, "alice"); !errors.Is(err, tokenstore.ErrNotFound) {
			t.Fatalf("Get after Delete #%d: %v; want ErrNotFound", i+1, err)
		}
	}
	mustGet(ctx, t, s, "bob") // another user's record is untouched
}

func findByEmail(ctx context.Context, t *testing.T, s Store) {
	if _, err := s.FindByEmail(ctx, "alice@example.com"); !errors.Is(err, tokenstore.ErrNotFound) {
		t.Fatalf("FindByEmail(absent) = %v; want ErrNotFound", err)
	}
	alice := mustUpdate(ctx, t, s, grant("alice", "rt1", at(0)), at(0))
	mustUpdate(ctx, t, s, grant("bob", "rt2", at(0)), at(0))
	got, err := s.FindByEmail(ctx, "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	checkRecord(t, "FindByEmail", got, alice)
	if _, err := s.FindByEmail(ctx, "carol@example.com"); !errors.Is(err, tokenstore.ErrNotFound) {
		t.Fatalf("FindByEmail(unknown) = %v; want ErrNotFound", err)
	}
}

// markDeadAt returns an Update function that marks the record dead, as
// ListMessages does on invalid_grant.
func markDeadAt(now time.Time) func(*tokenstore.Record) (*tokenstore.Record, error) {
	return func(cur *tokenstore.Record) (*tokenstore.Record, error) {
		if cur == nil {
			return nil, nil
		}
		next := *cur
		next.Status, next.UpdatedAt = tokenstore.StatusDead, now
		return &next, nil
	}
}

func findByEmailPrefers(ctx context.Context, t *testing.T, s Store) {
	const email = "shared@example.com"
	for i, sub := range []string{"a", "b", "c"} {
		g := grant(sub, "rt-"+sub, at(0))
		g.Email = email
		mustUpdate(ctx, t, s, g, at(time.Duration(i+1)*time.Minute))
	}
	if _, err := s.Update(ctx, "c", markDeadAt(at(3*time.Minute))); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		markDead string
		want     string
	}{
		{"", "b"},  // a and b usable, b updated later; c, updated last, is dead
		{"b", "a"}, // a is the only usable one
		{"a", "a"}, // none usable: the most recently updated
	}
	for i, st := range steps {
		if st.markDead != "" {
			if _, err := s.Update(ctx, st.markDead, markDeadAt(at(time.Duration(4+i)*time.Minute))); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.FindByEmail(ctx, email)
		if err != nil {
			t.Fatal(err)
		}
		if got.Sub != st.want {
			t.Errorf("step %d: FindByEmail = %s; want %s", i, got.Sub, st.want)
		}
	}
}

func sealedRoundTrip(ctx context.Context, t *testing.T, s Store) {
	every := make([]byte, 512)
	for i := range every {
		every[i] = byte(i)
	}
	g := grant("alice", "x", at(0))
	g.RefreshToken = keyring.Sealed{KeyID: "key-2026-03", Ciphertext: every}
	g.AccessToken = keyring.Sealed{KeyID: "k1", Ciphertext: []byte{0, 0, 0xff, '\n', 0}}
	returned := mustUpdate(ctx, t, s, g, at(0))
	found, err := s.FindByEmail(ctx, g.Email)
	if err != nil {
		t.Fatal(err)
	}
	for what, r := range map[string]*tokenstore.Record{"Update": returned, "Get": mustGet(ctx, t, s, "alice"), "FindByEmail": found} {
		if !sameSealed(r.RefreshToken, g.RefreshToken) || !sameSealed(r.AccessToken, g.AccessToken) {
			t.Errorf("%s: sealed tokens changed in the store:\n got  %+v %+v\n want %+v %+v",
				what, r.RefreshToken, r.AccessToken, g.RefreshToken, g.AccessToken)
		}
	}

	resealed := keyring.Sealed{KeyID: "k2", Ciphertext: every[255:]}
	u := tokenstore.AccessUpdate{AccessToken: keyring.Sealed{KeyID: "k2", Ciphertext: every[:7]}, AccessTokenExpiry: at(time.Hour), RefreshedAt: at(time.Minute), RefreshToken: &resealed}
	if err := s.SaveAccess(ctx, "alice", returned.Version, u); err != nil {
		t.Fatal(err)
	}
	got := mustGet(ctx, t, s, "alice")
	if !sameSealed(got.RefreshToken, resealed) || !sameSealed(got.AccessToken, u.AccessToken) {
		t.Errorf("after SaveAccess: sealed tokens %+v %+v; want %+v %+v", got.RefreshToken, got.AccessToken, resealed, u.AccessToken)
	}
}

func markDead(ctx context.Context, t *testing.T, s Store) {
	mustUpdate(ctx, t, s, grant("alice", "rt1", at(time.Minute)), at(time.Minute))
	dead, err := s.Update(ctx, "alice", markDeadAt(at(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	stored := mustGet(ctx, t, s, "alice")
	checkRecord(t, "Get after marking dead", stored, dead)
	if stored.Usable() || stored.Status != tokenstore.StatusDead {
		t.Fatalf("after marking dead: Status %q, Usable %v; want dead and unusable", stored.Status, stored.Usable())
	}

	// A grant without a refresh token cannot revive it, and writes nothing.
	if _, err := s.Update(ctx, "alice", apply(grant("alice", "", at(2*time.Hour)), at(2*time.Hour))); err != nil {
		t.Fatal(err)
	}
	checkRecord(t, "Get after a grant without refresh token", mustGet(ctx, t, s, "alice"), stored)

	// A new refresh token revives it, even if issued before the dead one.
	revived := mustUpdate(ctx, t, s, grant("alice", "rt0", at(0)), at(3*time.Hour))
	if !revived.Usable() || !sameSealed(revived.RefreshToken, sealed("rt0")) {
		t.Fatalf("after a new grant: %s; want usable with rt0", describe(revived))
	}
}

func returnsCopies(ctx context.Context, t *testing.T, s Store) {
	returned := mustUpdate(ctx, t, s, grant("alice", "rt1", at(0)), at(0))
	want := normalize(returned)
	got := mustGet(ctx, t, s, "alice")
	for _, r := range []*tokenstore.Record{returned, got} {
		r.Scopes[0] = "changed"
		r.RefreshToken.Ciphertext[0] ^= 0xff
		r.AccessToken.Ciphertext[0] ^= 0xff
	}
	checkRecord(t, "Get after changing returned records", mustGet(ctx, t, s, "alice"), want)
}
