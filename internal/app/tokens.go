package app

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/keyring"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/tokenstore"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/tokenstore/firestorestore"
)

// ExpiryMargin: an access token is used until this long before it expires.
const ExpiryMargin = time.Minute

// RefreshLease is how long an instance holds the lease on a user's record
// while it refreshes the access token: the other instances wait at most this
// long for its write-back before one of them takes the refresh over.
const RefreshLease = 5 * time.Second

// errReauthorize means Google no longer honours the user's refresh token
// (invalid_grant), or a fresh access token was still refused: the user must
// go through Authorize again.
var errReauthorize = errors.New("refresh token no longer valid")

// errTokenEndpoint means the token endpoint failed for another reason
// (network, 5xx): worth a retry later, not a new authorization.
var errTokenEndpoint = errors.New("token endpoint unavailable")

// retryLater is errTokenEndpoint with how long this instance holds the
// user's refreshes back (see refreshBackoff).
type retryLater struct{ after time.Duration }

func (e *retryLater) Error() string {
	return fmt.Sprintf("%v; refreshes held back for %v", errTokenEndpoint, e.after.Round(time.Millisecond))
}

func (e *retryLater) Unwrap() error { return errTokenEndpoint }

// refreshRetryAfter is the Retry-After for a refresh that failed with err.
func refreshRetryAfter(err error) time.Duration {
	if rl, ok := errors.AsType[*retryLater](err); ok {
		return rl.after
	}
	return RetryUnavailable
}

// tokenCache keeps, per instance, the access token this instance last got
// for each user, so that requests that read the store before a refresh was
// written back still reuse it instead of refreshing again.
type tokenCache struct {
	mu sync.Mutex
	m  map[string]*oauth2.Token
}

const tokenCacheMax = 10000

func (c *tokenCache) get(sub string, now time.Time) *oauth2.Token {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t := c.m[sub]; t != nil && now.Add(ExpiryMargin).Before(t.Expiry) {
		return t
	}
	return nil
}

func (c *tokenCache) put(sub string, t *oauth2.Token, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= tokenCacheMax {
		for k, v := range c.m {
			if !now.Before(v.Expiry) {
				delete(c.m, k)
			}
		}
		if c.m == nil || len(c.m) >= tokenCacheMax {
			c.m = make(map[string]*oauth2.Token)
		}
	}
	c.m[sub] = t
}

func (c *tokenCache) drop(sub string) {
	c.mu.Lock()
	delete(c.m, sub)
	c.mu.Unlock()
}

// userTokens hands out a user's access token.
//
// An access token is used until ExpiryMargin before it expires: the one in
// the user's record, else the one this instance last got (tokenCache).
// Past that, the token is refreshed, once per user for the whole fleet:
//
//   - Within an instance, concurrent requests share one refresh
//     (singleflight), and only that one touches the store.
//   - Across instances, the refreshing instance first takes a short lease
//     (RefreshLease) on the user's record with one conditional write on the
//     version it read, so only one of the instances that read it wins. It
//     calls Google, then writes the access token back and ends the lease in
//     one conditional write. The others watch the record (a Firestore
//     snapshot listener) and use the token written back. If the lease runs
//     out with no write-back (its holder died or stalled), one watcher takes
//     it over, by the same conditional write. If the store fails, the
//     instance refreshes without the lease: correctness before
//     deduplication.
//   - After a failure other than invalid_grant, the user's requests on the
//     instance get 503 at once, without calling Google, for a window that
//     grows while the failures continue (refreshBackoff). A holder whose
//     call failed releases the lease, and its watchers answer 503 too.
//
// Store operations per refresh, beyond each request's read of the record:
// the holder makes 2 writes (the lease, and the write-back that ends it)
// where it made 1 before the lease; one more (releasing the lease) if the
// refresh fails. An instance that waits makes 1 Watch (one Listen call,
// two document reads: the record leased, then written back), plus one
// conditional write that fails when it tried for the lease after another
// instance took it. Taking over an expired lease costs what holding it
// costs.
type userTokens struct {
	a   *App
	oc  *oauth2.Config
	rs  *rings
	rec *tokenstore.Record
}

// current returns a usable access token without a refresh if it can.
func (u *userTokens) current(ctx context.Context) (string, error) {
	if tok, ok := u.stored(u.rec, ""); ok {
		return tok, nil
	}
	if t := u.a.recent.get(u.rec.Sub, u.a.now()); t != nil {
		return t.AccessToken, nil
	}
	return u.refresh(ctx, "")
}

