package app

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/fakegoogle"
)

// TestBadInput_RefusedBeforeAnythingHappens sends bad input over real HTTP:
// a body too large is refused with 413 however it is sent (a chunked body
// declares no length), before Disconnect revokes or deletes anything; a
// login_hint that is not an email address (or Google's numeric account id)
// of at most 320 bytes of valid UTF-8 is refused with 400.
func TestBadInput_RefusedBeforeAnythingHappens(t *testing.T) {
	const chunked = -1
	hint := func(v string) string { return "/Authorize?login_hint=" + v }
	tests := []struct {
		name    string
		method  string
		target  string
		body    int64 // bytes of body; 0: none
		length  int64 // the declared length; chunked: none
		want    int
		revoked bool // Disconnect went ahead
	}{
		{"Disconnect, 10 MB chunked body", http.MethodPost, "/Disconnect", 10 << 20, chunked, http.StatusRequestEntityTooLarge, false},
		{"Disconnect, chunked body one byte over the limit", http.MethodPost, "/Disconnect", MaxBodyBytes + 1, chunked, http.StatusRequestEntityTooLarge, false},
		{"Disconnect, chunked body at the limit", http.MethodPost, "/Disconnect", MaxBodyBytes, chunked, http.StatusOK, true},
		{"Disconnect, 10 MB body with its length", http.MethodPost, "/Disconnect", 10 << 20, 10 << 20, http.StatusRequestEntityTooLarge, false},
		{"Disconnect, no body", http.MethodPost, "/Disconnect", 0, 0, http.StatusOK, true},
		{"Authorize, 10 MB chunked body", http.MethodGet, hint(demo), 10 << 20, chunked, http.StatusRequestEntityTooLarge, false},
		{"login_hint not UTF-8 (%FF%FE%C0%AF)", http.MethodGet, hint("%FF%FE%C0%AF"), 0, 0, http.StatusBadRequest, false},
		{"login_hint of 321 bytes", http.MethodGet, hint(strings.Repeat("a", 64) + "@" + strings.Repeat("d", 252) + ".com"), 0, 0, http.StatusBadRequest, false},
		{"login_hint of 320 bytes", http.MethodGet, hint(strings.Repeat("a", 64) + "@" + strings.Repeat("d", 251) + ".com"), 0, 0, http.StatusOK, false},
		{"login_hint with a local part of 65 bytes", http.MethodGet, hint(strings.Repeat("a", 65) + "@example.com"), 0, 0, http.StatusBadRequest, false},
		{"login_hint without @", http.MethodGet, hint("alice.example.com"), 0, 0, http.StatusBadRequest, false},
		{"login_hint with two @", http.MethodGet, hint("alice@bob@example.com"), 0, 0, http.StatusBadRequest, false},
		{"login_hint with an empty local part", http.MethodGet, hint("@example.com"), 0, 0, http.StatusBadRequest, false},
		{"login_hint with a domain without a dot", http.MethodGet, hint("alice@localhost"), 0, 0, http.StatusBadRequest, false},
		{"login_hint with an empty label", http.MethodGet, hint("alice@example..com"), 0, 0, http.StatusBadRequest, false},
		{"login_hint with a control character", http.MethodGet, hint("al%01ice@example.com"), 0, 0, http.StatusBadRequest, false},
		{"login_hint with a newline", http.MethodGet, hint("alice@example.com%0D%0A"), 0, 0, http.StatusBadRequest, false},
		{"login_hint with a space", http.MethodGet, hint("alice%20smith@example.com"), 0, 0, http.StatusBadRequest, false},
		{"login_hint with a right-to-left override", http.MethodGet, hint("alice%E2%80%AE@example.com"), 0, 0, http.StatusBadRequest, false},
		{"login_hint of 256 digits", http.MethodGet, hint(strings.Repeat("1", 256)), 0, 0, http.StatusBadRequest, false},
		{"login_hint, an email", http.MethodGet, hint(url.QueryEscape(demo)), 0, 0, http.StatusOK, false},
		{"login_hint, an email with a non-ASCII local part", http.MethodGet, hint("jos%C3%A9@example.com"), 0, 0, http.StatusOK, false},
		{"login_hint, Google's numeric account id", http.MethodGet, hint("110169484474386276334"), 0, 0, http.StatusOK, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			srv := h.serveHTTP()
			cookie := h.sessions(1)[0]
			h.fake.ResetCounts()
			var body io.Reader
			if tt.body > 0 {
				// A reader of no known length is sent chunked; one of
				// known length with Content-Length.
				body = io.LimitReader(zeros{}, tt.body)
				if tt.length >= 0 {
					body = bytes.NewReader(make([]byte, tt.body))
				}
			}
			req, _ := http.NewRequest(tt.method, srv.URL+tt.target, body)
			req.Header.Set("Cookie", cookie)
			req.Header.Set("Accept", jsonAccept)
			s := send(http.DefaultClient, req)
			if s.err != nil || s.status != tt.want {
				t.Fatalf("status %d (%v), want %d", s.status, s.err, tt.want)
			}
			revoked, stored := h.fake.Count(fakegoogle.CountRevoke) > 0, h.record(userN(0)) != nil
			if revoked != tt.revoked || stored == tt.revoked {
				t.Errorf("revoked at Google %v, record still stored %v; want Disconnect to have gone ahead: %v", revoked, stored, tt.revoked)
			}
		})
	}
}
