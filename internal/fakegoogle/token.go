package fakegoogle

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// tokenResponse is the token endpoint's answer, fields in Google's order.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	ExpiresIn    int    `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
	TokenType    string `json:"token_type"`
	IDToken      string `json:"id_token,omitempty"`
}

// tokenFailure is a token endpoint error.
type tokenFailure struct {
	status      int
	code        string
	description string
}

func badRequest(code, description string) *tokenFailure {
	return &tokenFailure{status: http.StatusBadRequest, code: code, description: description}
}

// internalFailure is the token endpoint's answer when the fake itself fails.
func internalFailure(err error) *tokenFailure {
	return &tokenFailure{status: http.StatusInternalServerError, code: "internal_failure", description: err.Error()}
}

var (
	errInvalidClient = &tokenFailure{status: http.StatusUnauthorized, code: "invalid_client", description: "Unauthorized"}
	errDeadRefresh   = badRequest("invalid_grant", "Token has been expired or revoked.")
)

// handleToken serves the token endpoint.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeOAuthError(w, http.StatusMethodNotAllowed, "invalid_request", "Method Not Allowed")
		return
	}
	form, parseErr := parseForm(r)
	grantType := form.Get("grant_type")
	switch grantType {
	case "authorization_code":
		s.count(CountTokenCode)
	case "refresh_token":
		s.count(CountTokenRefresh)
	default:
		s.count(CountTokenOther)
	}
	if f, ok := s.nextTokenFault(); ok {
		writeTokenFault(w, f)
		return
	}
	resp, fail := s.token(r, form, parseErr)
	if fail != nil {
		writeOAuthError(w, fail.status, fail.code, fail.description)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// parseForm reads a form-encoded request body. Google ignores the query.
func parseForm(r *http.Request) (url.Values, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return url.Values{}, errBadContentType
	}
	if err := r.ParseForm(); err != nil {
		return url.Values{}, fmt.Errorf("fakegoogle: reading token request: %w", err)
	}
	return r.PostForm, nil
}

// errBadContentType is returned for a token request that is not a form.
var errBadContentType = errors.New("fakegoogle: token request is not application/x-www-form-urlencoded")

// token validates a token request and answers it.
func (s *Server) token(r *http.Request, form url.Values, parseErr error) (*tokenResponse, *tokenFailure) {
	if parseErr != nil {
		return nil, badRequest("invalid_request", "Bad Request")
	}
	for k, vs := range form {
		if len(vs) > 1 {
			return nil, badRequest("invalid_request", "Parameter not allowed to repeat: "+k)
		}
	}
	if fail := s.authenticateClient(r, form); fail != nil {
		return nil, fail
	}
	switch gt := form.Get("grant_type"); gt {
	case "authorization_code":
		return s.exchangeCode(form)
	case "refresh_token":
		return s.refreshAccess(form)
	case "":
		return nil, badRequest("invalid_request", "Missing required parameter: grant_type")
	default:
		return nil, badRequest("unsupported_grant_type", "Invalid grant_type: "+gt)
	}
}

// authenticateClient checks the client credentials, from HTTP Basic auth or
// the form.
func (s *Server) authenticateClient(r *http.Request, form url.Values) *tokenFailure {
	id, secret := form.Get("client_id"), form.Get("client_secret")
	if user, pass, ok := r.BasicAuth(); ok {
		// RFC 6749 section 2.3.1: both are form-encoded first.
		var err1, err2 error
		id, err1 = url.QueryUnescape(user)
		secret, err2 = url.QueryUnescape(pass)
		if err1 != nil || err2 != nil {
			return errInvalidClient
		}
		if fid := form.Get("client_id"); fid != "" && fid != id {
			return badRequest("invalid_request", "client_id in the body does not match the Authorization header")
		}
	}
	if id == "" {
		return badRequest("invalid_request", "Could not determine client ID from request.")
	}
	idOK := subtle.ConstantTimeCompare([]byte(id), []byte(s.opts.ClientID)) == 1
	secretOK := subtle.ConstantTimeCompare([]byte(secret), []byte(s.opts.ClientSecret)) == 1
	if !idOK || !secretOK {
		return errInvalidClient
	}
	return nil
}

// issued is what a successful token request produced. The id_token is signed
// from it after the lock is released.
type issued struct {
	user         *user
	scopes       []string
	nonce        string
	accessToken  string
	refreshToken string
}

