package app

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/cookies"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/identity"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/keyring"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/tokenstore"
)

// Callback receives Google's answer: the old guide's get_credentials, made
// safe. In order it checks Google's error, the flow cookie against state
// (CSRF), exchanges the code with the PKCE verifier, learns the identity
// from the id_token, checks the Gmail scope was granted, keeps the refresh
// token (or falls back to the stored one, or asks for consent again), and
// finally sets the session cookie.
func (a *App) Callback(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, "GET")
		return
	}
	ctx := r.Context()
	q := r.URL.Query()
	state := q.Get("state")
	if len(q) == 0 {
		a.connected(w, r)
		return
	}

	// 1. Google's own error, e.g. the user clicked Deny.
	if e := q.Get("error"); e != "" {
		a.clearFlow(w, state)
		status, code, msg := http.StatusBadRequest, "authorization_error", "Google refused the authorization."
		if e == "access_denied" {
			status, code, msg = http.StatusForbidden, "access_denied", "You did not allow access to Gmail."
		}
		a.log.InfoContext(ctx, "callback: Google returned an error", "google_error", truncate(e, 64))
		fail(w, r, status, apiError{Code: code, Description: msg, AuthorizationURL: a.authorizeURL("", "", false)})
		return
	}

	oc, rs, ok := a.secretsOrFail(w, r)
	if !ok {
		return
	}
	// 2. The CSRF check: the flow cookie must exist, be authentic and
	// unexpired, and name this state.
	f, err := a.readFlow(r, rs, state)
	a.clearFlow(w, state)
	if err != nil {
		fail(w, r, http.StatusBadRequest, apiError{Code: "invalid_state",
			Description:      "The sign-in request is missing, expired or was not started here. Please start again.",
			AuthorizationURL: a.authorizeURL("", "", false)})
		return
	}
	code := q.Get("code")
	if code == "" || len(code) > 2048 {
		fail(w, r, http.StatusBadRequest, apiError{Code: "invalid_request", Description: "missing code"})
		return
	}

	// 3. Exchange the code (one round trip), proving possession of the verifier.
	tok, err := oc.Exchange(a.oauthContext(ctx), code, oauth2.VerifierOption(f.Verifier))
	if err != nil {
		a.exchangeFailed(w, r, f, err)
		return
	}
	issued := a.now()
	tok.Expiry = a.expiry(tok)

	// 4. Identity, from the id_token; userinfo only if none came.
	id, err := a.identify(ctx, oc, tok, f.Nonce)
	if err != nil {
		a.log.WarnContext(ctx, "callback: no identity", "err", err)
		status, msg := http.StatusBadGateway, "Google did not tell us which account signed in."
		if errors.Is(err, identity.ErrInvalid) {
			status, msg = http.StatusBadRequest, "Google's answer did not belong to this sign-in."
		}
		fail(w, r, status, apiError{Code: "no_identity", Description: msg, AuthorizationURL: a.authorizeURL(f.LoginHint, f.ReturnTo, false)})
		return
	}

	// 5. With granular consent the user may have unticked Gmail.
	granted := grantedScopes(tok, oc.Scopes)
	if !slices.Contains(granted, a.cfg.GmailScope) {
		a.log.InfoContext(ctx, "callback: Gmail scope not granted", "sub", id.Sub)
		fail(w, r, http.StatusForbidden, apiError{Code: "gmail_not_granted",
			Description:      "This app needs read access to Gmail. Please sign in again and leave the Gmail box ticked on Google's consent screen.",
			AuthorizationURL: a.authorizeURL(id.Email, f.ReturnTo, true)})
		return
	}

	// 6. Keep the refresh token, or fall back to the stored one.
	rec, err := a.keepGrant(ctx, rs, id, granted, tok, issued)
	if err != nil {
		a.log.ErrorContext(ctx, "callback: store grant", "sub", id.Sub, "err", err)
		unavailable(w, r, "Could not save the authorization; please try again.")
		return
	}
	if !rec.Usable() {
		if f.Consent {
			// Consent was forced and still no refresh token: do not loop.
			fail(w, r, http.StatusBadGateway, apiError{Code: "no_refresh_token", Description: "Google did not grant offline access.",
				AuthorizationURL: a.authorizeURL(id.Email, f.ReturnTo, true)})
			return
		}
		target := a.authorizeURL(id.Email, f.ReturnTo, true)
		if wantsJSON(r) {
			writeJSON(w, http.StatusUnauthorized, apiError{Code: "consent_required", Description: "no refresh token; authorize again with consent", AuthorizationURL: target})
			return
		}
		http.Redirect(w, r, target, http.StatusFound)
		return
	}

	// 7. The session, then where the user was going.
	value, err := cookies.Encode(rs.cookie, a.sessionCookieName(), session{Sub: id.Sub, Email: id.Email}, a.now().Add(a.cfg.SessionTTL))
	if err != nil {
		a.log.ErrorContext(ctx, "seal session cookie", "err", err)
		writeJSON(w, http.StatusInternalServerError, apiError{Code: "internal_error"})
		return
	}
	a.setCookie(w, a.sessionCookieName(), value, a.cfg.SessionTTL)
	a.log.InfoContext(ctx, "callback: authorized", "sub", id.Sub, "refresh_token_issued", tok.RefreshToken != "")
	switch {
	case wantsJSON(r):
		writeJSON(w, http.StatusOK, map[string]any{"status": "authorized", "sub": id.Sub, "email": id.Email, "scopes": granted})
	case f.ReturnTo != "":
		http.Redirect(w, r, f.ReturnTo, http.StatusFound)
	default:
		// To a clean URL, so that reloading the page does not replay the
		// one-time code.
		http.Redirect(w, r, a.callbackPath(), http.StatusFound)
	}
}

