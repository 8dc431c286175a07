package app

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/config"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/fakegoogle"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/firestoretest"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/tokenstore/firestorestore"
)

// TestRefreshFigures measures the figures of issue 9 point 2 and issue 8
// point 3: refreshes per burst when instances over one Firestore each get
// 25 concurrent requests for one user whose access token expired, and the
// token calls while Google's token endpoint answers 503 for 10 s under 20
// clients. It runs only when asked:
//
//	REFRESH_FIGURES=1 go test ./internal/app -run TestRefreshFigures -count=1 -v
func TestRefreshFigures(t *testing.T) {
	if os.Getenv("REFRESH_FIGURES") == "" {
		t.Skip("set REFRESH_FIGURES=1 to measure")
	}
	for _, n := range []int{2, 4} {
		t.Run(fmt.Sprintf("%d instances × 25 concurrent", n), func(t *testing.T) {
			project := firestoretest.ProjectID(t)
			// A minute per store call: the emulator's first writes can be
			// slow, and the figure is about refreshes, not budgets.
			slowStore := func(c *config.Config, _ *Deps) { c.StoreTimeout = time.Minute }
			h := newHarness(t, slowStore, onFirestore(t, project))
			apps := []*App{h.app}
			for range n - 1 {
				fs, _ := firestoretest.NewProjectClient(context.Background(), t, project)
				st := firestorestore.New(fs, firestorestore.DefaultCollection)
				st.Timeout = time.Minute
				a, err := New(h.cfg, Deps{ClientSecret: h.secret, Keys: h.keys, Store: st,
					HTTPClient: h.app.hc, Logger: h.app.log, Now: h.app.now})
				if err != nil {
					t.Fatal(err)
				}
				apps = append(apps, a)
			}
			wantStatus(t, h.login(demo), http.StatusOK)
			var per []int
			for range 5 {
				h.clock.Advance(time.Hour)
				h.fake.ResetCounts()
				ok := 0
				for _, status := range concurrentLists(h, apps, 25) {
					if status == http.StatusOK {
						ok++
					}
				}
				per = append(per, h.fake.Count(fakegoogle.CountTokenRefresh))
				t.Logf("trial: %d refreshes, %d of %d answers 200", per[len(per)-1], ok, 25*n)
			}
			t.Logf("FIGURE refreshes per burst, %d instances × 25 concurrent, 5 trials: %v", n, per)
		})
	}
	t.Run("token endpoint 503 for 10 s, 20 clients", func(t *testing.T) {
		o := tokenOutage(t, 20, 10*time.Second)
		t.Logf("FIGURE token endpoint 503 for 10 s, 20 clients: %d token calls during it, %d after; answers %v", o.during, o.after, o.answered)
	})
}

// concurrentLists sends perApp concurrent ListMessages requests to each of
// apps at once, in the harness's session, and returns their statuses.
func concurrentLists(h *harness, apps []*App, perApp int) []int {
	cookie := h.jar["__Host-gmail_session"]
	start := make(chan struct{})
	out := make([]int, len(apps)*perApp)
	var wg sync.WaitGroup
	for i, a := range apps {
		fn := a.Handlers()["ListMessages"]
		for j := range perApp {
			wg.Go(func() {
				req := httptest.NewRequest(http.MethodGet, base+"/ListMessages?maxResults=1", nil)
				req.AddCookie(&http.Cookie{Name: "__Host-gmail_session", Value: cookie})
				rec := newRecorder()
				<-start
				fn(rec, req)
				out[i*perApp+j] = rec.status
			})
		}
	}
	close(start)
	wg.Wait()
	return out
}

// wallClock is the real clock moved on by a settable offset: time passes as
// it does for the test's outage, and the test can still jump past an access
// token's expiry.
type wallClock struct{ off atomic.Int64 }

func (c *wallClock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *wallClock) Advance(d time.Duration) { c.off.Add(int64(d)) }

// tokenOutage runs clients that keep asking one App for one user's list
// (20 ms after each answer, whatever Retry-After says) while Google's token
// endpoint answers 503 for outage, until each has had a 200 (or a minute
// past the outage). It returns the token calls during the outage and after
// it, and the answers by status. The App runs on the real clock.
func tokenOutage(t *testing.T, clients int, outage time.Duration) outageSeen {
	clk := &wallClock{}
	h := loggedIn(t, func(_ *config.Config, d *Deps) { d.Now = clk.Now })
	clk.Advance(time.Hour)
	var during, after atomic.Int64
	recovered := time.Now().Add(outage)
	h.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/token" {
			return false
		}
		if time.Now().Before(recovered) {
			during.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"error":"internal_failure"}`))
			return true
		}
		after.Add(1)
		return false
	})
	cookie := h.jar["__Host-gmail_session"]
	fn := h.app.Handlers()["ListMessages"]
	var (
		wg sync.WaitGroup
		mu sync.Mutex
		o  = outageSeen{answered: map[int]int{}}
	)
	giveUp := recovered.Add(time.Minute)
	for range clients {
		wg.Go(func() {
			for time.Now().Before(giveUp) {
				req := httptest.NewRequest(http.MethodGet, base+"/ListMessages?maxResults=1", nil)
				req.AddCookie(&http.Cookie{Name: "__Host-gmail_session", Value: cookie})
				rec := newRecorder()
				fn(rec, req)
				mu.Lock()
				o.answered[rec.status]++
				if s, err := strconv.Atoi(rec.h.Get("Retry-After")); rec.status == http.StatusServiceUnavailable && (err != nil || s < 1 || s > 30) {
					o.badRetry = append(o.badRetry, rec.h.Get("Retry-After"))
				}
				mu.Unlock()
				if rec.status == http.StatusOK {
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	o.during, o.after = during.Load(), after.Load()
	return o
}

// outageSeen is what tokenOutage saw.
type outageSeen struct {
	during, after int64       // token calls
	answered      map[int]int // answers by status
	badRetry      []string    // Retry-After of 503s that was not 1 to 30 s
}