// exchangeCode answers grant_type=authorization_code.
func (s *Server) exchangeCode(form url.Values) (*tokenResponse, *tokenFailure) {
	codeValue := form.Get("code")
	if codeValue == "" {
		return nil, badRequest("invalid_request", "Missing required parameter: code")
	}
	redirectURI := form.Get("redirect_uri")
	if redirectURI == "" {
		return nil, badRequest("invalid_request", "Missing required parameter: redirect_uri")
	}
	is, fail := s.redeemCode(codeValue, redirectURI, form.Get("code_verifier"))
	if fail != nil {
		return nil, fail
	}
	return s.tokenResponse(is)
}

// redeemCode checks a code against the request and burns it.
func (s *Server) redeemCode(codeValue, redirectURI, verifier string) (issued, *tokenFailure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.codes[codeValue]
	switch {
	case !ok || c.clientID != s.opts.ClientID:
		return issued{}, badRequest("invalid_grant", "Malformed auth code.")
	case c.redeemed:
		return issued{}, badRequest("invalid_grant", "Bad Request")
	case !s.now().Before(c.expiry):
		return issued{}, badRequest("invalid_grant", "Bad Request")
	case c.redirectURI != redirectURI:
		return issued{}, badRequest("redirect_uri_mismatch", "Bad Request")
	case c.challenge != "" && verifier == "":
		return issued{}, badRequest("invalid_grant", "Missing code verifier.")
	case c.challenge != "" && !pkceMatches(c.method, c.challenge, verifier):
		return issued{}, badRequest("invalid_grant", "Invalid code verifier.")
	}
	c.redeemed = true

	u := s.userLocked(c.email)
	is := issued{user: u, scopes: c.scopes, nonce: c.nonce, accessToken: s.issueAccessLocked(u, c.scopes).value}
	if c.issueRefresh {
		is.refreshToken = s.issueRefreshLocked(u, c.scopes).value
	}
	if err := s.saveLocked(); err != nil {
		return issued{}, internalFailure(err)
	}
	return is, nil
}

// refreshAccess answers grant_type=refresh_token. Google never returns a new
// refresh token here; with Options.RotateRefreshTokens the fake does.
func (s *Server) refreshAccess(form url.Values) (*tokenResponse, *tokenFailure) {
	value := form.Get("refresh_token")
	if value == "" {
		return nil, badRequest("invalid_request", "Missing required parameter: refresh_token")
	}
	is, fail := s.useRefreshToken(value)
	if fail != nil {
		return nil, fail
	}
	return s.tokenResponse(is)
}

// useRefreshToken issues an access token for a live refresh token, and with
// Options.RotateRefreshTokens a refresh token in place of the one used.
func (s *Server) useRefreshToken(value string) (issued, *tokenFailure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt, ok := s.refresh[value]
	now := s.now()
	if !ok || rt.clientID != s.opts.ClientID || !rt.live(now) {
		if ok && !rt.dead {
			rt.dead = true
			s.logSaveError(s.saveLocked())
		}
		return issued{}, errDeadRefresh
	}
	rt.lastUsed = now
	u := s.userLocked(rt.email)
	is := issued{user: u, scopes: rt.scopes, accessToken: s.issueAccessLocked(u, rt.scopes).value}
	if s.opts.RotateRefreshTokens {
		rt.dead = true
		is.refreshToken = s.issueRefreshLocked(u, rt.scopes).value
	}
	if err := s.saveLocked(); err != nil {
		return issued{}, internalFailure(err)
	}
	return is, nil
}

// tokenResponse builds the answer for is, with an id_token when openid was
// granted.
func (s *Server) tokenResponse(is issued) (*tokenResponse, *tokenFailure) {
	resp := &tokenResponse{
		AccessToken:  is.accessToken,
		ExpiresIn:    s.expiresIn(),
		RefreshToken: is.refreshToken,
		Scope:        strings.Join(is.scopes, " "),
		TokenType:    "Bearer",
	}
	if s.opts.OmitScope {
		resp.Scope = ""
	}
	if scopeSet(is.scopes)[OpenIDScope] {
		idt, err := s.idToken(is.user, is.scopes, is.nonce, is.accessToken)
		if err != nil {
			return nil, internalFailure(err)
		}
		resp.IDToken = idt
	}
	return resp, nil
}

// expiresIn is the expires_in Google reports for a fresh access token: one
// second short of its life (3599 for an hour), and at least 1.
func (s *Server) expiresIn() int {
	secs := int((s.opts.AccessTokenTTL + time.Second - 1) / time.Second)
	return max(secs-1, 1)
}

// pkceMatches reports whether verifier answers challenge (RFC 7636).
func pkceMatches(method, challenge, verifier string) bool {
	if !validPKCE(verifier) {
		return false
	}
	want := verifier
	if method == "S256" {
		sum := sha256.Sum256([]byte(verifier))
		want = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	return subtle.ConstantTimeCompare([]byte(want), []byte(challenge)) == 1
}
