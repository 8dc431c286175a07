package app

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/config"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/fakegoogle"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/messages"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/tokenstore"
)

func loggedIn(t testing.TB, opts ...harnessOpt) *harness {
	t.Helper()
	h := newHarness(t, opts...)
	wantStatus(t, h.login(demo), http.StatusOK)
	h.fake.ResetCounts()
	h.store.ResetOps()
	return h
}

func TestListMessages_OnePage(t *testing.T) {
	h := loggedIn(t)
	resp := h.get("/ListMessages?maxResults=7&q=is:unread", "Accept", jsonAccept)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", resp.StatusCode, body(resp))
	}
	p := decode[messages.Page](t, resp)
	if len(p.Messages) != 7 || p.NextPageToken == "" || p.ResultSizeEstimate == 0 || p.Messages[0].ID == "" {
		t.Fatalf("page %+v", p)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type %q", ct)
	}
}

func TestListMessages_AllPages_StopsAtLimitWithNextPageToken(t *testing.T) {
	h := loggedIn(t)
	p := decode[messages.Page](t, h.get("/ListMessages?all=true&limit=600&includeSpamTrash=true"))
	if len(p.Messages) != 600 || p.NextPageToken == "" || h.fake.Count(fakegoogle.CountGmailList) != 2 {
		t.Fatalf("%d messages, token %q, %d calls", len(p.Messages), p.NextPageToken, h.fake.Count(fakegoogle.CountGmailList))
	}
	rest := decode[messages.Page](t, h.get("/ListMessages?all=true&limit=5000&includeSpamTrash=true&pageToken="+url.QueryEscape(p.NextPageToken)))
	if len(rest.Messages) != fakegoogle.DefaultMessagesPerUser-600 || rest.NextPageToken != "" {
		t.Fatalf("rest: %d messages, token %q", len(rest.Messages), rest.NextPageToken)
	}
	seen := map[string]bool{}
	for _, m := range append(p.Messages, rest.Messages...) {
		if seen[m.ID] {
			t.Fatalf("message %s listed twice", m.ID)
		}
		seen[m.ID] = true
	}
}

func TestListMessages_BadParameters_400(t *testing.T) {
	h := loggedIn(t)
	for _, q := range []string{
		"maxResults=0", "maxResults=501", "maxResults=abc", "maxResults=1&maxResults=2",
		"includeSpamTrash=maybe", "labelId=INBOX", "format=full", "format=metadata&maxResults=251",
		"limit=10", "all=true&limit=0", "all=true&limit=100000", "pageToken=a%20b", "user=" + h.fake.UserSub(demo),
		"q=" + strings.Repeat("a", 2049),
	} {
		t.Run(q[:min(len(q), 40)], func(t *testing.T) {
			e := decode[apiError](t, h.get("/ListMessages?"+q))
			if e.Code != "invalid_request" || e.Description == "" {
				t.Fatalf("answer %+v", e)
			}
		})
	}
	if h.fake.Count(fakegoogle.CountGmailList) != 0 {
		t.Fatal("bad parameters reached Gmail")
	}
}

func TestListMessages_NoAuthorization(t *testing.T) {
	tests := []struct {
		name  string
		setup func(h *harness)
	}{
		{"no session cookie", func(h *harness) { h.jar = map[string]string{} }},
		{"session expired", func(h *harness) { h.clock.Advance(h.cfg.SessionTTL + time.Second) }},
		{"session from another deployment's keys", func(h *harness) {
			other := newHarness(h.t)
			wantStatus(h.t, other.login(demo), http.StatusOK)
			h.jar = other.jar
		}},
		{"session but no stored token", func(h *harness) {
			h.store.Delete(context.Background(), h.fake.UserSub(demo))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := loggedIn(t)
			tt.setup(h)
			resp := h.get("/ListMessages", "Accept", jsonAccept)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d: %s", resp.StatusCode, body(resp))
			}
			if e := decode[apiError](t, resp); e.Code != "authorization_required" || !strings.HasPrefix(e.AuthorizationURL, base+"/Authorize") {
				t.Fatalf("answer %+v", e)
			}
			browser := h.get("/ListMessages?maxResults=5", "Accept", htmlAccept)
			if loc := browser.Header.Get("Location"); browser.StatusCode != http.StatusFound ||
				!strings.HasPrefix(loc, base+"/Authorize?") || !strings.Contains(loc, "return_to=%2FListMessages%3FmaxResults%3D5") {
				t.Fatalf("browser: %d %q", browser.StatusCode, loc)
			}
		})
	}
}

