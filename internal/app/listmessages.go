package app

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/config"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/messages"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/tokenstore"
)

// ListMessages lists the user's Gmail messages with the stored token.
//
// Query: q, labelIds (repeatable), maxResults (1–500; 1–250 with
// format=metadata), pageToken, includeSpamTrash, all=true with limit (list
// every page, up to limit), format=metadata, and in IAM mode user.
// Without a usable authorization it answers 401 authorization_required or
// reauthorization_required with an authorization_url (a page navigation is
// redirected there instead).
func (a *App) ListMessages(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, "GET")
		return
	}
	q, err := parseListQuery(r.URL.Query())
	if err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{Code: "invalid_request", Description: err.Error()})
		return
	}
	oc, rs, ok := a.secretsOrFail(w, r)
	if !ok {
		return
	}
	rec, email, ok := a.userRecord(w, r, rs, a.whoFor)
	switch {
	case !ok:
		return
	case rec == nil:
		a.needAuthorization(w, r, "authorization_required", email, false)
		return
	case !rec.Usable():
		a.needAuthorization(w, r, "reauthorization_required", rec.Email, true)
		return
	}

	// The access token first: a request that cannot have one (the token
	// endpoint failing, a grant refused) spends none of the user's Gmail
	// quota.
	ut := &userTokens{a: a, oc: oc, rs: rs, rec: rec}
	tok, err := ut.current(r.Context())
	if err != nil {
		a.listFailed(w, r, rec, err)
		return
	}
	hc := &http.Client{Transport: &transport{base: a.baseTransport(), tokens: ut, token: tok}}
	result, err := a.mail.List(r.Context(), hc, rec.Sub, q)
	if err != nil {
		a.listFailed(w, r, rec, err)
		return
	}
	writeJSON(w, http.StatusOK, result)
}

func (a *App) baseTransport() http.RoundTripper {
	if a.hc.Transport != nil {
		return a.hc.Transport
	}
	return http.DefaultTransport
}

// listFailed maps a failed listing to its answer.
func (a *App) listFailed(w http.ResponseWriter, r *http.Request, rec *tokenstore.Record, err error) {
	ctx := r.Context()
	var (
		retry *messages.RetryError
		bad   *messages.BadRequestError
	)
	switch {
	case errors.Is(err, errReauthorize):
		a.needAuthorization(w, r, "reauthorization_required", rec.Email, true)
	case errors.Is(err, messages.ErrUnauthorized):
		// A fresh access token was refused too: Google no longer honours this grant.
		a.markDead(ctx, rec)
		a.recent.drop(rec.Sub)
		a.needAuthorization(w, r, "reauthorization_required", rec.Email, true)
	case errors.Is(err, messages.ErrInsufficientScope):
		writeJSON(w, http.StatusForbidden, apiError{Code: "insufficient_scope", Description: "the authorization does not include Gmail access",
			AuthorizationURL: a.authorizeURL(rec.Email, "", true)})
	case errors.As(err, &bad):
		writeJSON(w, http.StatusBadRequest, apiError{Code: "invalid_request", Description: bad.Message})
	case errors.As(err, &retry):
		a.log.WarnContext(ctx, "gmail: giving up after retries", "sub", rec.Sub, "status", retry.Status)
		retryAfter(w, retry.RetryAfter)
		code := "rate_limited"
		if retry.Status != http.StatusTooManyRequests {
			code = "unavailable"
		}
		writeJSON(w, retry.Status, apiError{Code: code, Description: "Gmail is busy; retry after the Retry-After delay"})
	case errors.Is(err, errTokenEndpoint):
		unavailableFor(w, r, refreshRetryAfter(err), "Google's token endpoint is not answering; try again shortly")
	case ctx.Err() != nil:
		a.log.InfoContext(ctx, "client went away", "sub", rec.Sub)
	default:
		a.log.ErrorContext(ctx, "gmail: list failed", "sub", rec.Sub, "err", err)
		writeJSON(w, http.StatusBadGateway, apiError{Code: "upstream_error", Description: "Gmail failed to answer"})
	}
}

