package app

// Handler benchmarks against the in-process fake Google, with no injected
// latency:
//
//	go test -run '^$' -bench . -benchtime 2s ./internal/app/
//
// Each op calls the function's http.HandlerFunc directly (no HTTP server in
// front of it); its calls to Google go over loopback HTTP to the fake, whose
// own work (JSON, RSA-signed id_tokens on the token endpoint) is part of
// the measured time. The fake's quota is off and this instance's Gmail
// quota accounting never binds, so that b.N requests for one user are not
// throttled. See BENCHMARKS.md.

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/config"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/fakegoogle"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/messages"
)

const benchSession = "__Host-gmail_session"

// newBenchHarness is a harness whose fake Google has no Gmail quota and
// whose App counts its quota but never waits for it.
func newBenchHarness(b *testing.B, opts ...harnessOpt) *harness {
	b.Helper()
	return newLatencyBenchHarness(b, 0, opts...)
}

// newLatencyBenchHarness is newBenchHarness with latency added by the fake
// Google to every answer.
func newLatencyBenchHarness(b *testing.B, latency time.Duration, opts ...harnessOpt) *harness {
	b.Helper()
	h := newHarness(b, opts...)
	// The same client, keys and clock as the harness's fake, without the
	// quota: every request to the fake's URL goes to it.
	fake := fakegoogle.New(fakegoogle.Options{Now: h.clock.Now, RedirectURIs: []string{base + "/Callback"}, GmailQuotaPerMinute: -1, Latency: latency})
	h.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		fake.ServeHTTP(w, r)
		return true
	})
	h.fake = fake
	h.app.mail = messages.New(messages.Options{
		Endpoint:            h.cfg.Endpoints.Gmail,
		MetadataConcurrency: h.cfg.MetadataConcurrency,
		BatchSize:           h.cfg.GmailBatchSize,
		RetryBudget:         h.cfg.GmailRetryBudget,
		QuotaPerMinute:      1 << 40, // accounted as in production, never exhausted
	})
	return h
}

// benchLoggedIn is a bench harness with the demo user logged in; it
// returns the session cookie.
func benchLoggedIn(b *testing.B, opts ...harnessOpt) (*harness, *http.Cookie) {
	b.Helper()
	h := newBenchHarness(b, opts...)
	wantStatus(b, h.login(demo), http.StatusOK)
	return h, &http.Cookie{Name: benchSession, Value: h.jar[benchSession]}
}

// serveOnce calls the function name with a GET of target and the cookies,
// and fails unless it answers want.
func serveOnce(b *testing.B, fn http.HandlerFunc, method, target string, want int, cookies ...*http.Cookie) *recorder {
	req := httptest.NewRequest(method, base+target, nil)
	req.Header.Set("Accept", jsonAccept)
	for _, c := range cookies {
		req.AddCookie(c)
	}
	rec := newRecorder()
	fn(rec, req)
	if rec.status != want {
		b.Fatalf("%s %s: status %d, want %d: %s", method, target, rec.status, want, rec.buf.String())
	}
	return rec
}

// BenchmarkAuthorize: a flow cookie sealed and the authorization URL
// answered as JSON. No I/O.
func BenchmarkAuthorize(b *testing.B) {
	h := newBenchHarness(b)
	fn := h.app.Handlers()["Authorize"]
	serveOnce(b, fn, http.MethodGet, "/Authorize?login_hint="+demo, http.StatusOK) // secrets loaded
	b.ReportAllocs()
	for b.Loop() {
		serveOnce(b, fn, http.MethodGet, "/Authorize?login_hint="+demo, http.StatusOK)
	}
}

// pendingCallback runs Authorize and the fake's consent for email and
// returns the Callback target and the flow cookie.
func pendingCallback(h *harness, email string) (string, *http.Cookie) {
	h.jar = map[string]string{}
	redirect := h.consent(h.authorize("login_hint="+url.QueryEscape(email)), email, true, true)
	for name, v := range h.jar {
		if strings.HasPrefix(name, "__Host-oauth_flow_") {
			return strings.TrimPrefix(redirect, base), &http.Cookie{Name: name, Value: v}
		}
	}
	h.t.Fatal("Authorize set no flow cookie")
	return "", nil
}

// BenchmarkCallback: one whole code exchange per op (the fake's token
// endpoint signs an id_token), the id_token's claims checked, the record
// upserted in a transaction and the session cookie sealed. Authorize and
// the consent page are outside the timer.
//
// NewUser: Google sends a refresh token, which is sealed and stored.
// ReturningUser: no refresh token comes; the stored one is kept.
func BenchmarkCallback(b *testing.B) {
	for _, returning := range []bool{false, true} {
		name := "NewUser"
		if returning {
			name = "ReturningUser"
		}
		b.Run(name, func(b *testing.B) {
			h := newBenchHarness(b)
			fn := h.app.Handlers()["Callback"]
			if returning {
				wantStatus(b, h.login(demo), http.StatusOK)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				b.StopTimer()
				email := demo
				if !returning {
					email = fmt.Sprintf("user%d@example.com", i)
					i++
				}
				target, flow := pendingCallback(h, email)
				b.StartTimer()
				serveOnce(b, fn, http.MethodGet, target, http.StatusOK, flow)
			}
			b.StopTimer()
			if n := h.fake.Count(fakegoogle.CountTokenCode); n < b.N {
				b.Fatalf("%d code exchanges for %d ops", n, b.N)
			}
		})
	}
}