// stored returns the access token rec holds, if it is good for more than
// ExpiryMargin and is not stale.
func (u *userTokens) stored(rec *tokenstore.Record, stale string) (string, bool) {
	if rec.AccessToken.IsZero() || !u.a.now().Add(ExpiryMargin).Before(rec.AccessTokenExpiry) {
		return "", false
	}
	b, err := u.rs.token.Open(rec.AccessToken, []byte(rec.Sub))
	if err != nil || string(b) == stale {
		return "", false
	}
	return string(b), true
}

// refresh gets a new access token. stale is the token Gmail just refused,
// if any: a token another request already got in its place is reused.
// Concurrent refreshes for one user share one call to Google.
func (u *userTokens) refresh(ctx context.Context, stale string) (string, error) {
	a, sub := u.a, u.rec.Sub
	if wait := a.backoff.wait(sub, a.now()); wait > 0 {
		return "", &retryLater{wait}
	}
	v, err, _ := a.refreshes.Do(sub, func() (any, error) {
		if t := a.recent.get(sub, a.now()); t != nil && t.AccessToken != stale {
			return t.AccessToken, nil
		}
		// The refresh must not fail because the first of the waiting
		// requests went away.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.refreshBudget())
		defer cancel()
		tok, err := u.once(ctx, stale)
		switch {
		case err == nil:
			a.backoff.reset(sub)
		case errors.Is(err, errTokenEndpoint):
			return nil, &retryLater{a.backoff.fail(sub, a.now())}
		case err != nil:
			return nil, err
		}
		return tok, nil
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

// refreshBudget bounds one refresh, waits included: a lease waited out and
// a little past it, a call to Google (at most 0.8 of a lease), and up to four
// store calls (taking the lease or failing to, the first snapshot of the
// watch, taking it over, writing back). Deployed: 2 × 5 s + 4 × 3 s.
func (a *App) refreshBudget() time.Duration {
	return 2*a.lease + 4*cmp.Or(a.cfg.StoreTimeout, firestorestore.DefaultTimeout)
}

// refreshWith calls the token endpoint with rec's refresh token and writes
// the access token back on rec's version. leased says that this instance
// holds rec's lease.
func (u *userTokens) refreshWith(ctx context.Context, rec *tokenstore.Record, leased bool) (string, error) {
	a, sub := u.a, rec.Sub
	rt, err := u.rs.token.Open(rec.RefreshToken, []byte(sub))
	if err != nil {
		// Sealed under a key no longer in the key set: unusable for good.
		a.log.WarnContext(ctx, "stored refresh token does not open; marking it dead", "sub", sub, "err", err)
		a.markDead(ctx, rec)
		return "", errReauthorize
	}
	// Google answers within the lease, with time left for the write-back.
	callCtx, cancel := context.WithTimeout(ctx, a.lease*4/5)
	defer cancel()
	tok, err := u.oc.TokenSource(a.oauthContext(callCtx), &oauth2.Token{RefreshToken: string(rt)}).Token()
	if err != nil {
		re, answered := errors.AsType[*oauth2.RetrieveError](err)
		if answered && re.ErrorCode == "invalid_grant" {
			a.recent.drop(sub)
			a.markDead(ctx, rec)
			return "", errReauthorize
		}
		if answered {
			a.log.WarnContext(ctx, "refresh failed", "sub", sub, "status", re.Response.StatusCode, "oauth_error", re.ErrorCode)
		} else {
			a.log.WarnContext(ctx, "refresh failed", "sub", sub, "err", err)
		}
		if leased && callCtx.Err() == nil {
			// Google answered, or the connection failed at once: the
			// waiting instances answer now rather than at the lease's end.
			// A call that ran out of time leaves the lease to run out, and
			// one of them tries again.
			if _, err := a.store.SetLease(ctx, sub, rec.Version, tokenstore.Lease{}); err != nil {
				a.log.DebugContext(ctx, "refresh lease not released", "sub", sub, "err", err)
			}
		}
		return "", errTokenEndpoint
	}
	now := a.now()
	tok.Expiry = a.expiry(tok)
	a.recent.put(sub, tok, now)
	a.saveAccess(ctx, u.rs, rec, tok, string(rt), now)
	return tok.AccessToken, nil
}

// saveAccess writes the refreshed access token back, sealed, in one
// conditional write on rec's version, which also ends the refresh lease, so
// other instances reuse it. The refresh token goes with it when the token
// endpoint rotated it (RFC 6749 section 6: the one used may be dead
// already), or sealed again when it was sealed under a retired key. A
// conflict means the record changed meanwhile (a new grant, a disconnect, a
// lease taken over): the write is then dropped, which is safe, except that
// a rotated refresh token is still kept if the record holds the one used.
func (a *App) saveAccess(ctx context.Context, rs *rings, rec *tokenstore.Record, tok *oauth2.Token, used string, now time.Time) {
	aad := []byte(rec.Sub)
	upd := tokenstore.AccessUpdate{AccessToken: rs.token.Seal([]byte(tok.AccessToken), aad), AccessTokenExpiry: tok.Expiry, RefreshedAt: now}
	rotated := tok.RefreshToken != "" && tok.RefreshToken != used
	switch {
	case rotated:
		sealed := rs.token.Seal([]byte(tok.RefreshToken), aad)
		upd.RefreshToken, upd.RefreshTokenIssuedAt = &sealed, now
	case rs.token.NeedsReseal(rec.RefreshToken):
		resealed := rs.token.Seal([]byte(used), aad)
		upd.RefreshToken = &resealed
	}
	err := a.store.SaveAccess(ctx, rec.Sub, rec.Version, upd)
	if errors.Is(err, tokenstore.ErrConflict) && rotated {
		_, err = a.store.Update(ctx, rec.Sub, func(cur *tokenstore.Record) (*tokenstore.Record, error) {
			if !sameRefreshToken(cur, rec) {
				return nil, nil
			}
			next := upd.Apply(*cur)
			return &next, nil
		})
	}
	switch {
	case errors.Is(err, tokenstore.ErrConflict):
		a.log.DebugContext(ctx, "access token write-back skipped: record changed", "sub", rec.Sub)
	case err != nil:
		a.log.WarnContext(ctx, "access token write-back failed", "sub", rec.Sub, "err", err)
	}
}

// sameRefreshToken reports whether cur still holds the refresh token of
// used.
func sameRefreshToken(cur, used *tokenstore.Record) bool {
	return cur != nil && cur.RefreshToken.KeyID == used.RefreshToken.KeyID &&
		bytes.Equal(cur.RefreshToken.Ciphertext, used.RefreshToken.Ciphertext)
}

// markDead records that Google refused the refresh token, unless the record
// already holds another one (a newer grant must not be killed by a request
// that started with the old token).
func (a *App) markDead(ctx context.Context, used *tokenstore.Record) {
	_, err := a.store.Update(ctx, used.Sub, func(cur *tokenstore.Record) (*tokenstore.Record, error) {
		if !sameRefreshToken(cur, used) || cur.Status == tokenstore.StatusDead {
			return nil, nil
		}
		next := *cur
		next.Status, next.UpdatedAt = tokenstore.StatusDead, a.now()
		next.AccessToken, next.AccessTokenExpiry = keyring.Sealed{}, time.Time{}
		next.RefreshLease = tokenstore.Lease{} // the watchers see the record dead
		return &next, nil
	})
	if err != nil {
		a.log.WarnContext(ctx, "mark token dead failed", "sub", used.Sub, "err", err)
	}
}

// transport authorizes Gmail requests as the user. On a 401 it refreshes
// once and retries once; a second 401 is Gmail's final word.
type transport struct {
	base   http.RoundTripper
	tokens *userTokens
	mu     sync.Mutex
	token  string
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.mu.Lock()
	tok := t.token
	t.mu.Unlock()
	if tok == "" {
		var err error
		if tok, err = t.tokens.current(req.Context()); err != nil {
			return nil, err
		}
		t.set(tok)
	}
	resp, err := t.base.RoundTrip(withBearer(req, tok))
	if err != nil || resp.StatusCode != http.StatusUnauthorized || req.Body != nil && req.GetBody == nil {
		return resp, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	fresh, err := t.replace(req.Context(), tok)
	if err != nil {
		return nil, err
	}
	retry := withBearer(req, fresh)
	if req.GetBody != nil {
		if retry.Body, err = req.GetBody(); err != nil {
			return nil, err
		}
	}
	return t.base.RoundTrip(retry)
}

// RefreshToken replaces the token that Gmail refused in the parts of a
// batch request (messages.TokenRefresher).
func (t *transport) RefreshToken(ctx context.Context) error {
	t.mu.Lock()
	tok := t.token
	t.mu.Unlock()
	_, err := t.replace(ctx, tok)
	return err
}

// replace refreshes the refused token stale and sends the new one from now on.
func (t *transport) replace(ctx context.Context, stale string) (string, error) {
	fresh, err := t.tokens.refresh(ctx, stale)
	if err != nil {
		return "", err
	}
	t.set(fresh)
	return fresh, nil
}

func (t *transport) set(tok string) {
	t.mu.Lock()
	t.token = tok
	t.mu.Unlock()
}

func withBearer(req *http.Request, tok string) *http.Request {
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", "Bearer "+tok)
	return r
}

// expiry is when tok expires by this instance's clock: now plus Google's
// expires_in (golang.org/x/oauth2 counts from its own clock).
func (a *App) expiry(tok *oauth2.Token) time.Time {
	if tok.ExpiresIn > 0 {
		return a.now().Add(time.Duration(tok.ExpiresIn) * time.Second)
	}
	return tok.Expiry
}
