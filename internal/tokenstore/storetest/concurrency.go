package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/tokenstore"
)

// concurrentCallbacks runs 100 Callback-style upserts at once: most on one
// hot record, the rest spread over other users, with and without refresh
// tokens, issued at distinct times and arriving in random order. Every user
// must end with the refresh token issued last, and a user who never got one
// must have no record.
func concurrentCallbacks(ctx context.Context, t *testing.T, s Store) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("random seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))

	users := []struct {
		sub          string
		grants       int
		withoutToken bool // every grant comes without a refresh token
	}{
		{"hot", 60, false},
		{"warm", 20, false},
		{"cool", 12, false},
		{"no-refresh-token", 8, true},
		{"idle", 0, false},
	}
	issued := rng.Perm(100) // distinct issue times, in random order
	var grants []tokenstore.Grant
	newest := map[string]tokenstore.Grant{}
	for _, u := range users {
		for i := range u.grants {
			at := at(time.Duration(issued[len(grants)]+1) * time.Millisecond)
			rt := ""
			if !u.withoutToken && (i == 0 || rng.IntN(3) > 0) {
				rt = fmt.Sprintf("rt-%s-%02d", u.sub, i)
			}
			g := grant(u.sub, rt, at)
			grants = append(grants, g)
			if n, ok := newest[u.sub]; rt != "" && (!ok || at.After(n.IssuedAt)) {
				newest[u.sub] = g
			}
		}
	}
	rng.Shuffle(len(grants), func(i, j int) { grants[i], grants[j] = grants[j], grants[i] })

	start := make(chan struct{})
	errs := make(chan error, len(grants))
	var wg sync.WaitGroup
	for _, g := range grants {
		wg.Go(func() {
			<-start
			_, err := s.Update(ctx, g.Sub, apply(g, g.IssuedAt.Add(time.Second)))
			if err != nil {
				err = fmt.Errorf("Update(%s) issued %v: %w", g.Sub, g.IssuedAt, err)
			}
			errs <- err
		})
	}
	begin := time.Now()
	close(start)
	wg.Wait()
	close(errs)
	t.Logf("%d concurrent updates took %v", len(grants), time.Since(begin))
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}

	for _, u := range users {
		got, err := s.Get(ctx, u.sub)
		want, ok := newest[u.sub]
		switch {
		case !ok:
			if !errors.Is(err, tokenstore.ErrNotFound) {
				t.Errorf("%s got no refresh token, yet Get = %s, %v; want ErrNotFound", u.sub, describe(got), err)
			}
		case err != nil:
			t.Errorf("Get(%s): %v", u.sub, err)
		case !sameSealed(got.RefreshToken, want.RefreshToken) || !got.RefreshTokenIssuedAt.Equal(want.IssuedAt) || !got.Usable():
			t.Errorf("%s kept refresh token %q issued %v; want the newest, %q issued %v",
				u.sub, got.RefreshToken.Ciphertext, got.RefreshTokenIssuedAt, want.RefreshToken.Ciphertext, want.IssuedAt)
		}
	}
}
