package app

import (
	"cmp"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
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

// newState returns a fresh state: when it was issued, in Unix milliseconds
// as stateTimeLen hex digits (so that flow cookies, named after their
// state, tell their age), then 256 random bits.
func (a *App) newState() string {
	return fmt.Sprintf("%0*x", stateTimeLen, a.now().UnixMilli()) + random(32)
}

// stateTimeLen is the length of a state's issue time: 11 hex digits of Unix
// milliseconds last until the year 2527.
const stateTimeLen = 11

// flowNameLen is how much of the state names its flow cookie: the issue
// time and 72 random bits, so that two tabs can run two authorizations at
// once without one overwriting the other's cookie.
const flowNameLen = stateTimeLen + 12

// flowCookiePrefix is the start of every flow cookie's name.
func (a *App) flowCookiePrefix() string { return a.cookieName("oauth_flow_") }

func (a *App) flowCookieName(state string) string {
	if len(state) > flowNameLen {
		state = state[:flowNameLen]
	}
	return a.flowCookiePrefix() + state
}

// Flow cookies per browser are bounded: each Authorize sets one that lives
// FlowTTL, and a browser that keeps opening Authorize (reloads, tabs, page
// navigations that ListMessages redirects there) would pile them up until
// its Cookie header is refused (431). Authorize keeps at most
// maxFlowCookies, the newest, within flowCookiesBudget bytes.
const (
	maxFlowCookies    = 4
	flowCookiesBudget = 6 << 10
)

// capFlowCookies clears the browser's oldest flow cookies, so that with the
// one about to be set (newSize bytes, name and value) it keeps at most
// maxFlowCookies within flowCookiesBudget. The newest are kept: a cookie's
// age is in its name; one whose name tells none (from before names did)
// counts as the oldest.
func (a *App) capFlowCookies(w http.ResponseWriter, r *http.Request, newSize int) {
	prefix := a.flowCookiePrefix()
	type flowCookie struct {
		name   string
		issued int64
		size   int
	}
	var flows []flowCookie
	for _, c := range r.Cookies() {
		if rest, ok := strings.CutPrefix(c.Name, prefix); ok {
			issued := int64(-1)
			if len(rest) >= stateTimeLen {
				if t, err := strconv.ParseInt(rest[:stateTimeLen], 16, 64); err == nil {
					issued = t
				}
			}
			flows = append(flows, flowCookie{c.Name, issued, len(c.Name) + len(c.Value)})
		}
	}
	slices.SortFunc(flows, func(x, y flowCookie) int { // newest first
		return cmp.Or(cmp.Compare(y.issued, x.issued), strings.Compare(y.name, x.name))
	})
	kept, size := 1, newSize
	for _, f := range flows {
		if kept < maxFlowCookies && size+f.size <= flowCookiesBudget {
			kept, size = kept+1, size+f.size
			continue
		}
		a.setCookie(w, f.name, "", 0)
	}
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
