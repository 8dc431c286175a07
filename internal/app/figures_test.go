package app

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/config"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/fakegoogle"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/fakesecretmanager"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/firestoretest"
)

// TestFaultFigures measures what clients see when a dependency fails: the
// figures behind the README's "When something fails" table, with real
// components (the Firestore emulator killed and restarted, a Secret Manager
// that stops answering, real HTTP). It takes a minute or two, and runs only
// when asked:
//
//	FAULT_FIGURES=1 go test ./internal/app -run TestFaultFigures -count=1 -v -timeout 20m
func TestFaultFigures(t *testing.T) {
	if os.Getenv("FAULT_FIGURES") == "" {
		t.Skip("set FAULT_FIGURES=1 to measure")
	}
	t.Run("Firestore down 5 s, 20 clients", firestoreDownFigures)
	t.Run("Secret Manager not answering, warm instance past SECRET_TTL, 20 clients", secretsWarmFigures)
	t.Run("Secret Manager not answering, cold start", secretsColdFigures)
	t.Run("10 MB chunked POST to Disconnect", chunkedDisconnectFigures)
	t.Run("login_hint=%FF%FE%C0%AF", func(t *testing.T) {
		h := newHarness(t)
		resp := h.get("/Authorize?login_hint=%FF%FE%C0%AF", "Accept", jsonAccept)
		t.Logf("FIGURE login_hint=%%FF%%FE%%C0%%AF: status %d %s", resp.StatusCode, strings.TrimSpace(body(resp)))
	})
}

// summary describes answers: how many, by status, how many over 10 s, the
// slowest, and whether each 503 carried Retry-After.
func summary(shots []shot) string {
	by := map[string]int{}
	over10, noRetryAfter := 0, 0
	var slowest time.Duration
	for _, s := range shots {
		k := fmt.Sprint(s.status)
		if s.err != nil {
			k = "no answer"
		}
		by[k]++
		if s.took() > 10*time.Second {
			over10++
		}
		if s.status == http.StatusServiceUnavailable && s.retryAfter == "" {
			noRetryAfter++
		}
		slowest = max(slowest, s.took())
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(by)) {
		parts = append(parts, fmt.Sprintf("%s×%d", k, by[k]))
	}
	return fmt.Sprintf("%d requests (%s); %d over 10 s; slowest %v; 503 without Retry-After: %d",
		len(shots), strings.Join(parts, ", "), over10, slowest.Round(10*time.Millisecond), noRetryAfter)
}

func firestoreDownFigures(t *testing.T) {
	const clients = 20
	project := firestoretest.ProjectID(t)
	h := newHarness(t, onFirestore(t, project))
	seed, _ := firestoretest.NewProjectClient(context.Background(), t, project)
	srv := h.serveHTTP()
	cookies := h.sessions(clients)
	client := &http.Client{Timeout: 30 * time.Second}
	l := startLoad(clients, func(i int) shot {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/ListMessages", nil)
		req.Header.Set("Cookie", cookies[i])
		req.Header.Set("Accept", jsonAccept)
		return send(client, req)
	})
	time.Sleep(time.Second)
	docs := snapshotDocs(t, seed)

	down := time.Now()
	firestoretest.Stop(t)
	time.Sleep(5 * time.Second)
	firestoretest.Restart(t)
	answering := time.Now()
	restoreDocs(t, seed, docs)
	back := time.Now()
	for deadline := back.Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, ok := l.firstAfter(back, http.StatusOK); ok {
			break
		}
	}
	first, ok := l.firstAfter(back, http.StatusOK)
	shots := l.finish()

	var during []shot
	for _, s := range shots {
		if s.start.Before(back) && s.end.After(down) {
			during = append(during, s)
		}
	}
	t.Logf("FIGURE Firestore down %v (killed; restarted and answering after %v; documents back after %v)",
		back.Sub(down).Round(100*time.Millisecond), answering.Sub(down).Round(100*time.Millisecond), back.Sub(down).Round(100*time.Millisecond))
	t.Logf("FIGURE   answers to requests in flight during the outage: %s", summary(during))
	if ok {
		t.Logf("FIGURE   first 200 after Firestore is back: %v (request started %v after)",
			first.end.Sub(back).Round(10*time.Millisecond), first.start.Sub(back).Round(10*time.Millisecond))
	} else {
		t.Logf("FIGURE   no 200 within 60 s after Firestore is back")
	}
}

