package app

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/keyring"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/tokenstore"
)

// ExpiryMargin: an access token is used until this long before it expires.
const ExpiryMargin = time.Minute

// errReauthorize means Google no longer honours the user's refresh token
// (invalid_grant), or a fresh access token was still refused: the user must
// go through Authorize again.
var errReauthorize = errors.New("refresh token no longer valid")

// errTokenEndpoint means the token endpoint failed for another reason
// (network, 5xx): worth a retry later, not a new authorization.
var errTokenEndpoint = errors.New("token endpoint unavailable")

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

// userTokens hands out a user's access token: the stored one while it is
// fresh, else one refresh per user per instance at a time.
type userTokens struct {
	a   *App
	oc  *oauth2.Config
	rs  *rings
	rec *tokenstore.Record
}

// current returns a usable access token without a refresh if it can.
func (u *userTokens) current(ctx context.Context) (string, error) {
	now := u.a.now()
	if !u.rec.AccessToken.IsZero() && now.Add(ExpiryMargin).Before(u.rec.AccessTokenExpiry) {
		if at, _, err := u.a.openToken(u.rs, u.rec.Sub, accessTokenField, u.rec.AccessToken); err == nil {
			return at, nil
		}
	}
	if t := u.a.recent.get(u.rec.Sub, now); t != nil {
		return t.AccessToken, nil
	}
	return u.refresh(ctx, "")
}

// refresh gets a new access token. stale is the token Gmail just refused,
// if any: a token another request already got in its place is reused.
// Concurrent refreshes for one user share one call to Google.
func (u *userTokens) refresh(ctx context.Context, stale string) (string, error) {
	a, sub := u.a, u.rec.Sub
	v, err, _ := a.refreshes.Do(sub, func() (any, error) {
		if t := a.recent.get(sub, a.now()); t != nil && t.AccessToken != stale {
			return t.AccessToken, nil
		}
		// The refresh must not fail because the first of the waiting
		// requests went away.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		rt, _, err := a.openToken(u.rs, sub, refreshTokenField, u.rec.RefreshToken)
		if err != nil {
			// Sealed under a key no longer in the key set: unusable for good.
			a.log.WarnContext(ctx, "stored refresh token does not open; marking it dead", "sub", sub, "err", err)
			a.markDead(ctx, u.rec)
			return nil, errReauthorize
		}
		tok, err := u.oc.TokenSource(a.oauthContext(ctx), &oauth2.Token{RefreshToken: rt}).Token()
		if err != nil {
			var re *oauth2.RetrieveError
			if errors.As(err, &re) && re.ErrorCode == "invalid_grant" {
				a.recent.drop(sub)
				a.markDead(ctx, u.rec)
				return nil, errReauthorize
			}
			if errors.As(err, &re) {
				a.log.WarnContext(ctx, "refresh failed", "sub", sub, "status", re.Response.StatusCode, "oauth_error", re.ErrorCode)
			} else {
				a.log.WarnContext(ctx, "refresh failed", "sub", sub, "err", err)
			}
			return nil, errTokenEndpoint
		}
		now := a.now()
		tok.Expiry = a.expiry(tok)
		a.recent.put(sub, tok, now)
		a.saveAccess(ctx, u.rs, u.rec, tok, now)
		return tok.AccessToken, nil
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

// saveAccess writes the refreshed access token back, sealed, in one
// conditional write so other instances reuse it. A refresh token or email
// binding made under a key that is no longer the primary, or a refresh
// token sealed the old way, is made again on the way. A conflict means the
// record changed meanwhile (a new grant, a disconnect): then the write is
// dropped, which is always safe.
func (a *App) saveAccess(ctx context.Context, rs *rings, rec *tokenstore.Record, tok *oauth2.Token, now time.Time) {
	upd := tokenstore.AccessUpdate{AccessToken: a.sealToken(rs, rec.Sub, accessTokenField, tok.AccessToken), AccessTokenExpiry: tok.Expiry, RefreshedAt: now}
	if plain, stale, err := a.openToken(rs, rec.Sub, refreshTokenField, rec.RefreshToken); err == nil && stale {
		resealed := a.sealToken(rs, rec.Sub, refreshTokenField, plain)
		upd.RefreshToken = &resealed
	}
	if rec.EmailBinding.KeyID != rs.email.Primary() && a.checkEmailBinding(rs, rec) == nil {
		rebound := a.bindEmail(rs, rec.Sub, rec.Email)
		upd.EmailBinding = &rebound
	}
	err := a.store.SaveAccess(ctx, rec.Sub, rec.Version, upd)
	switch {
	case errors.Is(err, tokenstore.ErrConflict):
		a.log.DebugContext(ctx, "access token write-back skipped: record changed", "sub", rec.Sub)
	case err != nil:
		a.log.WarnContext(ctx, "access token write-back failed", "sub", rec.Sub, "err", err)
	}
}

// markDead records that Google refused the refresh token, unless the record
// already holds another one (a newer grant must not be killed by a request
// that started with the old token).
func (a *App) markDead(ctx context.Context, used *tokenstore.Record) {
	_, err := a.store.Update(ctx, used.Sub, func(cur *tokenstore.Record) (*tokenstore.Record, error) {
		if cur == nil || cur.RefreshToken.KeyID != used.RefreshToken.KeyID ||
			!bytes.Equal(cur.RefreshToken.Ciphertext, used.RefreshToken.Ciphertext) || cur.Status == tokenstore.StatusDead {
			return nil, nil
		}
		next := *cur
		next.Status, next.UpdatedAt = tokenstore.StatusDead, a.now()
		next.AccessToken, next.AccessTokenExpiry = keyring.Sealed{}, time.Time{}
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
