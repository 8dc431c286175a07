package fakegoogle

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// maxLiveRefreshTokens is how many live refresh tokens Google keeps per user
// and client; issuing one more silently kills the oldest.
const maxLiveRefreshTokens = 100

// refreshTokenIdleLimit is how long Google keeps an unused refresh token.
const refreshTokenIdleLimit = 183 * 24 * time.Hour

// user is a Google account, created on first use.
type user struct {
	email   string
	sub     string
	name    string
	granted map[string]bool // scopes granted to the client; emptied by revocation

	refreshLog []*refreshToken // every refresh token issued, oldest first
	accessLog  []*accessToken  // every access token issued, oldest first

	mailbox    *mailbox // nil until first needed
	setMailbox bool     // mailbox was set by SetMailbox, not seeded
	quota      []quotaUse
}

// authCode is an authorization code and everything it is bound to.
type authCode struct {
	value        string
	clientID     string
	redirectURI  string
	challenge    string
	method       string // "S256" or "plain" when challenge is set
	nonce        string
	email        string
	scopes       []string
	issueRefresh bool
	expiry       time.Time
	redeemed     bool
}

// refreshToken is a refresh token and the grant it carries.
type refreshToken struct {
	value    string
	clientID string
	email    string
	scopes   []string
	issued   time.Time
	lastUsed time.Time
	dead     bool
}

// live reports whether Google would still honour t at now.
func (t *refreshToken) live(now time.Time) bool {
	return !t.dead && now.Sub(t.lastUsed) < refreshTokenIdleLimit
}

// accessToken is an access token.
type accessToken struct {
	value  string
	email  string
	scopes []string
	expiry time.Time
	dead   bool
}

// valid reports whether t is accepted at now.
func (t *accessToken) valid(now time.Time) bool {
	return !t.dead && now.Before(t.expiry)
}

func (t *accessToken) hasScope(scope string) bool { return slices.Contains(t.scopes, scope) }

// normalizeEmail returns the canonical form of an email address.
func normalizeEmail(email string) string {
	return strings.ToLower(strings.TrimSpace(email))
}

// userLocked returns the user for email, creating it if needed.
// s.mu must be held (or s not yet shared).
func (s *Server) userLocked(email string) *user {
	email = normalizeEmail(email)
	if u, ok := s.users[email]; ok {
		return u
	}
	local, _, _ := strings.Cut(email, "@")
	u := &user{
		email:   email,
		sub:     subFor(email),
		name:    displayName(local),
		granted: make(map[string]bool),
	}
	s.users[email] = u
	return u
}

// subFor derives Google's stable subject identifier for email: 21 decimal
// digits starting with 1, the same in every Server.
func subFor(email string) string {
	sum := sha256.Sum256([]byte("fakegoogle-sub:" + normalizeEmail(email)))
	n := binary.BigEndian.Uint64(sum[:8]) % 1e18
	m := binary.BigEndian.Uint64(sum[8:16]) % 100
	return fmt.Sprintf("1%02d%018d", m, n)
}

// displayName turns "jane.doe" into "Jane Doe".
func displayName(local string) string {
	words := strings.FieldsFunc(local, func(r rune) bool { return r == '.' || r == '_' || r == '-' || r == '+' })
	for i, w := range words {
		r, size := utf8.DecodeRuneInString(w)
		words[i] = string(unicode.ToUpper(r)) + w[size:]
	}
	if len(words) == 0 {
		return "User"
	}
	return strings.Join(words, " ")
}

