package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/tokenstore"
)

// lease returns a lease held by holder until d after base.
func lease(holder string, d time.Duration) tokenstore.Lease {
	return tokenstore.Lease{Holder: holder, Until: at(d)}
}

func sameLease(a, b tokenstore.Lease) bool { return a.Holder == b.Holder && a.Until.Equal(b.Until) }

func setLeaseOnce(ctx context.Context, t *testing.T, s Store) {
	r := mustUpdate(ctx, t, s, grant("alice", "rt1", at(0)), at(0))
	l := lease("a", 5*time.Second)
	v, err := s.SetLease(ctx, "alice", r.Version, l)
	if err != nil {
		t.Fatalf("SetLease(current version): %v", err)
	}
	want := *r
	want.RefreshLease, want.Version = l, v
	leased := mustGet(ctx, t, s, "alice")
	checkRecord(t, "Get after SetLease", leased, &want)
	if !v.After(r.Version) || !leased.Leased(at(4*time.Second)) || leased.Leased(l.Until) {
		t.Errorf("Version %v after %v, lease %+v: want a newer version and a lease ending at %v", v, r.Version, leased.RefreshLease, l.Until)
	}

	// The version it was taken on is spent.
	if _, err := s.SetLease(ctx, "alice", r.Version, lease("b", time.Minute)); !errors.Is(err, tokenstore.ErrConflict) {
		t.Fatalf("SetLease(the version the lease was taken on) = %v; want ErrConflict", err)
	}
	checkRecord(t, "Get after a conflicting SetLease", mustGet(ctx, t, s, "alice"), leased)

	// A grant merged meanwhile keeps it; the holder's version is then stale.
	merged := mustUpdate(ctx, t, s, grant("alice", "rt2", at(time.Second)), at(time.Second))
	if !sameLease(merged.RefreshLease, l) {
		t.Errorf("an Update changed the lease to %+v, want %+v", merged.RefreshLease, l)
	}
	if _, err := s.SetLease(ctx, "alice", v, tokenstore.Lease{}); !errors.Is(err, tokenstore.ErrConflict) {
		t.Fatalf("SetLease(version before an Update) = %v; want ErrConflict", err)
	}

	// Released on the current version.
	v2, err := s.SetLease(ctx, "alice", merged.Version, tokenstore.Lease{})
	if err != nil {
		t.Fatalf("SetLease(zero): %v", err)
	}
	released := mustGet(ctx, t, s, "alice")
	if !sameLease(released.RefreshLease, tokenstore.Lease{}) || !released.Version.Equal(v2) {
		t.Errorf("after release: lease %+v, version %v; want none, %v", released.RefreshLease, released.Version, v2)
	}
}

// setLeaseRace: instances that read one version try for the lease at once,
// with leases that differ only in their holder (their clocks agree).
func setLeaseRace(ctx context.Context, t *testing.T, s Store) {
	r := mustUpdate(ctx, t, s, grant("alice", "rt1", at(0)), at(0))
	const n = 8
	start := make(chan struct{})
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			_, err := s.SetLease(ctx, "alice", r.Version, lease(fmt.Sprint(i), 5*time.Second))
			errs <- err
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	won := 0
	for err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, tokenstore.ErrConflict):
			t.Errorf("SetLease: %v; want nil or ErrConflict", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d of %d concurrent SetLease calls on one version won; want exactly 1", won, n)
	}

	// A lease taken over when the first runs out, with the same Until.
	cur := mustGet(ctx, t, s, "alice")
	if _, err := s.SetLease(ctx, "alice", cur.Version, lease("next", 5*time.Second)); err != nil {
		t.Fatalf("SetLease(current version, another holder): %v", err)
	}
	if _, err := s.SetLease(ctx, "alice", cur.Version, lease("late", 5*time.Second)); !errors.Is(err, tokenstore.ErrConflict) {
		t.Fatalf("a second take-over on the same version = %v; want ErrConflict", err)
	}
}

