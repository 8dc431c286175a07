package app

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/config"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/messages"
)

// Every fuzz worker process runs the setup of a target again, so the key,
// the clock and the sealed seeds are fixed: a random key per process would
// make the seeds unopenable in all but one.
var (
	fuzzNow     = time.Unix(1_800_000_000, 0)
	fuzzKeySet  = []byte(`{"primary":"f1","keys":{"f1":"` + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)) + `"}}`)
	fuzzState   = "c2VjdXJpdHktZnV6ei1zdGF0ZS0wMTIzNDU2Nzg5YWJjZGVm"
	fuzzFlowWas = flowState{State: fuzzState, Verifier: "fuzz-verifier-0123456789-0123456789-0123456789",
		Nonce: "fuzz-nonce-0123456789abcd", ReturnTo: "/app", LoginHint: "demo@example.com"}
	fuzzSessionWas = session{Sub: "191566204715611926563", Email: "demo@example.com"}
)

// The seeds were sealed once by cookies.Encode under fuzzKeySet's cookie
// key: fuzzFlowWas for the flow cookie of fuzzState, valid until
// fuzzNow+FlowTTL, and fuzzSessionWas, valid until fuzzNow+24h.
const (
	fuzzFlowCookie    = "AmYx8OueDzbLAXULEp5DKZ9EWvN9ddscM3M6ZWLkeB_IpyUBY4eifBD-PavAi__Kq9xLZQCRNItaHJLSirARisfJXPAvTxWqReuVeNT_WXsu93FkSvIrZT9deYmQLoT8X76gQEXkbW9WNbNQ23xXjYNbT19vU-Kcb9kopopRsShlvHny38lkNtCZynK_AAWYrd1mgUPO9Kff1KnMv9U8Tvg1KPZ6GOw6cqU6qDbnRqHRI4zh7UyVl8sKt9npLHHvZ9ACZfjlXyy3vDsFpGnk6adm4DfUUES9N1Inj1kZNDzxQSo"
	fuzzSessionCookie = "AmYx25E_EYj_6VZU7cqT2idJCTPcSUTiZ7lUFoHS5FstkMZGWQjdlYbXcqnR-mPHO8y2gDUtXGtfJ_8qYPAwTD50NdX-0QRJq50pnjLSkw5KXmAkR9uURQdycFLY8UvgOWrr1Rnq5xD1N_WpDm0"
)

// fuzzApp is an App with the fixed key and clock, enough for the cookie
// readers.
func fuzzApp(f *testing.F) (*App, *rings) {
	rs, err := parseRings(fuzzKeySet)
	if err != nil {
		f.Fatal(err)
	}
	return &App{cfg: config.Config{RedirectURL: base + "/Callback"}, now: func() time.Time { return fuzzNow }}, rs
}

// sameSealed reports whether a cookie value the server parsed is the sealed
// seed: the same bytes once base64-decoded (the decoder skips newlines).
func sameSealed(parsed, seed string) bool {
	got, err := base64.RawURLEncoding.DecodeString(parsed)
	want, _ := base64.RawURLEncoding.DecodeString(seed)
	return err == nil && bytes.Equal(got, want)
}

// FuzzFlowCookie: the Callback's CSRF check (readFlow) over any Cookie
// header value and any state never panics, and accepts only the value
// sealed under the key, for the state it was sealed for.
func FuzzFlowCookie(f *testing.F) {
	a, rs := fuzzApp(f)
	check := func(value, state string) (flowState, error) {
		req := httptest.NewRequest(http.MethodGet, base+"/Callback", nil)
		req.Header.Set("Cookie", a.flowCookieName(state)+"="+value)
		return a.readFlow(req, rs, state)
	}
	if got, err := check(fuzzFlowCookie, fuzzState); err != nil || got != fuzzFlowWas {
		f.Fatalf("the seed no longer opens: %+v, %v", got, err)
	}
	f.Add(fuzzFlowCookie, fuzzState)
	f.Add(fuzzFlowCookie, fuzzState[:flowNameLen]+"x")           // same cookie name, other state
	f.Add(fuzzFlowCookie, fuzzState+"x")                         // a longer state
	f.Add(fuzzFlowCookie[:len(fuzzFlowCookie)-1]+"A", fuzzState) // tag changed
	f.Add(`"`+fuzzFlowCookie+`"`, fuzzState)                     // quoted
	f.Add("", "")
	f.Add("AA", "x")
	f.Fuzz(func(t *testing.T, value, state string) {
		got, err := check(value, state)
		if err != nil {
			return
		}
		req := httptest.NewRequest(http.MethodGet, base+"/Callback", nil)
		req.Header.Set("Cookie", a.flowCookieName(state)+"="+value)
		c, _ := req.Cookie(a.flowCookieName(state))
		if state != fuzzState || got != fuzzFlowWas || c == nil || !sameSealed(c.Value, fuzzFlowCookie) {
			t.Fatalf("accepted a flow cookie %q for state %q that was never sealed for it: %+v", value, state, got)
		}
	})
}

// FuzzSessionCookie: readSession over any Cookie header value never panics
// and accepts only the value sealed under the key.
func FuzzSessionCookie(f *testing.F) {
	a, rs := fuzzApp(f)
	name := a.sessionCookieName()
	read := func(value string) (session, bool, *http.Cookie) {
		req := httptest.NewRequest(http.MethodGet, base+"/ListMessages", nil)
		req.Header.Set("Cookie", name+"="+value)
		s, ok := a.readSession(req, rs)
		c, _ := req.Cookie(name)
		return s, ok, c
	}
	if got, ok, _ := read(fuzzSessionCookie); !ok || got != fuzzSessionWas {
		f.Fatalf("the seed no longer opens: %+v", got)
	}
	f.Add(fuzzSessionCookie)
	f.Add(fuzzFlowCookie) // sealed under the same key, for another name
	f.Add(fuzzSessionCookie[:len(fuzzSessionCookie)/2])
	f.Add(`"` + fuzzSessionCookie + `"`)
	f.Add(fuzzSessionCookie + "; " + name + "=x")
	f.Add("")
	f.Fuzz(func(t *testing.T, value string) {
		got, ok, c := read(value)
		if !ok {
			return
		}
		if got != fuzzSessionWas || c == nil || !sameSealed(c.Value, fuzzSessionCookie) {
			t.Fatalf("accepted a session cookie %q that was never sealed: %+v", value, got)
		}
	})
}

