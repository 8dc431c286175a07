package app

import (
	"net/http"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/oauth2"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/cookies"
)

// Authorize sends the browser to Google's consent screen.
//
// Query: login_hint (optional), return_to (a same-site path), prompt=consent
// (ask Google for a new refresh token). It keeps state, the PKCE verifier
// and the OIDC nonce in a short-lived sealed cookie (nothing is stored
// server-side) and redirects, or answers {"authorization_url": ...} to a
// client that asks for JSON.
func (a *App) Authorize(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, "GET")
		return
	}
	q := r.URL.Query()
	hint := q.Get("login_hint")
	if !validHint(hint) {
		fail(w, r, http.StatusBadRequest, apiError{Code: "invalid_request", Description: "login_hint must be an email address or account id"})
		return
	}
	returnTo, err := cleanReturnTo(q.Get("return_to"))
	if err != nil {
		fail(w, r, http.StatusBadRequest, apiError{Code: "invalid_request", Description: err.Error()})
		return
	}
	prompt := q.Get("prompt")
	if prompt != "" && prompt != "consent" {
		fail(w, r, http.StatusBadRequest, apiError{Code: "invalid_request", Description: "prompt may only be consent"})
		return
	}
	oc, rs, ok := a.secretsOrFail(w, r)
	if !ok {
		return
	}
	f := flowState{State: random(32), Verifier: oauth2.GenerateVerifier(), Nonce: random(24),
		ReturnTo: returnTo, LoginHint: hint, Consent: prompt == "consent"}
	name := a.flowCookieName(f.State)
	value, err := cookies.Encode(rs.cookie, name, f, a.now().Add(FlowTTL))
	if err != nil {
		a.log.ErrorContext(r.Context(), "seal flow cookie", "err", err)
		writeJSON(w, http.StatusInternalServerError, apiError{Code: "internal_error"})
		return
	}
	a.setCookie(w, name, value, FlowTTL)

	opts := []oauth2.AuthCodeOption{
		oauth2.AccessTypeOffline,
		oauth2.S256ChallengeOption(f.Verifier),
		oauth2.SetAuthURLParam("include_granted_scopes", "true"),
		oauth2.SetAuthURLParam("nonce", f.Nonce),
	}
	if hint != "" {
		opts = append(opts, oauth2.SetAuthURLParam("login_hint", hint))
	}
	if f.Consent {
		opts = append(opts, oauth2.ApprovalForce) // prompt=consent
	}
	target := oc.AuthCodeURL(f.State, opts...)
	if wantsJSON(r) {
		writeJSON(w, http.StatusOK, map[string]string{"authorization_url": target})
		return
	}
	http.Redirect(w, r, target, http.StatusFound)
}

// validHint accepts an empty hint, an email address or Google's numeric
// account id (the sub, which Google's login_hint accepts too). An email is
// valid UTF-8 of at most 320 bytes: one @ between a local part of at most
// 64 bytes and a domain of dot-separated labels, with no space or control
// or other unprintable character anywhere.
func validHint(s string) bool {
	switch {
	case s == "":
		return true
	case len(s) > 320 || !utf8.ValidString(s):
		return false
	case strings.Trim(s, "0123456789") == "":
		return len(s) <= 255
	}
	local, domain, ok := strings.Cut(s, "@")
	if !ok || local == "" || len(local) > 64 || strings.Contains(domain, "@") {
		return false
	}
	labels := strings.Split(domain, ".")
	if len(labels) < 2 || slices.Contains(labels, "") {
		return false
	}
	for _, c := range s {
		if c == ' ' || !unicode.IsPrint(c) {
			return false
		}
	}
	return true
}