func setLeaseDeleted(ctx context.Context, t *testing.T, s Store) {
	r := mustUpdate(ctx, t, s, grant("alice", "rt1", at(0)), at(0))
	if err := s.Delete(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetLease(ctx, "alice", r.Version, lease("a", time.Second)); !errors.Is(err, tokenstore.ErrConflict) {
		t.Fatalf("SetLease(deleted record) = %v; want ErrConflict", err)
	}
	if got, err := s.Get(ctx, "alice"); !errors.Is(err, tokenstore.ErrNotFound) {
		t.Fatalf("SetLease recreated a deleted record: %s, %v", describe(got), err)
	}
}

func saveAccessEndsLease(ctx context.Context, t *testing.T, s Store) {
	r := mustUpdate(ctx, t, s, grant("alice", "rt1", at(0)), at(0))
	v, err := s.SetLease(ctx, "alice", r.Version, lease("a", 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	rotated := sealed("rt1-rotated")
	u := tokenstore.AccessUpdate{AccessToken: sealed("at2"), AccessTokenExpiry: at(time.Hour), RefreshedAt: at(time.Second),
		RefreshToken: &rotated, RefreshTokenIssuedAt: at(time.Second)}
	if err := s.SaveAccess(ctx, "alice", v, u); err != nil {
		t.Fatalf("SaveAccess on the lease's version: %v", err)
	}
	got := mustGet(ctx, t, s, "alice")
	want := u.Apply(*r)
	want.Version = got.Version
	checkRecord(t, "Get after SaveAccess", got, &want)
	if !sameLease(got.RefreshLease, tokenstore.Lease{}) || !sameSealed(got.RefreshToken, rotated) || !got.RefreshTokenIssuedAt.Equal(at(time.Second)) {
		t.Errorf("after SaveAccess: lease %+v, refresh token %q issued %v; want no lease and the rotated token issued %v",
			got.RefreshLease, got.RefreshToken.Ciphertext, got.RefreshTokenIssuedAt, at(time.Second))
	}
}

// watcher runs Watch in the background and hands each record it sees to
// the test, which says whether to go on.
type watcher struct {
	seen chan *tokenstore.Record
	goOn chan bool
	done chan error
}

func watch(ctx context.Context, s Store, sub string) *watcher {
	w := &watcher{seen: make(chan *tokenstore.Record), goOn: make(chan bool), done: make(chan error, 1)}
	go func() {
		w.done <- s.Watch(ctx, sub, func(cur *tokenstore.Record) bool {
			w.seen <- cur
			return <-w.goOn
		})
	}()
	return w
}

// next waits for the next record the watch sees.
func (w *watcher) next(t *testing.T, what string) *tokenstore.Record {
	t.Helper()
	select {
	case r := <-w.seen:
		return r
	case err := <-w.done:
		t.Fatalf("%s: Watch returned %v before seeing it", what, err)
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: Watch saw nothing within 30 s", what)
	}
	return nil
}

func watchSeesChanges(ctx context.Context, t *testing.T, s Store) {
	r := mustUpdate(ctx, t, s, grant("alice", "rt1", at(0)), at(0))
	w := watch(ctx, s, "alice")
	checkRecord(t, "first record seen", w.next(t, "the record"), r)
	w.goOn <- true

	l := lease("a", 5*time.Second)
	v, err := s.SetLease(ctx, "alice", r.Version, l)
	if err != nil {
		t.Fatal(err)
	}
	if got := w.next(t, "the lease"); !got.Version.Equal(v) || !sameLease(got.RefreshLease, l) {
		t.Errorf("after SetLease, saw %s; want version %v with lease %+v", describe(got), v, l)
	}
	w.goOn <- true

	mustUpdate(ctx, t, s, grant("bob", "rt1", at(0)), at(0)) // another user's record: not seen
	u := tokenstore.AccessUpdate{AccessToken: sealed("at2"), AccessTokenExpiry: at(time.Hour), RefreshedAt: at(time.Second)}
	if err := s.SaveAccess(ctx, "alice", v, u); err != nil {
		t.Fatal(err)
	}
	checkRecord(t, "after SaveAccess", w.next(t, "the write-back"), mustGet(ctx, t, s, "alice"))
	w.goOn <- true

	if err := s.Delete(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if got := w.next(t, "the deletion"); got != nil {
		t.Errorf("after Delete, saw %s; want nil", describe(got))
	}
	w.goOn <- false
	if err := <-w.done; err != nil {
		t.Errorf("Watch, after fn returned false: %v; want nil", err)
	}
}

func watchAbsent(ctx context.Context, t *testing.T, s Store) {
	w := watch(ctx, s, "alice")
	if got := w.next(t, "the absent record"); got != nil {
		t.Fatalf("Watch(absent) saw %s; want nil", describe(got))
	}
	w.goOn <- true
	r := mustUpdate(ctx, t, s, grant("alice", "rt1", at(0)), at(0))
	checkRecord(t, "after the record was created", w.next(t, "the created record"), r)
	w.goOn <- false
	if err := <-w.done; err != nil {
		t.Errorf("Watch: %v", err)
	}
}

func watchEndsWithContext(ctx context.Context, t *testing.T, s Store) {
	mustUpdate(ctx, t, s, grant("alice", "rt1", at(0)), at(0))
	wctx, cancel := context.WithCancel(ctx)
	w := watch(wctx, s, "alice")
	w.next(t, "the record")
	w.goOn <- true
	cancel()
	select {
	case err := <-w.done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Watch after its context ended: %v; want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Watch did not return within 30 s of its context ending")
	}
}
