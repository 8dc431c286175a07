package app

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/config"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/identity"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/tokenstore"
)

// callerError is a refusal of the caller itself (not of the user's Gmail
// authorization): wrong or missing credentials.
type callerError struct {
	status int
	e      apiError
}

func (c *callerError) Error() string { return c.e.Description }

// errNoSession: no valid session cookie; the user should authorize.
var errNoSession = errors.New("no session")

// whoFor names the user a request is about, as the deployment's mode says:
// in session mode the session cookie, and nothing else, names them; in IAM
// mode an allowed caller, proven by a Google-signed ID token, names them
// with user= (a sub or an email).
func (a *App) whoFor(r *http.Request, rs *rings) (sub, email string, err error) {
	user := r.URL.Query().Get("user")
	if a.cfg.ListAuthMode != config.AuthIAM {
		return a.sessionUser(r, rs)
	}
	if err := a.checkCaller(r); err != nil {
		return "", "", err
	}
	if user == "" || len(user) > 320 {
		return "", "", &callerError{http.StatusBadRequest, apiError{Code: "invalid_request", Description: "user= (a Google account id or email) is required"}}
	}
	if strings.Contains(user, "@") {
		return "", user, nil
	}
	return user, "", nil
}

// checkCaller verifies the bearer ID token (signature, expiry, audience =
// this function's URL, by google.golang.org/api/idtoken) and that its
// service account is on the allow-list. Cloud Run checks the token too when
// the function is private; this is defence in depth if it is ever deployed
// public by mistake.
func (a *App) checkCaller(r *http.Request) error {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || raw == "" {
		return &callerError{http.StatusUnauthorized, apiError{Code: "unauthenticated", Description: "an ID token is required: Authorization: Bearer <token>"}}
	}
	p, err := a.idTokens.Validate(r.Context(), raw, a.cfg.IAMAudience)
	if err != nil {
		a.log.InfoContext(r.Context(), "caller ID token rejected", "err", err)
		return &callerError{http.StatusUnauthorized, apiError{Code: "unauthenticated", Description: "the ID token is not valid for this function"}}
	}
	// idtoken checks the signature against Google's keys, the audience and
	// the expiry, but not the issuer.
	if !slices.Contains(identity.Issuers, p.Issuer) {
		a.log.InfoContext(r.Context(), "caller ID token rejected", "err", "issuer is not Google", "iss", truncate(p.Issuer, 64))
		return &callerError{http.StatusUnauthorized, apiError{Code: "unauthenticated", Description: "the ID token is not valid for this function"}}
	}
	email, _ := p.Claims["email"].(string)
	if !identity.EmailVerified(p.Claims["email_verified"]) || !slices.Contains(a.cfg.IAMAllowedCallers, email) {
		a.log.WarnContext(r.Context(), "caller not allowed", "caller", email)
		return &callerError{http.StatusForbidden, apiError{Code: "forbidden", Description: "this caller is not allowed"}}
	}
	return nil
}

// lookup reads the user's record by sub, or by email in IAM mode.
func (a *App) lookup(r *http.Request, sub, email string) (*tokenstore.Record, error) {
	if sub != "" {
		return a.store.Get(r.Context(), sub)
	}
	return a.store.FindByEmail(r.Context(), email)
}

// sessionUser is the user named by the session cookie; a user= parameter
// is refused, never trusted.
func (a *App) sessionUser(r *http.Request, rs *rings) (sub, email string, err error) {
	if r.URL.Query().Has("user") {
		return "", "", &callerError{http.StatusBadRequest, apiError{Code: "invalid_request",
			Description: "user= is not accepted here: the session names the user"}}
	}
	s, ok := a.readSession(r, rs)
	if !ok {
		return "", "", errNoSession
	}
	return s.Sub, s.Email, nil
}

// userRecord names the user with who and reads their record. It answers
// the request itself when the caller is refused or the store is down, and
// then returns ok false. A user with no session or no stored record comes
// back as a nil record (with the email, when known), for the function to
// decide.
func (a *App) userRecord(w http.ResponseWriter, r *http.Request, rs *rings,
	who func(*http.Request, *rings) (sub, email string, err error)) (rec *tokenstore.Record, email string, ok bool) {
	sub, email, err := who(r, rs)
	var ce *callerError
	switch {
	case errors.As(err, &ce):
		writeJSON(w, ce.status, ce.e)
		return nil, "", false
	case errors.Is(err, errNoSession):
		return nil, "", true
	}
	rec, err = a.lookup(r, sub, email)
	switch {
	case errors.Is(err, tokenstore.ErrNotFound):
		return nil, email, true
	case err != nil:
		a.log.ErrorContext(r.Context(), "read token record", "err", err)
		unavailable(w, r, "token store unavailable; try again shortly")
		return nil, "", false
	}
	return rec, rec.Email, true
}