func TestListMessages_ExpiredAccessToken_RefreshesOnceAndWritesBack(t *testing.T) {
	h := loggedIn(t)
	h.clock.Advance(time.Hour) // both Google's and the stored expiry pass
	wantStatus(t, h.get("/ListMessages"), http.StatusOK)
	if n := h.fake.Count(fakegoogle.CountTokenRefresh); n != 1 {
		t.Fatalf("%d refreshes, want 1", n)
	}
	rec := h.record(demo)
	if !rec.AccessTokenExpiry.After(h.clock.Now().Add(ExpiryMargin)) || rec.RefreshedAt.IsZero() {
		t.Fatalf("refreshed token not written back: %+v", rec)
	}
	wantStatus(t, h.get("/ListMessages"), http.StatusOK)
	if n := h.fake.Count(fakegoogle.CountTokenRefresh); n != 1 {
		t.Fatalf("the written-back token was not reused: %d refreshes", n)
	}
}

func TestListMessages_RevokedGrant_ReauthorizationRequiredAndMarkedDead(t *testing.T) {
	h := loggedIn(t)
	h.fake.RevokeGrant(demo) // the user removed the app in their Google Account
	resp := h.get("/ListMessages", "Accept", jsonAccept)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status %d: %s", resp.StatusCode, body(resp))
	}
	e := decode[apiError](t, resp)
	if e.Code != "reauthorization_required" || !strings.Contains(e.AuthorizationURL, "prompt=consent") {
		t.Fatalf("answer %+v", e)
	}
	// Gmail refused the access token, one refresh was tried and refused.
	if h.fake.Count(fakegoogle.CountGmailList) != 1 || h.fake.Count(fakegoogle.CountTokenRefresh) != 1 {
		t.Fatalf("counts %v", h.fake.Counts())
	}
	if rec := h.record(demo); rec.Status != tokenstore.StatusDead || rec.Usable() {
		t.Fatalf("record not marked dead: %+v", rec)
	}
	// The next request does not bother Google.
	h.fake.ResetCounts()
	if e := decode[apiError](t, h.get("/ListMessages", "Accept", jsonAccept)); e.Code != "reauthorization_required" {
		t.Fatalf("answer %+v", e)
	}
	if len(h.fake.Counts()) != 0 && (h.fake.Count(fakegoogle.CountGmailList)+h.fake.Count(fakegoogle.CountTokenRefresh)) != 0 {
		t.Fatalf("a dead record still called Google: %v", h.fake.Counts())
	}
	// Authorizing again revives it.
	h.jar = map[string]string{}
	wantStatus(t, h.login(demo), http.StatusOK)
	if !h.record(demo).Usable() {
		t.Fatal("a new grant did not revive the record")
	}
	wantStatus(t, h.get("/ListMessages"), http.StatusOK)
}

func TestListMessages_Gmail401ThatRefreshDoesNotCure_ReauthorizationRequired(t *testing.T) {
	h := loggedIn(t)
	h.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasPrefix(r.URL.Path, "/gmail/") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":{"code":401,"message":"Invalid Credentials","errors":[{"reason":"authError"}],"status":"UNAUTHENTICATED"}}`))
			return true
		}
		return false
	})
	resp := h.get("/ListMessages", "Accept", htmlAccept)
	if resp.StatusCode != http.StatusFound || !strings.Contains(resp.Header.Get("Location"), "prompt=consent") {
		t.Fatalf("browser: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if n := h.fake.Count(fakegoogle.CountTokenRefresh); n != 1 {
		t.Fatalf("%d refreshes, want exactly one", n)
	}
	if h.record(demo).Usable() {
		t.Fatal("record still usable")
	}
}

