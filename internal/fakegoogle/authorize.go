package fakegoogle

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// authRequest is a validated authorization request. It travels through the
// consent form sealed (see seal.go).
type authRequest struct {
	ClientID       string   `json:"client_id"`
	RedirectURI    string   `json:"redirect_uri"`
	Scopes         []string `json:"scopes"`
	State          string   `json:"state,omitempty"`
	Offline        bool     `json:"offline,omitempty"`
	IncludeGranted bool     `json:"include_granted_scopes,omitempty"`
	LoginHint      string   `json:"login_hint,omitempty"`
	Prompt         []string `json:"prompt,omitempty"`
	Nonce          string   `json:"nonce,omitempty"`
	Challenge      string   `json:"code_challenge,omitempty"`
	Method         string   `json:"code_challenge_method,omitempty"`
	Expires        int64    `json:"exp"` // Unix seconds; the consent form is good until then
}

func (a *authRequest) prompts(p string) bool { return slices.Contains(a.Prompt, p) }

// authError is a rejected authorization request. Google shows an error page
// when it cannot trust the redirect URI, and redirects with error= otherwise.
type authError struct {
	page        bool // show an error page instead of redirecting
	status      int  // HTTP status of the error page
	code        string
	description string
}

func pageError(status int, code, description string) *authError {
	return &authError{page: true, status: status, code: code, description: description}
}

func redirectError(code, description string) *authError {
	return &authError{code: code, description: description}
}

// singleValued are the parameters Google rejects when repeated.
var singleValued = []string{
	"response_type", "scope", "state", "access_type", "include_granted_scopes",
	"login_hint", "prompt", "nonce", "code_challenge", "code_challenge_method",
}

// pkceChars matches the characters of RFC 7636's code_challenge and
// code_verifier. The length is checked apart, in validPKCE: a counted
// repetition compiles to one instruction per count, about 100 KB of heap
// held by every process that links the fake.
var pkceChars = regexp.MustCompile(`^[A-Za-z0-9._~-]+$`)

// validPKCE reports whether s is a valid code_challenge or code_verifier:
// 43 to 128 unreserved characters.
func validPKCE(s string) bool {
	return 43 <= len(s) && len(s) <= 128 && pkceChars.MatchString(s)
}