// connected answers a bare Callback (no answer from Google, only the
// session): the success page for a browser at the end of an authorization,
// and for a JSON client {"status":"connected","email":...}, so that a page
// can show who is connected without listing mail. Without a session a JSON
// client gets 401 authorization_required with the authorization_url.
func (a *App) connected(w http.ResponseWriter, r *http.Request) {
	_, rs, ok := a.secretsOrFail(w, r)
	if !ok {
		return
	}
	s, ok := a.readSession(r, rs)
	switch {
	case !ok && wantsJSON(r):
		writeJSON(w, http.StatusUnauthorized, apiError{Code: "authorization_required", Description: "no session; send the user to authorization_url",
			AuthorizationURL: a.authorizeURL("", "", false)})
	case !ok:
		fail(w, r, http.StatusBadRequest, apiError{Code: "invalid_request", Description: "Callback expects Google's answer; start at Authorize.",
			AuthorizationURL: a.authorizeURL("", "", false)})
	case wantsJSON(r):
		writeJSON(w, http.StatusOK, map[string]string{"status": "connected", "email": s.Email})
	default:
		writePage(w, http.StatusOK, page{Title: titles["authorized"],
			Message: "Gmail is connected for " + s.Email + ".", Link: a.cfg.ListMessagesURL, LinkText: "List your messages"})
	}
}

// callbackPath is the public path of Callback.
func (a *App) callbackPath() string {
	u, err := url.Parse(a.cfg.RedirectURL)
	if err != nil || u.EscapedPath() == "" {
		return "/"
	}
	return u.EscapedPath()
}