// BenchmarkListMessages_TokenValid: the session opened, the record read and
// the access token opened, one Gmail list of 100 messages.
func BenchmarkListMessages_TokenValid(b *testing.B) {
	h, session := benchLoggedIn(b)
	fn := h.app.Handlers()["ListMessages"]
	h.fake.ResetCounts()
	b.ReportAllocs()
	for b.Loop() {
		serveOnce(b, fn, http.MethodGet, "/ListMessages", http.StatusOK, session)
	}
	b.StopTimer()
	if r, l := h.fake.Count(fakegoogle.CountTokenRefresh), h.fake.Count(fakegoogle.CountGmailList); r != 0 || l != b.N {
		b.Fatalf("%d refreshes and %d lists for %d ops; want 0 and %d", r, l, b.N, b.N)
	}
}

// BenchmarkListMessages_TokenValidParallel: as TokenValid, from
// GOMAXPROCS goroutines at once, one user.
func BenchmarkListMessages_TokenValidParallel(b *testing.B) {
	h, session := benchLoggedIn(b)
	fn := h.app.Handlers()["ListMessages"]
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			serveOnce(b, fn, http.MethodGet, "/ListMessages", http.StatusOK, session)
		}
	})
}

// BenchmarkListMessages_TokenExpired: the access token has expired at every
// op (the clock moves an hour), so each op refreshes it at the fake's token
// endpoint, writes it back sealed, then lists.
func BenchmarkListMessages_TokenExpired(b *testing.B) {
	// A session that outlives the hours the clock moves.
	h, session := benchLoggedIn(b, func(c *config.Config, _ *Deps) { c.SessionTTL = 100_000 * time.Hour })
	fn := h.app.Handlers()["ListMessages"]
	h.fake.ResetCounts()
	b.ReportAllocs()
	for b.Loop() {
		h.clock.Advance(time.Hour)
		serveOnce(b, fn, http.MethodGet, "/ListMessages", http.StatusOK, session)
	}
	b.StopTimer()
	if n := h.fake.Count(fakegoogle.CountTokenRefresh); n != b.N {
		b.Fatalf("%d refreshes for %d ops", n, b.N)
	}
}

// BenchmarkListMessages_Metadata: one list of 10 messages and one batch
// request of their 10 messages.get calls, merged in page order.
func BenchmarkListMessages_Metadata(b *testing.B) {
	h, session := benchLoggedIn(b)
	fn := h.app.Handlers()["ListMessages"]
	h.fake.ResetCounts()
	b.ReportAllocs()
	for b.Loop() {
		serveOnce(b, fn, http.MethodGet, "/ListMessages?format=metadata&maxResults=10", http.StatusOK, session)
	}
	b.StopTimer()
	if n, p := h.fake.Count(fakegoogle.CountGmailBatch), h.fake.Count(fakegoogle.CountGmailBatchPart); n != b.N || p != 10*b.N {
		b.Fatalf("%d batches of %d gets in all for %d ops", n, p, b.N)
	}
}

// BenchmarkListMessages_MetadataVsPlain_Latency20ms: the latency of
// format=metadata&maxResults=100 against that of a plain listing of the
// same 100 messages, with 20 ms added by the fake Google to every answer,
// one request at a time. Each op serves one of each, so both are measured
// in the same run; the metrics are their mean latencies and the ratio.
//
//	go test -run '^$' -bench MetadataVsPlain -benchtime 40x -count 5 ./internal/app/
func BenchmarkListMessages_MetadataVsPlain_Latency20ms(b *testing.B) {
	h := newLatencyBenchHarness(b, 20*time.Millisecond)
	wantStatus(b, h.login(demo), http.StatusOK)
	session := &http.Cookie{Name: benchSession, Value: h.jar[benchSession]}
	fn := h.app.Handlers()["ListMessages"]
	var plain, metadata time.Duration
	for b.Loop() {
		start := time.Now()
		serveOnce(b, fn, http.MethodGet, "/ListMessages?maxResults=100", http.StatusOK, session)
		mid := time.Now()
		serveOnce(b, fn, http.MethodGet, "/ListMessages?format=metadata&maxResults=100", http.StatusOK, session)
		plain, metadata = plain+mid.Sub(start), metadata+time.Since(mid)
	}
	n := float64(b.N)
	b.ReportMetric(plain.Seconds()*1000/n, "plain-ms")
	b.ReportMetric(metadata.Seconds()*1000/n, "metadata-ms")
	b.ReportMetric(metadata.Seconds()/plain.Seconds(), "ratio")
}

// BenchmarkDisconnect: the refresh token revoked at the fake and the record
// deleted. The login before each op is outside the timer.
func BenchmarkDisconnect(b *testing.B) {
	h := newBenchHarness(b)
	fn := h.app.Handlers()["Disconnect"]
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		h.jar = map[string]string{}
		wantStatus(b, h.login(demo), http.StatusOK)
		session := &http.Cookie{Name: benchSession, Value: h.jar[benchSession]}
		b.StartTimer()
		serveOnce(b, fn, http.MethodPost, "/Disconnect", http.StatusOK, session)
	}
	b.StopTimer()
	if n := h.fake.Count(fakegoogle.CountRevoke); n != b.N {
		b.Fatalf("%d revocations for %d ops", n, b.N)
	}
}