// parseAuthRequest validates q in Google's order: client, redirect URI, then
// the rest.
func (s *Server) parseAuthRequest(q url.Values) (*authRequest, *authError) {
	for _, k := range []string{"client_id", "redirect_uri"} {
		if len(q[k]) > 1 {
			return nil, pageError(http.StatusBadRequest, "invalid_request", "Parameter not allowed to repeat: "+k)
		}
	}
	req := &authRequest{ClientID: q.Get("client_id"), RedirectURI: q.Get("redirect_uri")}
	switch {
	case req.ClientID == "":
		return nil, pageError(http.StatusBadRequest, "invalid_request", "Missing required parameter: client_id")
	case req.ClientID != s.opts.ClientID:
		return nil, pageError(http.StatusUnauthorized, "invalid_client", "The OAuth client was not found.")
	case req.RedirectURI == "":
		return nil, pageError(http.StatusBadRequest, "invalid_request", "Missing required parameter: redirect_uri")
	case !s.redirectURIAllowed(req.RedirectURI):
		return nil, pageError(http.StatusBadRequest, "redirect_uri_mismatch",
			"You can't sign in to this app because it doesn't comply with Google's OAuth 2.0 policy. If you're the app developer, register the redirect URI in the Google Cloud Console.")
	}

	// From here on the redirect URI is trusted: errors go back to the app.
	req.State = q.Get("state")
	for _, k := range singleValued {
		if len(q[k]) > 1 {
			return req, redirectError("invalid_request", "Parameter not allowed to repeat: "+k)
		}
	}
	switch rt := q.Get("response_type"); rt {
	case "code":
	case "":
		return req, redirectError("invalid_request", "Missing required parameter: response_type")
	default:
		return req, redirectError("unsupported_response_type", "Invalid response_type: "+rt)
	}

	scope := q.Get("scope")
	if strings.TrimSpace(scope) == "" {
		return req, redirectError("invalid_request", "Missing required parameter: scope")
	}
	scopes, unknown := parseScopes(scope)
	if len(unknown) > 0 {
		return req, redirectError("invalid_scope", fmt.Sprintf("Some requested scopes were invalid. {invalid=%v}", unknown))
	}
	req.Scopes = scopes

	switch at := q.Get("access_type"); at {
	case "", "online":
	case "offline":
		req.Offline = true
	default:
		return req, redirectError("invalid_request", "Invalid access_type: "+at)
	}
	switch igs := q.Get("include_granted_scopes"); igs {
	case "", "false":
	case "true":
		req.IncludeGranted = true
	default:
		return req, redirectError("invalid_request", "Invalid include_granted_scopes: "+igs)
	}

	req.Prompt = strings.Fields(q.Get("prompt"))
	for _, p := range req.Prompt {
		switch p {
		case "none", "consent", "select_account":
		default:
			return req, redirectError("invalid_request", "Invalid prompt: "+p)
		}
	}
	if req.prompts("none") && len(req.Prompt) > 1 {
		return req, redirectError("invalid_request", "The prompt parameter none must not be combined with other values")
	}

	req.Challenge, req.Method = q.Get("code_challenge"), q.Get("code_challenge_method")
	switch {
	case req.Challenge == "" && req.Method != "":
		return req, redirectError("invalid_request", "Missing required parameter: code_challenge")
	case req.Challenge == "":
	case req.Method == "":
		req.Method = "plain" // RFC 7636's default
	case req.Method != "S256" && req.Method != "plain":
		return req, redirectError("invalid_request", "Invalid code_challenge_method: "+req.Method)
	}
	if req.Challenge != "" && !validPKCE(req.Challenge) {
		return req, redirectError("invalid_request", "Invalid code_challenge")
	}

	req.LoginHint = q.Get("login_hint")
	req.Nonce = q.Get("nonce")
	req.Expires = s.now().Add(consentFormTTL).Unix()
	return req, nil
}

// redirectURIAllowed reports whether uri is registered. With no registered
// URIs, any plain-http loopback URI is.
func (s *Server) redirectURIAllowed(uri string) bool {
	if len(s.opts.RedirectURIs) > 0 {
		return slices.Contains(s.opts.RedirectURIs, uri)
	}
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "http" || u.Fragment != "" || u.User != nil {
		return false
	}
	switch u.Hostname() {
	case "localhost", "127.0.0.1":
		return true
	}
	return false
}

// handleAuthorize serves the authorization endpoint: the consent page, or
// with AutoApprove (or prompt=none) a direct redirect.
func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		s.renderError(w, http.StatusMethodNotAllowed, "invalid_request", "Method not allowed")
		return
	}
	s.count(CountAuth)
	req, aerr := s.parseAuthRequest(r.URL.Query())
	if aerr != nil {
		s.rejectAuth(w, r, req, aerr)
		return
	}
	if s.opts.AutoApprove {
		s.approve(w, r, req, s.hintedEmail(req.LoginHint), req.Scopes)
		return
	}
	if req.prompts("none") {
		s.approveSilently(w, r, req)
		return
	}
	s.renderConsent(w, http.StatusOK, req, s.hintedEmail(req.LoginHint), "")
}

// hintedEmail returns the account a login_hint names: an email, or the sub of
// a known user. Anything else means the demo user.
func (s *Server) hintedEmail(hint string) string {
	hint = strings.TrimSpace(hint)
	if validEmail(hint) {
		return normalizeEmail(hint)
	}
	if hint != "" {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, u := range s.users {
			if u.sub == hint {
				return u.email
			}
		}
	}
	return DemoEmail
}