// needAuthorization answers a request whose user must (re)authorize: 401
// with the Authorize URL, or a redirect there for a page navigation.
func (a *App) needAuthorization(w http.ResponseWriter, r *http.Request, code, hint string, consent bool) {
	// Come back here afterwards: the public path of ListMessages (behind
	// cloudfunctions.net the function itself sees only "/") and this query.
	returnTo := ""
	if u, err := url.Parse(a.cfg.ListMessagesURL); err == nil && isBrowser(r) && a.cfg.ListAuthMode != config.AuthIAM {
		returnTo = u.EscapedPath()
		if r.URL.RawQuery != "" {
			returnTo += "?" + r.URL.RawQuery
		}
		if _, err := cleanReturnTo(returnTo); err != nil || len(returnTo) > 1024 {
			returnTo = ""
		}
	}
	target := a.authorizeURL(hint, returnTo, consent)
	if isBrowser(r) && !wantsJSON(r) && a.cfg.ListAuthMode != config.AuthIAM {
		http.Redirect(w, r, target, http.StatusFound)
		return
	}
	desc := "the user has not authorized Gmail access"
	if code == "reauthorization_required" {
		desc = "Google no longer honours the user's authorization; send the user to authorization_url"
	}
	w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	writeJSON(w, http.StatusUnauthorized, apiError{Code: code, Description: desc, AuthorizationURL: target})
}

// listParams are the query parameters ListMessages knows. Any other is
// refused, so that a typo (labelId) is not silently ignored.
var listParams = map[string]bool{"q": true, "labelIds": true, "maxResults": true, "pageToken": true,
	"includeSpamTrash": true, "all": true, "limit": true, "format": true, "user": true}

func parseListQuery(v url.Values) (messages.Query, error) {
	var q messages.Query
	for k := range v {
		if !listParams[k] {
			return q, fmt.Errorf("unknown parameter %q", truncate(k, 64))
		}
	}
	for _, k := range []string{"q", "maxResults", "pageToken", "includeSpamTrash", "all", "limit", "format", "user"} {
		if len(v[k]) > 1 {
			return q, fmt.Errorf("%s is given more than once", k)
		}
	}
	q.Q = v.Get("q")
	if len(q.Q) > 2048 {
		return q, errors.New("q is longer than 2048 characters")
	}
	q.LabelIDs = v["labelIds"]
	if len(q.LabelIDs) > 50 {
		return q, errors.New("at most 50 labelIds")
	}
	for _, l := range q.LabelIDs {
		if l == "" || len(l) > 256 {
			return q, errors.New("labelIds must be 1 to 256 characters each")
		}
	}
	q.PageToken = v.Get("pageToken")
	if len(q.PageToken) > 1024 || !printable(q.PageToken) {
		return q, errors.New("pageToken is not valid")
	}
	var err error
	if q.IncludeSpamTrash, err = parseBool(v, "includeSpamTrash"); err != nil {
		return q, err
	}
	if q.All, err = parseBool(v, "all"); err != nil {
		return q, err
	}
	switch f := v.Get("format"); f {
	case "", "minimal":
	case "metadata":
		q.Metadata = true
	default:
		return q, errors.New("format must be minimal or metadata")
	}
	maxResults := int64(messages.MaxPageSize)
	if q.Metadata {
		maxResults = messages.MaxMetadataResults
	}
	if s := v.Get("maxResults"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1 || n > maxResults {
			return q, fmt.Errorf("maxResults must be a whole number from 1 to %d", maxResults)
		}
		q.MaxResults = n
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > messages.MaxLimit {
			return q, fmt.Errorf("limit must be a whole number from 1 to %d", messages.MaxLimit)
		}
		if !q.All {
			return q, errors.New("limit goes with all=true")
		}
		q.Limit = n
	}
	if q.All && q.Metadata && (q.Limit == 0 || q.Limit > messages.MaxMetadataResults) {
		return q, fmt.Errorf("all=true with format=metadata needs limit of at most %d", messages.MaxMetadataResults)
	}
	return q, nil
}

func parseBool(v url.Values, k string) (bool, error) {
	s := v.Get(k)
	if s == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, fmt.Errorf("%s must be true or false", k)
	}
	return b, nil
}

func printable(s string) bool {
	for _, c := range s {
		if c <= 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}
