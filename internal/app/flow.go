package app

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/cookies"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/tokenstore"
)

// FlowTTL is how long an authorization may take from Authorize to Callback.
const FlowTTL = 10 * time.Minute

// flowState is what Authorize remembers for Callback, in the flow cookie.
type flowState struct {
	State     string `json:"s"`
	Verifier  string `json:"v"`
	Nonce     string `json:"n"`
	ReturnTo  string `json:"r,omitempty"`
	LoginHint string `json:"h,omitempty"`
	Consent   bool   `json:"c,omitempty"` // prompt=consent was asked for
}

// session is what the session cookie names.
type session struct {
	Sub   string `json:"sub"`
	Email string `json:"email,omitempty"`
	// IssuedAt is when Callback issued the session, in Unix microseconds.
	// Sessions issued before it existed have none (0).
	IssuedAt int64 `json:"iat,omitempty"`
}

// validFor reports whether the session may name rec's user: it was issued
// no earlier than the record's SessionsValidAfter. A session without an
// issue time counts as issued at the Unix epoch: it still names a record
// stored before SessionsValidAfter existed (zero), as it did before, and
// never a record created since, for instance after a Disconnect.
func (s session) validFor(rec *tokenstore.Record) bool {
	return !time.UnixMicro(s.IssuedAt).Before(rec.SessionsValidAfter.Truncate(time.Microsecond))
}

// random returns n random bytes in URL-safe base64.
func random(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// secureCookies is false only when the functions are served over plain
// http on localhost, where a browser would drop a Secure cookie.
func (a *App) secureCookies() bool { return !strings.HasPrefix(a.cfg.RedirectURL, "http://") }

func (a *App) cookieName(base string) string {
	if a.secureCookies() {
		return "__Host-" + base // Secure, Path=/, no Domain: a sibling host cannot plant it
	}
	return base
}

// flowCookieName includes a prefix of the state, so that two tabs can run
// two authorizations at once without one overwriting the other's cookie.
func (a *App) flowCookieName(state string) string {
	if len(state) > 12 {
		state = state[:12]
	}
	return a.cookieName("oauth_flow_" + state)
}

func (a *App) sessionCookieName() string { return a.cookieName("gmail_session") }

func (a *App) setCookie(w http.ResponseWriter, name, value string, maxAge time.Duration) {
	c := &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true, Secure: a.secureCookies(), SameSite: http.SameSiteLaxMode}
	if maxAge > 0 {
		c.MaxAge = int(maxAge.Seconds())
	} else {
		c.MaxAge = -1
	}
	http.SetCookie(w, c)
}

var errBadState = errors.New("missing, expired or mismatched state")

// readFlow opens the flow cookie for state and checks, in constant time,
// that it was issued for that state: the CSRF check of the callback.
func (a *App) readFlow(r *http.Request, rs *rings, state string) (flowState, error) {
	var f flowState
	if state == "" || len(state) > 128 {
		return f, errBadState
	}
	name := a.flowCookieName(state)
	c, err := r.Cookie(name)
	if err != nil {
		return f, errBadState
	}
	if err := cookies.Decode(rs.cookie, name, c.Value, a.now(), &f); err != nil {
		return f, errBadState
	}
	if subtle.ConstantTimeCompare([]byte(f.State), []byte(state)) != 1 {
		return flowState{}, errBadState
	}
	return f, nil
}

// readSession returns the user the session cookie names.
func (a *App) readSession(r *http.Request, rs *rings) (session, bool) {
	var s session
	name := a.sessionCookieName()
	c, err := r.Cookie(name)
	if err != nil {
		return s, false
	}
	if cookies.Decode(rs.cookie, name, c.Value, a.now(), &s) != nil || s.Sub == "" {
		return session{}, false
	}
	return s, true
}

var errReturnTo = errors.New("return_to must be a path on this site, like /app/inbox")

// cleanReturnTo accepts only a same-site path: never an absolute URL, a
// scheme-relative //host, a backslash trick, a control character or a dot
// segment, also after percent-decoding. A query and a fragment may follow
// the path.
func cleanReturnTo(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	if len(s) > 2048 {
		return "", errReturnTo
	}
	decoded, err := url.PathUnescape(s)
	if err != nil {
		return "", errReturnTo
	}
	for _, v := range []string{s, decoded} {
		if !strings.HasPrefix(v, "/") || strings.HasPrefix(v, "//") || strings.ContainsAny(v, "\\") {
			return "", errReturnTo
		}
		for _, c := range v {
			if c < 0x20 || c == 0x7f {
				return "", errReturnTo
			}
		}
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return "", errReturnTo
	}
	// No dot segments: "/.//evil" is same-site as a Location, but resolves
	// to the path "//evil", which a page that echoes its path into a link or
	// a redirect would turn into another host. A real return path has none.
	for seg := range strings.SplitSeq(u.Path, "/") {
		if seg == "." || seg == ".." {
			return "", errReturnTo
		}
	}
	return s, nil
}

// authorizeURL is this deployment's Authorize URL, carrying what the next
// authorization should know. It is what error answers offer the user.
func (a *App) authorizeURL(loginHint, returnTo string, consent bool) string {
	q := url.Values{}
	if loginHint != "" {
		q.Set("login_hint", loginHint)
	}
	if returnTo != "" {
		q.Set("return_to", returnTo)
	}
	if consent {
		q.Set("prompt", "consent")
	}
	if len(q) == 0 {
		return a.cfg.AuthorizeURL
	}
	sep := "?"
	if strings.Contains(a.cfg.AuthorizeURL, "?") {
		sep = "&"
	}
	return a.cfg.AuthorizeURL + sep + q.Encode()
}