// approveSilently answers prompt=none: the fake has no sign-in session, so
// it approves only when login_hint names a user who already granted every
// requested scope.
func (s *Server) approveSilently(w http.ResponseWriter, r *http.Request, req *authRequest) {
	if req.LoginHint == "" {
		s.rejectAuth(w, r, req, redirectError("login_required", ""))
		return
	}
	email := s.hintedEmail(req.LoginHint)
	s.mu.Lock()
	u := s.userLocked(email)
	all := true
	for _, sc := range req.Scopes {
		all = all && u.granted[sc]
	}
	s.mu.Unlock()
	if !all {
		s.rejectAuth(w, r, req, redirectError("consent_required", ""))
		return
	}
	s.approve(w, r, req, email, req.Scopes)
}

// rejectAuth shows an error page, or redirects to the app with error=.
func (s *Server) rejectAuth(w http.ResponseWriter, r *http.Request, req *authRequest, aerr *authError) {
	if aerr.page {
		s.renderError(w, aerr.status, aerr.code, aerr.description)
		return
	}
	params := url.Values{"error": {aerr.code}}
	if aerr.description != "" {
		params.Set("error_description", aerr.description)
	}
	if req.State != "" {
		params.Set("state", req.State)
	}
	redirectWith(w, r, req.RedirectURI, params)
}

// approve issues a code for email with the chosen scopes and redirects to
// the app as Google does after Allow.
func (s *Server) approve(w http.ResponseWriter, r *http.Request, req *authRequest, email string, chosen []string) {
	code, granted, err := s.issueCode(req, email, chosen)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	params := url.Values{
		"code":     {code},
		"scope":    {strings.Join(granted, " ")},
		"authuser": {"0"},
		"prompt":   {"consent"},
	}
	if req.prompts("none") {
		params.Set("prompt", "none")
	}
	if req.State != "" {
		params.Set("state", req.State)
	}
	redirectWith(w, r, req.RedirectURI, params)
}

// issueCode records the user's consent and returns a new authorization code
// and the scopes it grants, or an error when the consent could not be saved.
func (s *Server) issueCode(req *authRequest, email string, chosen []string) (code string, granted []string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.userLocked(email)
	granted = slices.Clone(chosen)
	if req.IncludeGranted {
		for sc := range u.granted {
			granted = append(granted, sc)
		}
	}
	granted = sortScopes(granted)
	changed := false
	for _, sc := range chosen {
		changed = changed || !u.granted[sc]
		u.granted[sc] = true
	}
	if changed {
		if err := s.saveLocked(); err != nil {
			return "", nil, err
		}
	}
	c := &authCode{
		value:        randomToken("4/0A", 48),
		clientID:     req.ClientID,
		redirectURI:  req.RedirectURI,
		challenge:    req.Challenge,
		method:       req.Method,
		nonce:        req.Nonce,
		email:        u.email,
		scopes:       granted,
		issueRefresh: req.Offline && (req.prompts("consent") || !s.hasLiveRefreshLocked(u)),
		expiry:       s.now().Add(s.opts.CodeTTL),
	}
	s.codes[c.value] = c
	s.codeLog = append(s.codeLog, c.value)
	return c.value, granted, nil
}

// redirectWith redirects (302) to target with params added to its query.
func redirectWith(w http.ResponseWriter, r *http.Request, target string, params url.Values) {
	u, err := url.Parse(target)
	if err != nil {
		// target was validated before; this is a bug in the fake.
		http.Error(w, fmt.Sprintf("fakegoogle: parsing redirect URI: %v", err), http.StatusInternalServerError)
		return
	}
	q := u.Query()
	for k, vs := range params {
		q[k] = vs
	}
	u.RawQuery = q.Encode()
	w.Header().Set("Cache-Control", "no-cache, no-store, max-age=0, must-revalidate")
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// validEmail reports whether s looks like an email address.
func validEmail(s string) bool {
	local, domain, ok := strings.Cut(s, "@")
	return ok && local != "" && domain != "" && !strings.ContainsAny(s, " \t\r\n<>\"(),;:\\[]") && !strings.Contains(domain, "@")
}