// exchangeFailed handles a failed code exchange: a used or expired code
// (invalid_grant) sends the user back to Authorize, as the old guide's
// CodeExchangeException did; anything else is Google or configuration
// failing, which another authorization would not cure.
func (a *App) exchangeFailed(w http.ResponseWriter, r *http.Request, f flowState, err error) {
	ctx := r.Context()
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.ErrorCode == "invalid_grant" {
		a.log.InfoContext(ctx, "callback: code exchange refused", "oauth_error", re.ErrorCode)
		target := a.authorizeURL(f.LoginHint, f.ReturnTo, f.Consent)
		if wantsJSON(r) {
			writeJSON(w, http.StatusBadRequest, apiError{Code: "code_exchange_failed", Description: "the code was used or expired; authorize again", AuthorizationURL: target})
			return
		}
		http.Redirect(w, r, target, http.StatusFound)
		return
	}
	if errors.As(err, &re) {
		a.log.ErrorContext(ctx, "callback: code exchange failed", "status", re.Response.StatusCode, "oauth_error", re.ErrorCode)
	} else {
		a.log.ErrorContext(ctx, "callback: code exchange failed", "err", errors.Unwrap(err))
	}
	retryAfter(w, RetryUnavailable)
	fail(w, r, http.StatusBadGateway, apiError{Code: "upstream_unavailable", Description: "Google did not complete the sign-in; please try again.",
		AuthorizationURL: a.authorizeURL(f.LoginHint, f.ReturnTo, f.Consent)})
}

func (a *App) identify(ctx context.Context, oc *oauth2.Config, tok *oauth2.Token, nonce string) (identity.Identity, error) {
	if raw, _ := tok.Extra("id_token").(string); raw != "" {
		return identity.FromIDToken(raw, oc.ClientID, nonce, a.now())
	}
	return identity.FromUserinfo(ctx, a.hc, a.cfg.Endpoints.UserinfoURL, tok.AccessToken)
}

// grantedScopes are the scopes the token response says were granted. A
// response without scope granted the requested ones (RFC 6749 section 5.1).
func grantedScopes(tok *oauth2.Token, requested []string) []string {
	if s, _ := tok.Extra("scope").(string); s != "" {
		return strings.Fields(s)
	}
	return requested
}

// keepGrant stores the grant in one transaction. The merge rules
// (tokenstore.Grant.Apply) never replace a refresh token with an empty or
// older one; tokens sealed under a retired key are sealed again.
func (a *App) keepGrant(ctx context.Context, rs *rings, id identity.Identity, scopes []string, tok *oauth2.Token, issued time.Time) (*tokenstore.Record, error) {
	aad := []byte(id.Sub)
	g := tokenstore.Grant{Sub: id.Sub, Email: id.Email, Scopes: scopes, IssuedAt: issued,
		AccessToken: rs.token.Seal([]byte(tok.AccessToken), aad), AccessTokenExpiry: tok.Expiry}
	if tok.RefreshToken != "" {
		g.RefreshToken = rs.token.Seal([]byte(tok.RefreshToken), aad)
	}
	return a.store.Update(ctx, id.Sub, func(cur *tokenstore.Record) (*tokenstore.Record, error) {
		now := a.now()
		if cur.Usable() {
			if _, err := rs.token.Open(cur.RefreshToken, aad); err != nil {
				// Sealed under a key no longer in the key set: as good as
				// no refresh token. Recorded as dead unless this grant
				// brings a new one, so the user is asked for consent.
				dead := *cur
				dead.Status, dead.AccessToken, dead.AccessTokenExpiry, dead.UpdatedAt = tokenstore.StatusDead, keyring.Sealed{}, time.Time{}, now
				if next := g.Apply(&dead, now); next != nil {
					return next, nil
				}
				return &dead, nil
			}
		}
		next := g.Apply(cur, now)
		if next == nil || !rs.token.NeedsReseal(next.RefreshToken) {
			return next, nil
		}
		plain, err := rs.token.Open(next.RefreshToken, aad)
		if err != nil {
			return nil, err
		}
		next.RefreshToken = rs.token.Seal(plain, aad)
		return next, nil
	})
}

func (a *App) clearFlow(w http.ResponseWriter, state string) {
	if state != "" && len(state) <= 128 {
		a.setCookie(w, a.flowCookieName(state), "", 0)
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
