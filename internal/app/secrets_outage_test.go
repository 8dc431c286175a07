package app

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/config"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/fakesecretmanager"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/secrets"
)

// clientIDOf asks Authorize for Google's URL and returns the status and the
// client_id in it.
func clientIDOf(t *testing.T, client *http.Client, base string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/Authorize", nil)
	req.Header.Set("Accept", jsonAccept)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct {
		URL string `json:"authorization_url"`
	}
	json.NewDecoder(resp.Body).Decode(&v)
	u, _ := url.Parse(v.URL)
	return resp.StatusCode, u.Query().Get("client_id")
}

// TestSecretManager_WarmInstancePastTTL_NotAnswering_NoRequestWaits: once an
// instance holds its secrets, Secret Manager hanging or failing past
// SECRET_TTL delays no request, and a version added meanwhile is picked up
// once it answers again, without a restart.
//
// "Delays no request" is checked against the fetch deadline rather than a
// wall-clock figure: the renewals run for the whole outage (the fake holds
// or refuses every RPC until the deadline), so a request that waited on one
// would take the fetch deadline, secrets.DefaultFetchTimeout. Every request
// must answer within a quarter of it, which an in-memory Authorize does many
// times over even on a saturated machine; the figures themselves live in
// TestFaultFigures.
func TestSecretManager_WarmInstancePastTTL_NotAnswering_NoRequestWaits(t *testing.T) {
	const ttl, clients, limit = 300 * time.Millisecond, 5, secrets.DefaultFetchTimeout / 4
	for _, fault := range []struct {
		name string
		set  func(*fakesecretmanager.Server, bool)
		rpcs func(n int) bool // the RPCs the renewals may make
	}{
		// One renewal per secret, each hanging past the outage.
		{"hanging", (*fakesecretmanager.Server).SetHanging, func(n int) bool { return n == 2 }},
		// The client retries Unavailable within a renewal.
		{"unavailable", (*fakesecretmanager.Server).SetDown, func(n int) bool { return n >= 2 }},
	} {
		t.Run(fault.name, func(t *testing.T) {
			sm := fakesecretmanager.Start(t)
			var rotated []byte
			h := newHarness(t, append(onSecretManagerRealClock(t, sm, ttl), func(_ *config.Config, d *Deps) {
				b, _ := d.ClientSecret.Fetch(t.Context())
				rotated = bytes.ReplaceAll(b, []byte("fake-client-id"), []byte("rotated-client-id"))
			})...)
			srv := h.serveHTTP()
			client := &http.Client{Timeout: 30 * time.Second}
			if status, id := clientIDOf(t, client, srv.URL); status != http.StatusOK || id != "fake-client-id.apps.googleusercontent.com" {
				t.Fatalf("warm-up: %d, client_id %q", status, id)
			}

			authorize := func(int) shot { return authorizeJSON(client, srv.URL) }
			time.Sleep(ttl)
			fault.set(sm, true)
			before := sm.AccessCount()
			l := startLoad(clients, authorize)
			time.Sleep(500 * time.Millisecond)
			shots := l.finish()
			sm.AddVersion("oauth-client", rotated)
			fault.set(sm, false)
			var slowest time.Duration
			for _, s := range shots {
				slowest = max(slowest, s.took())
				if s.status != http.StatusOK || s.took() > limit {
					t.Errorf("request: %d after %v (%v), want 200 well inside the fetch deadline, within %v", s.status, s.took(), s.err, limit)
				}
			}
			if n := sm.AccessCount() - before; !fault.rpcs(n) {
				t.Errorf("%d fetches during the outage of %d requests, want one renewal per secret", n, len(shots))
			}

			back := time.Now()
			for {
				status, id := clientIDOf(t, client, srv.URL)
				if status == http.StatusOK && id == "rotated-client-id.apps.googleusercontent.com" {
					t.Logf("%d requests during the outage, the slowest %v; the rotated client in use %v after",
						len(shots), slowest.Round(time.Millisecond), time.Since(back).Round(time.Millisecond))
					break
				}
				if time.Since(back) > 10*time.Second {
					t.Fatalf("the rotated client is not in use 10 s after Secret Manager answers again (%d, %q)", status, id)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// TestSecretManager_ColdStart_NotAnswering_503Within5sThenRecovers: an
// instance that has no secrets yet asks for both at once, answers 503 with
// Retry-After within 5 s when Secret Manager does not answer, answers the
// next requests 503 at once rather than asking again, and recovers without
// a restart once Secret Manager answers.
func TestSecretManager_ColdStart_NotAnswering_503Within5sThenRecovers(t *testing.T) {
	sm := fakesecretmanager.Start(t)
	h := newHarness(t, onSecretManagerRealClock(t, sm, time.Minute)...)
	srv := h.serveHTTP()
	client := &http.Client{Timeout: 30 * time.Second}
	sm.SetHanging(true)

	first := make(chan shot, 1)
	go func() { first <- authorizeJSON(client, srv.URL) }()
	for begin := time.Now(); sm.AccessCount() < 2; time.Sleep(5 * time.Millisecond) {
		if time.Since(begin) > secrets.DefaultFetchTimeout/2 {
			t.Fatalf("%d secret fetched while the first request waits, want both at once", sm.AccessCount())
		}
	}
	s0 := <-first
	if s0.status != http.StatusServiceUnavailable || s0.retryAfter == "" || s0.took() > 5*time.Second {
		t.Fatalf("cold start, Secret Manager hanging: %d (Retry-After %q) after %v, want 503 with Retry-After within 5 s",
			s0.status, s0.retryAfter, s0.took())
	}
	asked := sm.AccessCount()
	if s := authorizeJSON(client, srv.URL); s.status != http.StatusServiceUnavailable || s.took() > time.Second {
		t.Errorf("the next request: %d after %v, want 503 at once", s.status, s.took())
	}
	if n := sm.AccessCount(); n != asked {
		t.Errorf("the next request asked Secret Manager again (%d fetches, then %d)", asked, n)
	}

	sm.SetHanging(false)
	back := time.Now()
	for {
		s := authorizeJSON(client, srv.URL)
		if s.status == http.StatusOK {
			t.Logf("first request: 503 after %v; first 200 %v after Secret Manager answers again",
				s0.took().Round(time.Millisecond), time.Since(back).Round(time.Millisecond))
			break
		}
		if time.Since(back) > secrets.DefaultRetryInterval+3*time.Second {
			t.Fatalf("still %d %v after Secret Manager answers again", s.status, time.Since(back))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
