package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/config"
)

// Disconnect (POST) revokes the user's refresh token at Google, deletes the
// stored record and clears the session. It refuses cross-site requests, and
// is idempotent: disconnecting twice is not an error. When Google's
// revocation fails the record is deleted all the same, and the answer says
// so.
func (a *App) Disconnect(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, "POST")
		return
	}
	if err := a.crossOrigin.Check(r); err != nil {
		writeJSON(w, http.StatusForbidden, apiError{Code: "forbidden", Description: "cross-site request refused"})
		return
	}
	_, rs, ok := a.secretsOrFail(w, r)
	if !ok {
		return
	}
	rec, _, ok := a.userRecord(w, r, rs, a.whoForDisconnect)
	switch {
	case !ok:
		return
	case rec == nil: // nothing to disconnect: done already
		a.setCookie(w, a.sessionCookieName(), "", 0)
		writeJSON(w, http.StatusOK, map[string]any{"status": "disconnected", "revoked": false})
		return
	}
	revokeErr := errors.New("no refresh token to revoke")
	if !rec.RefreshToken.IsZero() {
		if rt, _, err := a.openToken(rs, rec.Sub, refreshTokenField, rec.RefreshToken); err == nil {
			revokeErr = a.revoke(r.Context(), rt)
		} else {
			revokeErr = fmt.Errorf("open refresh token: %w", err)
		}
	}
	if err := a.store.Delete(r.Context(), rec.Sub); err != nil {
		a.log.ErrorContext(r.Context(), "disconnect: delete record", "sub", rec.Sub, "err", err)
		unavailable(w, r, "could not delete the stored authorization; try again")
		return
	}
	a.recent.drop(rec.Sub)
	a.setCookie(w, a.sessionCookieName(), "", 0)
	body := map[string]any{"status": "disconnected", "revoked": revokeErr == nil}
	if revokeErr != nil {
		a.log.WarnContext(r.Context(), "disconnect: revocation failed", "sub", rec.Sub, "err", revokeErr)
		body["revocation_error"] = "Google's revocation did not succeed; the stored token was deleted. The user can also remove access at https://myaccount.google.com/permissions"
	}
	a.log.InfoContext(r.Context(), "disconnected", "sub", rec.Sub, "revoked", revokeErr == nil)
	writeJSON(w, http.StatusOK, body)
}

// revoke asks Google to revoke the token (and with it the whole grant). A
// token Google already considers revoked counts as revoked.
func (a *App) revoke(ctx context.Context, token string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.cfg.Endpoints.RevokeURL,
		strings.NewReader(url.Values{"token": {token}}.Encode()))
	if err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := a.hc.Do(req)
	if err != nil {
		return fmt.Errorf("revoke: %w", errors.Unwrap(err))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	switch {
	case resp.StatusCode == http.StatusOK:
		return nil
	case resp.StatusCode == http.StatusBadRequest && strings.Contains(string(body), "invalid_token"):
		return nil
	default:
		return fmt.Errorf("revoke: status %d", resp.StatusCode)
	}
}

// whoForDisconnect names the user. In session mode the session cookie
// does. In IAM mode servers call Disconnect, as they call ListMessages
// (both are deployed private): an allowed caller's ID token and user= name
// the user, and a browser session counts for nothing, so that removing a
// caller's invoker binding and allow-list entry cuts it off everywhere.
func (a *App) whoForDisconnect(r *http.Request, rs *rings) (named, error) {
	if a.cfg.ListAuthMode == config.AuthIAM {
		return a.callerUser(r)
	}
	return a.sessionUser(r, rs)
}
