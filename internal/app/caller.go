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
// authorization): wrong or missing credentials, or a user= that names no
// one user.
type callerError struct {
	status int
	e      apiError
}

func (c *callerError) Error() string { return c.e.Description }

// errNoSession: no valid session cookie; the user should authorize.
var errNoSession = errors.New("no session")

// named is whom a request is about: a sub or an email, and the session
// cookie that named them, when one did.
type named struct {
	sub, email string
	session    *session
}

// whoFor names the user a ListMessages request is about, as the
// deployment's mode says: in session mode the session cookie, and nothing
// else, names them; in IAM mode an allowed caller, proven by a
// Google-signed ID token, names them with user= (a sub or an email).
func (a *App) whoFor(r *http.Request, rs *rings) (named, error) {
	if a.cfg.ListAuthMode != config.AuthIAM {
		return a.sessionUser(r, rs)
	}
	return a.callerUser(r)
}

// callerUser is the user an allowed IAM caller names with user=, once its
// ID token checks out. A session cookie counts for nothing.
func (a *App) callerUser(r *http.Request) (named, error) {
	if err := a.checkCaller(r); err != nil {
		return named{}, err
	}
	user := r.URL.Query().Get("user")
	if user == "" || len(user) > 320 {
		return named{}, &callerError{http.StatusBadRequest, apiError{Code: "invalid_request", Description: "user= (a Google account id or email) is required"}}
	}
	if strings.Contains(user, "@") {
		return named{email: user}, nil
	}
	return named{sub: user}, nil
}

// checkCaller verifies the bearer ID token (signature, expiry, audience =
// IAM_AUDIENCE, the URL of the function called, by
// google.golang.org/api/idtoken) and that its service account is on the
// allow-list. Cloud Run checks the token too when
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

// errAmbiguous: more than one connected account has the email asked for.
var errAmbiguous = &callerError{http.StatusConflict, apiError{Code: "ambiguous_user",
	Description: "more than one connected Google account has this email; name the user by account id: user=<sub>"}}

// lookup reads the user's record by sub, or by email. A record found by
// email counts only when its email binding checks out under the key set;
// others are left out, and logged. More than one is refused, never guessed.
func (a *App) lookup(r *http.Request, rs *rings, n named) (*tokenstore.Record, error) {
	ctx := r.Context()
	if n.sub != "" {
		return a.store.Get(ctx, n.sub)
	}
	recs, err := a.store.FindByEmail(ctx, n.email)
	if err != nil {
		return nil, err
	}
	var bound []*tokenstore.Record
	for _, rec := range recs {
		switch err := a.checkEmailBinding(rs, rec); {
		case errors.Is(err, errUnbound):
			a.log.InfoContext(ctx, "token record stored before email bindings: found by sub only until the user connects again", "sub", rec.Sub)
		case err != nil:
			a.log.WarnContext(ctx, "token record's email binding does not check out: left out of the lookup", "sub", rec.Sub, "binding_key_id", rec.EmailBinding.KeyID, "err", err)
		default:
			bound = append(bound, rec)
		}
	}
	switch len(bound) {
	case 0:
		return nil, tokenstore.ErrNotFound
	case 1:
		return bound[0], nil
	}
	a.log.InfoContext(ctx, "user= names more than one account", "accounts", len(bound))
	return nil, errAmbiguous
}

// sessionUser is the user named by the session cookie; a user= parameter
// is refused, never trusted.
func (a *App) sessionUser(r *http.Request, rs *rings) (named, error) {
	if r.URL.Query().Has("user") {
		return named{}, &callerError{http.StatusBadRequest, apiError{Code: "invalid_request",
			Description: "user= is not accepted here: the session names the user"}}
	}
	s, ok := a.readSession(r, rs)
	if !ok {
		return named{}, errNoSession
	}
	return named{sub: s.Sub, email: s.Email, session: &s}, nil
}

// userRecord names the user with who and reads their record. It answers
// the request itself when the caller is refused or the store is down, and
// then returns ok false. A user with no session, a session the record no
// longer accepts, or no stored record comes back as a nil record (with the
// email, when known), for the function to decide.
func (a *App) userRecord(w http.ResponseWriter, r *http.Request, rs *rings,
	who func(*http.Request, *rings) (named, error)) (rec *tokenstore.Record, email string, ok bool) {
	n, err := who(r, rs)
	if errors.Is(err, errNoSession) {
		return nil, "", true
	}
	if err == nil {
		rec, err = a.lookup(r, rs, n)
	}
	var ce *callerError
	switch {
	case errors.As(err, &ce):
		writeJSON(w, ce.status, ce.e)
		return nil, "", false
	case errors.Is(err, tokenstore.ErrNotFound):
		return nil, n.email, true
	case err != nil:
		a.log.ErrorContext(r.Context(), "read token record", "err", err)
		unavailable(w, r, "token store unavailable; try again shortly")
		return nil, "", false
	}
	if n.session != nil && !n.session.validFor(rec) {
		a.log.InfoContext(r.Context(), "session issued before the record's sessions_valid_after: refused", "sub", rec.Sub)
		return nil, "", true
	}
	return rec, rec.Email, true
}
