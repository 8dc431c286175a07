package fakegoogle

import (
	"net/http"
	"strings"
)

// handleRevoke serves the revocation endpoint. Revoking an access or a
// refresh token removes the app's access to the account, as at Google: every
// token of that user for the client dies.
func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeOAuthError(w, http.StatusMethodNotAllowed, "invalid_request", "Method Not Allowed")
		return
	}
	s.count(CountRevoke)
	value := r.URL.Query().Get("token")
	if form, err := parseForm(r); err == nil && form.Get("token") != "" {
		value = form.Get("token")
	}
	if value == "" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Missing required parameter: token")
		return
	}
	ok, err := s.revokeToken(value)
	if err != nil {
		writeOAuthError(w, http.StatusInternalServerError, "internal_failure", err.Error())
		return
	}
	if !ok {
		writeOAuthError(w, http.StatusBadRequest, "invalid_token", "Token expired or revoked")
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

// revokeToken kills the grant value belongs to. It reports false for unknown,
// expired or already revoked tokens, and an error when the revocation could
// not be saved.
func (s *Server) revokeToken(value string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var email string
	if rt, ok := s.refresh[value]; ok && rt.live(now) {
		email = rt.email
	} else if at, ok := s.access[value]; ok && at.valid(now) {
		email = at.email
	} else {
		return false, nil
	}
	s.revokeGrantLocked(s.users[email])
	if err := s.saveLocked(); err != nil {
		return false, err
	}
	return true, nil
}

// handleUserinfo serves the OpenID Connect userinfo endpoint.
func (s *Server) handleUserinfo(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		writeOAuthError(w, http.StatusMethodNotAllowed, "invalid_request", "Method Not Allowed")
		return
	}
	s.count(CountUserinfo)
	u, at, ok := s.validAccessToken(bearerToken(r))
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="https://accounts.google.com/", error="invalid_token"`)
		writeOAuthError(w, http.StatusUnauthorized, "invalid_request", "Invalid Credentials")
		return
	}
	info := struct {
		Sub           string `json:"sub"`
		Name          string `json:"name,omitempty"`
		Picture       string `json:"picture"`
		Email         string `json:"email,omitempty"`
		EmailVerified bool   `json:"email_verified,omitempty"`
	}{Sub: u.sub, Name: u.name, Picture: pictureURL(u)}
	if at.hasScope(EmailScope) {
		info.Email, info.EmailVerified = u.email, true
	}
	writeJSON(w, http.StatusOK, info)
}

// bearerToken returns the token of an "Authorization: Bearer" header, or "".
func bearerToken(r *http.Request) string {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}