// onSecretManagerRealClock puts the secrets in a fake Secret Manager and
// runs the App on the real clock, with a short SECRET_TTL.
func onSecretManagerRealClock(t testing.TB, sm *fakesecretmanager.Server, ttl time.Duration) []harnessOpt {
	return []harnessOpt{fromSecretManager(t, sm), func(c *config.Config, d *Deps) {
		c.SecretTTL = ttl
		d.Now = time.Now
	}}
}

func authorizeJSON(client *http.Client, url string) shot {
	req, _ := http.NewRequest(http.MethodGet, url+"/Authorize", nil)
	req.Header.Set("Accept", jsonAccept)
	return send(client, req)
}

func secretsWarmFigures(t *testing.T) {
	const clients, ttl = 20, time.Second
	sm := fakesecretmanager.Start(t)
	h := newHarness(t, onSecretManagerRealClock(t, sm, ttl)...)
	srv := h.serveHTTP()
	client := &http.Client{Timeout: 30 * time.Second}
	if s := authorizeJSON(client, srv.URL); s.status != http.StatusOK {
		t.Fatalf("warm-up: %d %v", s.status, s.err)
	}
	authorize := func(int) shot { return authorizeJSON(client, srv.URL) }
	// The same load first with Secret Manager answering: on a busy machine
	// the load alone makes some answers slow, and only the difference is
	// Secret Manager's.
	l := startLoad(clients, authorize)
	time.Sleep(10 * time.Second)
	answering := l.finish()
	time.Sleep(ttl)
	sm.SetHanging(true)
	l = startLoad(clients, authorize)
	time.Sleep(10 * time.Second)
	sm.SetHanging(false)
	hanging := l.finish()
	t.Logf("FIGURE the same load, Secret Manager answering: %s; %s", summary(answering), latencies(answering))
	t.Logf("FIGURE Secret Manager not answering for 10 s on a warm instance past SECRET_TTL: %s; %s", summary(hanging), latencies(hanging))
}

// latencies gives the median, the 99th percentile and how many answers
// took over 100 ms.
func latencies(shots []shot) string {
	if len(shots) == 0 {
		return "no answers"
	}
	d := make([]time.Duration, len(shots))
	over := 0
	for i, s := range shots {
		d[i] = s.took()
		if d[i] > 100*time.Millisecond {
			over++
		}
	}
	slices.Sort(d)
	return fmt.Sprintf("p50 %v, p99 %v, %d of %d over 100 ms", d[len(d)/2].Round(time.Millisecond),
		d[len(d)*99/100].Round(time.Millisecond), over, len(d))
}

func secretsColdFigures(t *testing.T) {
	sm := fakesecretmanager.Start(t)
	h := newHarness(t, onSecretManagerRealClock(t, sm, time.Minute)...)
	srv := h.serveHTTP()
	client := &http.Client{Timeout: 30 * time.Second}
	sm.SetHanging(true)
	s := authorizeJSON(client, srv.URL)
	t.Logf("FIGURE Secret Manager not answering, cold start: first request %d after %v (Retry-After %q)",
		s.status, s.took().Round(10*time.Millisecond), s.retryAfter)
	sm.SetHanging(false)
	back := time.Now()
	for time.Since(back) < 60*time.Second {
		if s = authorizeJSON(client, srv.URL); s.status == http.StatusOK {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("FIGURE   first 200 after Secret Manager answers again: %v (status %d)", time.Since(back).Round(10*time.Millisecond), s.status)
}

func chunkedDisconnectFigures(t *testing.T) {
	h := newHarness(t)
	srv := h.serveHTTP()
	cookie := h.sessions(1)[0]
	h.fake.ResetCounts()
	// A reader of unknown length: the client sends it chunked.
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/Disconnect", io.LimitReader(zeros{}, 10<<20))
	req.Header.Set("Cookie", cookie)
	s := send(http.DefaultClient, req)
	t.Logf("FIGURE 10 MB chunked POST to Disconnect: status %d (client error: %v) after %v; revocations at Google: %d; record still stored: %v",
		s.status, s.err, s.took().Round(time.Millisecond), h.fake.Count(fakegoogle.CountRevoke), h.record(userN(0)) != nil)
}

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }
