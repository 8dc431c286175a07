package app

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"sort"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/config"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/firestoretest"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/tokenstore/firestorestore"
)

// The helpers of the tests and the figures of what clients see when a
// dependency fails: real components, real clock, real HTTP.

// onFirestore makes the harness's App keep its records in the emulator,
// through a connection of its own, on project, with the configuration's
// STORE_TIMEOUT (the default when the test sets none).
func onFirestore(t testing.TB, project string) harnessOpt {
	return func(c *config.Config, d *Deps) {
		fs, _ := firestoretest.NewProjectClient(context.Background(), t, project)
		st := firestorestore.New(fs, firestorestore.DefaultCollection)
		st.Timeout = c.StoreTimeout
		d.Store = st
	}
}

// serveHTTP serves the harness's functions over real HTTP, at /NAME.
func (h *harness) serveHTTP() *httptest.Server {
	mux := http.NewServeMux()
	for name, fn := range h.app.Handlers() {
		mux.Handle("/"+name, fn)
	}
	srv := httptest.NewServer(mux)
	h.t.Cleanup(srv.Close)
	return srv
}

// sessions logs in n users (user0@example.com, ...) and returns each one's
// session cookie, as a Cookie header value.
func (h *harness) sessions(n int) []string {
	h.t.Helper()
	name := h.app.sessionCookieName()
	out := make([]string, n)
	for i := range n {
		h.jar = map[string]string{}
		wantStatus(h.t, h.login(userN(i)), http.StatusOK)
		out[i] = name + "=" + h.jar[name]
	}
	h.jar = map[string]string{}
	return out
}

func userN(i int) string { return fmt.Sprintf("user%d@example.com", i) }

// shot is one request as its client saw it.
type shot struct {
	start, end time.Time
	status     int // 0: no answer (err)
	retryAfter string
	err        error
}

func (s shot) took() time.Duration { return s.end.Sub(s.start) }

// send sends req with client and notes the answer.
func send(client *http.Client, req *http.Request) shot {
	s := shot{start: time.Now()}
	resp, err := client.Do(req)
	if err != nil {
		s.end, s.err = time.Now(), err
		return s
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	s.end, s.status, s.retryAfter = time.Now(), resp.StatusCode, resp.Header.Get("Retry-After")
	return s
}

// load is clients sending requests in a loop until stopped.
type load struct {
	stop  chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	shots []shot
}

// startLoad starts n clients; client i sends next(i) over and over.
func startLoad(n int, next func(i int) shot) *load {
	l := &load{stop: make(chan struct{})}
	for i := range n {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				s := next(i)
				l.mu.Lock()
				l.shots = append(l.shots, s)
				l.mu.Unlock()
			}
		})
	}
	return l
}

// firstAfter returns the first answer with status that ended after t, and
// whether there is one yet.
func (l *load) firstAfter(t time.Time, status int) (shot, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var first shot
	found := false
	for _, s := range l.shots {
		if s.status == status && s.end.After(t) && (!found || s.end.Before(first.end)) {
			first, found = s, true
		}
	}
	return first, found
}

// finish stops the clients, waits for their last requests and returns every
// answer, in the order they started.
func (l *load) finish() []shot {
	close(l.stop)
	l.wg.Wait()
	sort.Slice(l.shots, func(i, j int) bool { return l.shots[i].start.Before(l.shots[j].start) })
	return l.shots
}

// snapshotDocs returns the documents of the collection, by id.
func snapshotDocs(t testing.TB, fs *firestore.Client) map[string]map[string]any {
	t.Helper()
	snaps, err := fs.Collection(firestorestore.DefaultCollection).Documents(context.Background()).GetAll()
	if err != nil {
		t.Fatal(err)
	}
	docs := map[string]map[string]any{}
	for _, s := range snaps {
		docs[s.Ref.ID] = s.Data()
	}
	return docs
}

// restoreDocs writes docs back, as Firestore would still hold them after an
// outage (the emulator loses them when it is stopped).
func restoreDocs(t testing.TB, fs *firestore.Client, docs map[string]map[string]any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for id, d := range docs {
		if _, err := fs.Collection(firestorestore.DefaultCollection).Doc(id).Set(ctx, d); err != nil {
			t.Fatalf("restore %s after the restart: %v", id, err)
		}
	}
}

// resources are the process's goroutines and open file descriptors.
type resources struct{ goroutines, fds int }

func countResources() resources {
	fds, _ := os.ReadDir("/proc/self/fd")
	return resources{runtime.NumGoroutine(), len(fds)}
}

// countResourcesBut is countResources without what p holds.
func countResourcesBut(p *firestoretest.Proxy) resources {
	r := countResources()
	g, f := p.Held()
	return resources{r.goroutines - g, r.fds - f}
}

// settlesToBy waits up to d for the counts taken by count to come back to
// base (plus slack for the runtime's own), and returns the last counts and
// whether they did.
func settlesToBy(count func() resources, base resources, slack int, d time.Duration) (resources, bool) {
	deadline := time.Now().Add(d)
	for {
		now := count()
		if now.goroutines <= base.goroutines+slack && now.fds <= base.fds+slack {
			return now, true
		}
		if time.Now().After(deadline) {
			return now, false
		}
		time.Sleep(50 * time.Millisecond)
	}
}