// FuzzParseListQuery: parseListQuery over any query string never panics,
// and whatever it accepts is within Gmail's limits and the function's.
func FuzzParseListQuery(f *testing.F) {
	for _, s := range []string{
		"", "maxResults=500", "maxResults=501", "format=metadata&maxResults=250", "all=true&limit=600",
		"limit=5", "all=true&format=metadata&limit=250", "labelIds=INBOX&labelIds=UNREAD&q=is:unread",
		"pageToken=abc&includeSpamTrash=true", "maxResults=-1", "maxResults=+7", "maxResults=0x10", "user=1",
		"q=%zz", "a=1;b=2", "maxResults=1&maxResults=2",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, _ := url.ParseQuery(raw) // as r.URL.Query(): bad pairs dropped
		q, err := parseListQuery(v)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a message")
			}
			return
		}
		for k, vals := range v {
			if !listParams[k] {
				t.Fatalf("accepted unknown parameter %q", k)
			}
			if k != "labelIds" && len(vals) > 1 {
				t.Fatalf("accepted %s given %d times", k, len(vals))
			}
		}
		maxPage := int64(messages.MaxPageSize)
		if q.Metadata {
			maxPage = messages.MaxMetadataResults
		}
		switch {
		case q.MaxResults < 0 || q.MaxResults > maxPage || (q.MaxResults == 0 && v.Get("maxResults") != ""):
			t.Fatalf("maxResults %d accepted (metadata %v)", q.MaxResults, q.Metadata)
		case q.Limit != 0 && !q.All:
			t.Fatalf("limit %d without all=true", q.Limit)
		case q.Limit < 0 || q.Limit > messages.MaxLimit:
			t.Fatalf("limit %d accepted", q.Limit)
		case q.All && q.Metadata && (q.Limit < 1 || q.Limit > messages.MaxMetadataResults):
			t.Fatalf("all=true with metadata and limit %d", q.Limit)
		case len(q.Q) > 2048 || q.Q != v.Get("q"):
			t.Fatalf("q %q accepted", q.Q)
		case len(q.LabelIDs) > 50:
			t.Fatalf("%d labelIds", len(q.LabelIDs))
		case len(q.PageToken) > 1024 || !printable(q.PageToken):
			t.Fatalf("pageToken %q accepted", q.PageToken)
		}
		for _, l := range q.LabelIDs {
			if l == "" || len(l) > 256 {
				t.Fatalf("labelId %q accepted", l)
			}
		}
	})
}

// FuzzReturnTo: whatever cleanReturnTo accepts is a path on this site,
// however a browser or http.Redirect reads it.
func FuzzReturnTo(f *testing.F) {
	for _, tt := range openRedirectAttempts {
		f.Add(tt.returnTo)
	}
	for _, s := range []string{"/", "/app", "/app/inbox?x=1&y=%2F", "/a#frag", "/a//b", "/%E2%9C%93"} {
		f.Add(s)
	}
	from, _ := url.Parse(base + "/Callback?state=s&code=c")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := cleanReturnTo(s)
		if err != nil {
			return
		}
		if s == "" {
			if got != "" {
				t.Fatalf("empty became %q", got)
			}
			return
		}
		if got != s || !strings.HasPrefix(got, "/") || strings.HasPrefix(got, "//") || strings.Contains(got, `\`) {
			t.Fatalf("accepted %q as %q", s, got)
		}
		for _, c := range got {
			if c < 0x20 || c == 0x7f {
				t.Fatalf("accepted a control character in %q", got)
			}
		}
		// Where a browser goes with Location: got.
		stays := func(how, loc string) {
			u, err := url.Parse(browserEscape(loc))
			if err != nil {
				t.Fatalf("%s: accepted %q, which does not parse: %v", how, loc, err)
			}
			if to := from.ResolveReference(u); to.Scheme != from.Scheme || to.Host != from.Host || to.User != nil || strings.HasPrefix(to.EscapedPath(), "//") {
				t.Fatalf("%s: %q leads to %s", how, loc, to)
			}
		}
		stays("as given", got)
		// Where http.Redirect (the Callback's last step) sends it.
		rec := httptest.NewRecorder()
		http.Redirect(rec, httptest.NewRequest(http.MethodGet, from.String(), nil), got, http.StatusFound)
		stays("through http.Redirect", rec.Header().Get("Location"))
		// And a server that decodes the path once more before redirecting
		// (when what it gets is still a URL: "/%25" decodes to "/%").
		if dec, err := url.PathUnescape(got); err == nil {
			if _, err := url.Parse(dec); err == nil {
				stays("decoded", dec)
			}
		}
	})
}

// browserEscape percent-encodes what a browser encodes in a Location before
// it resolves it (spaces, quotes, controls, non-ASCII), keeping every
// existing escape as it is, so that url.Parse sees the path the browser
// requests.
func browserEscape(loc string) string {
	var b strings.Builder
	for i := 0; i < len(loc); i++ {
		c := loc[i]
		if c <= 0x20 || c >= 0x7f || strings.IndexByte("\"<>`{}|^", c) >= 0 {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