// randomToken returns prefix followed by n random bytes, base64url encoded.
func randomToken(prefix string, n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails; see crypto/rand.Read
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// hasLiveRefreshLocked reports whether u holds a live refresh token.
func (s *Server) hasLiveRefreshLocked(u *user) bool {
	now := s.now()
	for _, t := range u.refreshLog {
		if t.live(now) {
			return true
		}
	}
	return false
}

// issueRefreshLocked issues a refresh token to u, killing the oldest live
// ones beyond Google's limit.
func (s *Server) issueRefreshLocked(u *user, scopes []string) *refreshToken {
	now := s.now()
	var liveTokens []*refreshToken
	for _, t := range u.refreshLog {
		if t.live(now) {
			liveTokens = append(liveTokens, t)
		}
	}
	for i := 0; len(liveTokens)-i >= maxLiveRefreshTokens; i++ {
		liveTokens[i].dead = true
	}
	t := &refreshToken{
		value:    randomToken("1//", 48),
		clientID: s.opts.ClientID,
		email:    u.email,
		scopes:   slices.Clone(scopes),
		issued:   now,
		lastUsed: now,
	}
	u.refreshLog = append(u.refreshLog, t)
	s.refresh[t.value] = t
	return t
}

// issueAccessLocked issues an access token to u.
func (s *Server) issueAccessLocked(u *user, scopes []string) *accessToken {
	t := &accessToken{
		value:  randomToken("ya29.", 96),
		email:  u.email,
		scopes: slices.Clone(scopes),
		expiry: s.now().Add(s.opts.AccessTokenTTL),
	}
	u.accessLog = append(u.accessLog, t)
	s.access[t.value] = t
	return t
}

// revokeGrantLocked removes the client's access to u's account: every token
// dies and the record of granted scopes is forgotten. It reports whether
// anything changed.
func (s *Server) revokeGrantLocked(u *user) (changed bool) {
	for _, t := range u.refreshLog {
		changed = changed || !t.dead
		t.dead = true
	}
	for _, t := range u.accessLog {
		changed = changed || !t.dead
		t.dead = true
	}
	changed = changed || len(u.granted) > 0
	clear(u.granted)
	return changed
}

// validAccessToken returns the user and token for a bearer token, or false
// if Google would reject it.
func (s *Server) validAccessToken(value string) (*user, *accessToken, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.access[value]
	if !ok || !t.valid(s.now()) {
		return nil, nil, false
	}
	return s.users[t.email], t, true
}

// UserSub returns the stable subject identifier ("sub") Google uses for
// email: 21 decimal digits, the same in every Server.
func (s *Server) UserSub(email string) string { return subFor(email) }

// RevokeGrant acts as the user removing the app's access in their Google
// Account: every refresh and access token of that user for the client dies,
// and the next consent counts as a first consent.
func (s *Server) RevokeGrant(email string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u, ok := s.users[normalizeEmail(email)]; ok && s.revokeGrantLocked(u) {
		s.logSaveError(s.saveLocked())
	}
}

// ExpireAccessTokens makes every current access token of the user expire now.
// Refresh tokens stay valid.
func (s *Server) ExpireAccessTokens(email string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[normalizeEmail(email)]
	if !ok {
		return
	}
	now := s.now()
	changed := false
	for _, t := range u.accessLog {
		if t.expiry.After(now) {
			t.expiry = now
			changed = true
		}
	}
	if changed {
		s.logSaveError(s.saveLocked())
	}
}

// RefreshTokens returns every refresh token ever issued to the user, live or
// dead, oldest first. It is meant for tests that look for leaked tokens.
func (s *Server) RefreshTokens(email string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[normalizeEmail(email)]
	if !ok {
		return nil
	}
	out := make([]string, len(u.refreshLog))
	for i, t := range u.refreshLog {
		out[i] = t.value
	}
	return out
}

// AccessTokens returns every access token ever issued to the user, oldest
// first.
func (s *Server) AccessTokens(email string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[normalizeEmail(email)]
	if !ok {
		return nil
	}
	out := make([]string, len(u.accessLog))
	for i, t := range u.accessLog {
		out[i] = t.value
	}
	return out
}

// Codes returns every authorization code ever issued, oldest first.
func (s *Server) Codes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.codeLog)
}
