package app

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/config"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/firestoretest"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/tokenstore/firestorestore"
)

// TestFirestoreDown_503WithinBudgetThenBackWithin2s takes Firestore away
// under the load of 20 clients listing messages, and brings it back on the
// same address. The functions reach the emulator through a
// firestoretest.Proxy, whose Cut resets every connection and refuses new
// ones, as a Firestore process killed on that port does, and whose Restore
// answers there again (a JVM restart of the emulator itself takes 20 to 40
// s here, and is what TestFaultFigures measures). While it is away every
// answer is 503 with Retry-After within STORE_TIMEOUT (plus a margin for a
// busy machine), none is a 500, and no answer at all takes over 10 s; once
// it is back the first 200 comes within 2 s, after the client's reconnect
// backoff; and no goroutine or file descriptor is left behind.
func TestFirestoreDown_503WithinBudgetThenBackWithin2s(t *testing.T) {
	const (
		clients = 20
		budget  = time.Second // STORE_TIMEOUT
		margin  = time.Second // scheduling, HTTP, a busy machine
		backIn  = 2 * time.Second
		hang    = 10 * time.Second // no answer of any kind takes longer
	)
	project := firestoretest.ProjectID(t)
	proxy := firestoretest.NewProxy(t)
	fs, _ := firestoretest.NewProjectClientAt(context.Background(), t, project, proxy.Addr())
	st := firestorestore.New(fs, firestorestore.DefaultCollection)
	h := newHarness(t, func(c *config.Config, d *Deps) { c.StoreTimeout, d.Store = budget, st })
	srv := h.serveHTTP()
	cookies := h.sessions(clients)
	client := &http.Client{Timeout: 30 * time.Second}
	list := func(i int) shot {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/ListMessages", nil)
		req.Header.Set("Cookie", cookies[i])
		req.Header.Set("Accept", jsonAccept)
		return send(client, req)
	}
	for i := range clients {
		if s := list(i); s.status != http.StatusOK {
			t.Fatalf("before the outage: user %d got %d %v", i, s.status, s.err)
		}
	}
	// The logins and first lists above ran with the default budget: the
	// emulator's first writes to a new project can take longer than 1 s on
	// a busy machine. The load below runs within the budget under test.
	st.Timeout = budget
	client.CloseIdleConnections()
	time.Sleep(100 * time.Millisecond) // the server's ends of those connections close
	// The proxy is the test's: its goroutines and descriptors are not the
	// functions'.
	count := func() resources { return countResourcesBut(proxy) }
	base := count()

	l := startLoad(clients, list)
	time.Sleep(200 * time.Millisecond)
	proxy.Cut()
	stopped := time.Now()
	// Long enough that each client has a request wholly inside the outage:
	// the one in flight at the stop ends within budget+margin, and the next
	// one within budget+margin more.
	time.Sleep(2*(budget+margin) + time.Second)
	restarting := time.Now()
	proxy.Restore(t)
	back := time.Now()
	for time.Since(back) < 10*time.Second {
		if _, ok := l.firstAfter(back, http.StatusOK); ok {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	first, ok := l.firstAfter(back, http.StatusOK)
	shots := l.finish()
	t.Logf("Firestore away %v; %d requests", back.Sub(stopped).Round(100*time.Millisecond), len(shots))

	during := 0
	for _, s := range shots {
		switch {
		case s.err != nil:
			t.Errorf("request at %v: no answer: %v", s.start.Sub(stopped).Round(time.Millisecond), s.err)
			continue
		case s.status == http.StatusServiceUnavailable && s.took() > budget+margin:
			t.Errorf("request at %v: answered 503 after %v; the budget is %v", s.start.Sub(stopped).Round(time.Millisecond), s.took(), budget)
		case s.took() > hang:
			// A request may make several store calls, each within the budget.
			t.Errorf("request at %v: answered %d after %v", s.start.Sub(stopped).Round(time.Millisecond), s.status, s.took())
		}
		switch {
		case s.start.After(stopped) && s.end.Before(restarting):
			during++
			if s.status != http.StatusServiceUnavailable || s.retryAfter == "" {
				t.Errorf("during the outage: %d with Retry-After %q, want 503 with Retry-After", s.status, s.retryAfter)
			}
		case s.status != http.StatusOK && s.status != http.StatusServiceUnavailable:
			t.Errorf("request at %v: %d", s.start.Sub(stopped).Round(time.Millisecond), s.status)
		}
	}
	if during < clients {
		t.Errorf("only %d requests ran wholly inside the outage, want at least %d", during, clients)
	}
	switch {
	case !ok:
		t.Errorf("no 200 within 10 s after Firestore was back")
	case first.end.Sub(back) > backIn:
		t.Errorf("first 200 %v after Firestore was back, want within %v", first.end.Sub(back).Round(time.Millisecond), backIn)
	default:
		t.Logf("first 200 %v after Firestore was back", first.end.Sub(back).Round(time.Millisecond))
	}

	// A connection goes back to the client's idle pool from the transport's
	// read loop, after the caller has read the body: one may turn idle
	// after a single CloseIdleConnections, and stay open (both ends) for
	// the pool's 90 s. The client's idle connections are the test's, not
	// the functions', so they are closed before every count.
	settled := func() resources {
		client.CloseIdleConnections()
		return count()
	}
	if now, ok := settlesToBy(settled, base, 5, 10*time.Second); !ok {
		t.Errorf("after the outage: %d goroutines and %d open files, against %d and %d before",
			now.goroutines, now.fds, base.goroutines, base.fds)
	}
}