func TestListMessages_GmailRateLimited_429WithRetryAfter(t *testing.T) {
	tests := []struct {
		fault  fakegoogle.Fault
		status int
	}{
		{fakegoogle.Fault{Status: 429, RetryAfter: "7"}, http.StatusTooManyRequests},
		{fakegoogle.Fault{Status: 403, Reason: "userRateLimitExceeded"}, http.StatusTooManyRequests},
		{fakegoogle.Fault{Status: 503}, http.StatusServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.fault.Status)+tt.fault.Reason, func(t *testing.T) {
			h := loggedIn(t)
			h.fake.InjectGmailFault(tt.fault, 100)
			resp := h.get("/ListMessages")
			if resp.StatusCode != tt.status || resp.Header.Get("Retry-After") == "" {
				t.Fatalf("status %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
			}
			if tt.fault.RetryAfter != "" && resp.Header.Get("Retry-After") != tt.fault.RetryAfter {
				t.Fatalf("Retry-After %q, want Google's %q", resp.Header.Get("Retry-After"), tt.fault.RetryAfter)
			}
		})
	}
}

func TestListMessages_TokenEndpointDown_503(t *testing.T) {
	h := loggedIn(t)
	h.clock.Advance(time.Hour)
	h.fake.InjectTokenFault(http.StatusServiceUnavailable, "", 1)
	resp := h.get("/ListMessages")
	if e := decode[apiError](t, resp); resp.StatusCode != http.StatusServiceUnavailable || e.Code != "unavailable" {
		t.Fatalf("%d %+v", resp.StatusCode, e)
	}
	if !h.record(demo).Usable() {
		t.Fatal("a Google outage killed the stored token")
	}
}

// failingStore fails every call.
type failingStore struct{ TokenStore }

var errStoreDown = errors.New("store down")

func (failingStore) Get(context.Context, string) (*tokenstore.Record, error) {
	return nil, errStoreDown
}
func (failingStore) Update(context.Context, string, func(*tokenstore.Record) (*tokenstore.Record, error)) (*tokenstore.Record, error) {
	return nil, errStoreDown
}

func TestStoreUnavailable_503(t *testing.T) {
	h := loggedIn(t)
	down := newHarness(t, func(_ *config.Config, d *Deps) { d.Store = failingStore{d.Store} })
	// The same browser, Google and keys as h, but this App's store is down.
	down.app.keys, down.app.client, down.app.hc = h.app.keys, h.app.client, h.app.hc
	down.app.cfg.Endpoints, down.app.mail = h.app.cfg.Endpoints, h.app.mail
	down.jar, down.fake, down.fakeURL = h.jar, h.fake, h.fakeURL

	resp := down.get("/ListMessages")
	if e := decode[apiError](t, resp); resp.StatusCode != http.StatusServiceUnavailable || e.Code != "unavailable" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("ListMessages: %d %+v", resp.StatusCode, e)
	}
	const other = "other@example.com"
	redirect := down.consent(down.authorize("login_hint="+other), other, true, true)
	resp = down.callback(redirect, "Accept", jsonAccept)
	if e := decode[apiError](t, resp); resp.StatusCode != http.StatusServiceUnavailable || e.Code != "unavailable" {
		t.Fatalf("Callback: %d %+v", resp.StatusCode, e)
	}
}

// failingFetcher is a secret source that cannot be read.
type failingFetcher struct{}

func (failingFetcher) Fetch(context.Context) ([]byte, error) {
	return nil, errors.New("secret manager unreachable")
}

func TestSecretsUnavailable_503(t *testing.T) {
	h := newHarness(t, func(_ *config.Config, d *Deps) { d.Keys = failingFetcher{} })
	for _, path := range []string{"/Authorize", "/Callback?state=x&code=y", "/ListMessages"} {
		resp := h.get(path, "Accept", jsonAccept)
		if e := decode[apiError](t, resp); resp.StatusCode != http.StatusServiceUnavailable || e.Code != "unavailable" {
			t.Fatalf("%s: %d %+v", path, resp.StatusCode, e)
		}
	}
}
