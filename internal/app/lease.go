package app

import (
	"context"
	"crypto/rand"
	"errors"
	"time"

	"golang.org/x/oauth2"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/tokenstore"
)

// leaseRounds bounds how often one refresh waits for a lease and tries to
// take it over before refreshing without it.
const leaseRounds = 3

// errLeaseExpired ends a watch whose lease ran out with no write-back.
var errLeaseExpired = errors.New("refresh lease expired")

// once refreshes the user's access token, or waits for the instance that
// holds the user's refresh lease to write its token back (see userTokens).
func (u *userTokens) once(ctx context.Context, stale string) (string, error) {
	a, rec := u.a, u.rec
	free := !rec.Leased(a.now())
	for range leaseRounds {
		if free {
			l := tokenstore.Lease{Holder: rand.Text(), Until: a.now().Add(a.lease)}
			v, err := a.store.SetLease(ctx, rec.Sub, rec.Version, l)
			switch {
			case err == nil:
				held := *rec
				held.Version, held.RefreshLease = v, l
				return u.refreshWith(ctx, &held, true)
			case !errors.Is(err, tokenstore.ErrConflict):
				a.log.WarnContext(ctx, "refresh lease not taken; refreshing without it", "sub", rec.Sub, "err", err)
				return u.refreshWith(ctx, rec, false)
			}
			// The record changed since it was read: most likely another
			// instance took the lease.
		}
		w, err := u.await(ctx, rec.Sub, stale)
		switch {
		case err != nil:
			a.log.WarnContext(ctx, "watching the refresh lease failed; refreshing without it", "sub", rec.Sub, "err", err)
			return u.refreshWith(ctx, rec, false)
		case !w.rec.Usable():
			return "", errReauthorize // disconnected, or Google refused the grant meanwhile
		case w.token != "":
			a.recent.put(rec.Sub, &oauth2.Token{AccessToken: w.token, Expiry: w.rec.AccessTokenExpiry}, a.now())
			return w.token, nil
		case w.failed:
			return "", errTokenEndpoint
		}
		rec, free = w.rec, true
	}
	return u.refreshWith(ctx, rec, false)
}

// watched is what await saw.
type watched struct {
	rec    *tokenstore.Record // the last revision; nil when the record is gone
	token  string             // a fresh access token the lease holder wrote back
	failed bool               // the holder released the lease with no token: its refresh failed
}

// await watches the user's record while another instance holds the refresh
// lease. It returns when an access token other than stale is written back,
// when the record is gone or can no longer be used, when the lease is
// released, and when it runs out (for the caller to take it over).
func (u *userTokens) await(ctx context.Context, sub, stale string) (watched, error) {
	a := u.a
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		w     watched
		seen  bool // a live lease was seen
		timer *time.Timer
	)
	err := a.store.Watch(ctx, sub, func(cur *tokenstore.Record) bool {
		w.rec = cur
		if !cur.Usable() {
			return false
		}
		if tok, ok := u.stored(cur, stale); ok {
			w.token = tok
			return false
		}
		now := a.now()
		if !cur.Leased(now) {
			// Released, rather than run out: the holder's refresh failed.
			w.failed = seen && cur.RefreshLease.Until.IsZero()
			return false
		}
		seen = true
		if timer != nil {
			timer.Stop()
		}
		// A little past the end, so that a holder's write-back at the last
		// moment is seen first.
		timer = time.AfterFunc(cur.RefreshLease.Until.Sub(now)+a.lease/20, func() { cancel(errLeaseExpired) })
		return true
	})
	if timer != nil {
		timer.Stop()
	}
	if errors.Is(context.Cause(ctx), errLeaseExpired) {
		return w, nil
	}
	return w, err
}
