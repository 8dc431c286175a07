package firestorestore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/firestoretest"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/keyring"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/tokenstore"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/tokenstore/firestorestore"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/tokenstore/storetest"
)

func TestMain(m *testing.M) { firestoretest.Main(m) }

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store {
		client, _ := firestoretest.NewClient(context.Background(), t)
		s := firestorestore.New(client, "")
		// The concurrency case queues sixty updates of one record in one
		// process; the budget is for one request's call, not such a queue.
		s.Timeout = time.Minute
		return s
	})
}

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.UTC)

// testGrant is a grant with every field set; its tokens are opaque bytes
// standing for sealed ones.
func testGrant(sub, rt string, issued time.Time) tokenstore.Grant {
	g := tokenstore.Grant{
		Sub: sub, Email: sub + "@example.com", Scopes: []string{"openid", "email"},
		AccessToken:       keyring.Sealed{KeyID: "k1", Ciphertext: []byte{0xa0, 0, 0xff, 1}},
		AccessTokenExpiry: issued.Add(time.Hour), IssuedAt: issued,
	}
	if rt != "" {
		g.RefreshToken = keyring.Sealed{KeyID: "k1", Ciphertext: []byte("sealed:" + rt)}
	}
	return g
}

func put(ctx context.Context, t *testing.T, s *firestorestore.Store, g tokenstore.Grant) *tokenstore.Record {
	t.Helper()
	r, err := s.Update(ctx, g.Sub, func(cur *tokenstore.Record) (*tokenstore.Record, error) {
		return g.Apply(cur, g.IssuedAt), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRPCsPerOperation(t *testing.T) {
	ctx := context.Background()
	client, rpcs := firestoretest.NewClient(ctx, t)
	s := firestorestore.New(client, "")
	alice := put(ctx, t, s, testGrant("alice", "rt1", t0))
	errBoom := errors.New("boom")
	var leased time.Time // the version SetLease made
	tests := []struct {
		name string
		op   func() error
		want []string
	}{
		{"Get", func() error { _, err := s.Get(ctx, "alice"); return err },
			[]string{"BatchGetDocuments"}},
		{"Get of an absent record", func() error { _, err := s.Get(ctx, "nobody"); return expect(err, tokenstore.ErrNotFound) },
			[]string{"BatchGetDocuments"}},
		{"FindByEmail", func() error { _, err := s.FindByEmail(ctx, "alice@example.com"); return err },
			[]string{"RunQuery"}},
		{"SetLease", func() error {
			var err error
			leased, err = s.SetLease(ctx, "alice", alice.Version, tokenstore.Lease{Holder: "a", Until: t0.Add(time.Minute)})
			return err
		}, []string{"Commit"}},
		{"SetLease with a stale version", func() error {
			_, err := s.SetLease(ctx, "alice", alice.Version, tokenstore.Lease{Holder: "b", Until: t0.Add(time.Minute)})
			return expect(err, tokenstore.ErrConflict)
		}, []string{"Commit"}},
		{"SaveAccess", func() error {
			return s.SaveAccess(ctx, "alice", leased, tokenstore.AccessUpdate{AccessToken: alice.AccessToken, RefreshedAt: t0.Add(time.Minute)})
		}, []string{"Commit"}},
		{"Watch", func() error {
			return s.Watch(ctx, "alice", func(*tokenstore.Record) bool { return false })
		}, []string{"Listen"}},
		{"SaveAccess with a stale version", func() error {
			return expect(s.SaveAccess(ctx, "alice", alice.Version, tokenstore.AccessUpdate{}), tokenstore.ErrConflict)
		}, []string{"Commit"}},
		{"Update that writes", func() error { put(ctx, t, s, testGrant("alice", "rt2", t0.Add(time.Hour))); return nil },
			[]string{"BeginTransaction", "BatchGetDocuments", "Commit"}},
		{"Update that creates", func() error { put(ctx, t, s, testGrant("bob", "rt1", t0)); return nil },
			[]string{"BeginTransaction", "BatchGetDocuments", "Commit"}},
		{"Update that writes nothing", func() error {
			_, err := s.Update(ctx, "alice", func(*tokenstore.Record) (*tokenstore.Record, error) { return nil, nil })
			return err
		}, []string{"BeginTransaction", "BatchGetDocuments", "Commit"}},
		{"Update whose fn fails", func() error {
			_, err := s.Update(ctx, "alice", func(*tokenstore.Record) (*tokenstore.Record, error) { return nil, errBoom })
			return expect(err, errBoom)
		}, []string{"BeginTransaction", "BatchGetDocuments", "Rollback"}},
		{"Delete", func() error { return s.Delete(ctx, "bob") },
			[]string{"Commit"}},
	}
	for _, tc := range tests {
		rpcs.Reset()
		if err := tc.op(); err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got := rpcs.Calls(); !slices.Equal(got, tc.want) {
			t.Errorf("%s made RPCs %v; want %v", tc.name, got, tc.want)
		}
	}
}

// expect returns nil if err is want, and an error saying so otherwise.
func expect(err, want error) error {
	if errors.Is(err, want) {
		return nil
	}
	return fmt.Errorf("error %v, want %v", err, want)
}

func TestDocumentLayout(t *testing.T) {
	ctx := context.Background()
	client, _ := firestoretest.NewClient(ctx, t)
	s := firestorestore.New(client, "")
	refresh := keyring.Sealed{KeyID: "key-2026", Ciphertext: []byte{0, 1, 2, 0xfe, 0xff, '\n'}}
	access := keyring.Sealed{KeyID: "key-2025", Ciphertext: bytes.Repeat([]byte{0x80}, 300)}

	full := testGrant("full", "", t0)
	full.RefreshToken, full.AccessToken = refresh, access
	full.Email = "Full@Example.COM"
	binding := keyring.Tag{KeyID: "key-2026", Sum: bytes.Repeat([]byte{0xb1}, 32)}
	full.EmailBinding = binding
	r := put(ctx, t, s, full)
	if err := s.SaveAccess(ctx, "full", r.Version, tokenstore.AccessUpdate{
		AccessToken: access, AccessTokenExpiry: t0.Add(2 * time.Hour), RefreshedAt: t0.Add(time.Hour),
	}); err != nil {
		t.Fatal(err)
	}
	noAccess := testGrant("no-access", "", t0)
	noAccess.RefreshToken, noAccess.AccessToken, noAccess.AccessTokenExpiry = refresh, keyring.Sealed{}, time.Time{}
	put(ctx, t, s, noAccess)

	tests := []struct {
		sub, email string
		wantKeys   []string
	}{
		{"full", full.Email, []string{"access_token", "access_token_expiry", "created_at", "email", "email_binding", "email_key", "granted_at",
			"refresh_token", "refresh_token_issued_at", "refreshed_at", "scopes", "sessions_valid_after", "status", "updated_at"}},
		{"no-access", noAccess.Email, []string{"created_at", "email", "email_key", "granted_at",
			"refresh_token", "refresh_token_issued_at", "scopes", "sessions_valid_after", "status", "updated_at"}},
	}
	for _, tc := range tests {
		t.Run(tc.sub, func(t *testing.T) {
			snap, err := client.Collection(firestorestore.DefaultCollection).Doc(tc.sub).Get(ctx)
			if err != nil {
				t.Fatalf("raw read of %s/%s: %v", firestorestore.DefaultCollection, tc.sub, err)
			}
			data := snap.Data()
			if got := slices.Sorted(maps.Keys(data)); !slices.Equal(got, tc.wantKeys) {
				t.Errorf("fields %v; want %v", got, tc.wantKeys)
			}
			for field, v := range data {
				var ok bool
				switch field {
				case "email": // as Google gave it
					ok = v == tc.email
				case "email_key": // what FindByEmail queries: the email without case
					ok = v == tc.sub+"@example.com"
				case "email_binding":
					m, isMap := v.(map[string]any)
					mac, _ := m["mac"].([]byte)
					ok = isMap && len(m) == 2 && m["key_id"] == binding.KeyID && bytes.Equal(mac, binding.Sum)
				case "status":
					ok = v == "active"
				case "scopes":
					ok = slices.Equal(v.([]any), []any{"openid", "email"})
				case "refresh_token":
					ok = sealedField(v, refresh)
				case "access_token":
					ok = sealedField(v, access)
				default: // the *_at and *_expiry fields
					_, ok = v.(time.Time)
				}
				if !ok {
					t.Errorf("field %s = %#v (%T): wrong value or type", field, v, v)
				}
			}
		})
	}
}

// sealedField reports whether a raw field is the map {key_id, ciphertext}
// holding exactly want, with the ciphertext stored as bytes.
func sealedField(v any, want keyring.Sealed) bool {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 2 {
		return false
	}
	ct, ok := m["ciphertext"].([]byte)
	return ok && m["key_id"] == want.KeyID && bytes.Equal(ct, want.Ciphertext)
}

func TestCollectionIsConfigurable(t *testing.T) {
	ctx := context.Background()
	client, _ := firestoretest.NewClient(ctx, t)
	put(ctx, t, firestorestore.New(client, "custom_tokens"), testGrant("alice", "rt1", t0))
	if _, err := client.Collection("custom_tokens").Doc("alice").Get(ctx); err != nil {
		t.Errorf("record not in the configured collection: %v", err)
	}
	if _, err := firestorestore.New(client, "").Get(ctx, "alice"); !errors.Is(err, tokenstore.ErrNotFound) {
		t.Errorf("record found in the default collection too: %v", err)
	}
}

// TestInstancesContend runs concurrent updates of one record from several
// stores, each with its own client, as separate function instances would:
// their transactions contend in Firestore, which aborts some, and the
// retries must still leave the newest refresh token.
func TestInstancesContend(t *testing.T) {
	const instances, perInstance = 3, 3
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	project := firestoretest.ProjectID(t)
	var (
		stores []*firestorestore.Store
		rpcs   []*firestoretest.RPCCounter
	)
	for range instances {
		client, counter := firestoretest.NewProjectClient(ctx, t, project)
		s := firestorestore.New(client, "")
		// The emulator holds contending transactions for seconds: this test
		// is about the merge, not the budget.
		s.Timeout = time.Minute
		stores = append(stores, s)
		rpcs = append(rpcs, counter)
	}
	var wg sync.WaitGroup
	errs := make(chan error, instances*perInstance)
	begin := time.Now()
	for i, s := range stores {
		for j := range perInstance {
			issued := t0.Add(time.Duration(j*instances+i) * time.Second) // newest: the last instance's last grant
			g := testGrant("hot", fmt.Sprintf("rt-%d-%d", i, j), issued)
			wg.Go(func() {
				_, err := s.Update(ctx, "hot", func(cur *tokenstore.Record) (*tokenstore.Record, error) {
					return g.Apply(cur, issued), nil
				})
				errs <- err
			})
		}
	}
	wg.Wait()
	close(errs)
	attempts := 0
	for _, c := range rpcs {
		attempts += c.Count("BeginTransaction")
	}
	t.Logf("%d updates from %d instances took %v and %d transaction attempts", instances*perInstance, instances, time.Since(begin), attempts)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	got, err := stores[0].Get(ctx, "hot")
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("sealed:rt-%d-%d", instances-1, perInstance-1); string(got.RefreshToken.Ciphertext) != want {
		t.Errorf("kept refresh token %q; want the newest, %q", got.RefreshToken.Ciphertext, want)
	}
}

// TestSetLease_CommitFailedAfterApplying_ReadsBackTheLease: a lease Commit
// that fails may have been applied all the same (the emulator answers
// CANCELLED to a commit racing a listener's cancellation, after writing).
// SetLease then reads the document: the lease it holds is taken, and one
// it does not hold is an error. Taken for failed, a written lease would
// make the other instances wait it out and refresh a second time.
func TestSetLease_CommitFailedAfterApplying_ReadsBackTheLease(t *testing.T) {
	ctx := context.Background()
	cancelled := status.Error(codes.Canceled, "call already cancelled")
	tests := []struct {
		name    string
		applied bool
	}{
		{"applied", true},
		{"not applied", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, rpcs := firestoretest.NewClient(ctx, t)
			s := firestorestore.New(client, "")
			alice := put(ctx, t, s, testGrant("alice", "rt1", t0))
			l := tokenstore.Lease{Holder: "h", Until: t0.Add(time.Minute)}
			rpcs.Reset()
			rpcs.FailNext("Commit", cancelled, tt.applied)
			v, err := s.SetLease(ctx, "alice", alice.Version, l)
			got, gerr := s.Get(ctx, "alice")
			if gerr != nil {
				t.Fatal(gerr)
			}
			if want := []string{"Commit", "BatchGetDocuments", "BatchGetDocuments"}; !slices.Equal(rpcs.Calls(), want) {
				t.Errorf("RPCs %v; want %v (the commit, the read-back, the test's Get)", rpcs.Calls(), want)
			}
			switch {
			case tt.applied && (err != nil || !v.Equal(got.Version) || got.RefreshLease.Holder != "h"):
				t.Errorf("SetLease = %v, %v; want the version of the record holding the lease (%v, lease %+v)", v, err, got.Version, got.RefreshLease)
			case !tt.applied && (status.Code(err) != codes.Canceled || !got.Version.Equal(alice.Version) || got.RefreshLease.Holder != ""):
				t.Errorf("SetLease = %v, %v; want the commit's error and the record unchanged (lease %+v)", v, err, got.RefreshLease)
			}
		})
	}
}
