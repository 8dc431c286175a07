package secrets_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/secrets"
)

// source is a Fetcher whose answer the test changes.
type source struct {
	mu    sync.Mutex
	data  string
	err   error
	calls int
}

func (s *source) Fetch(ctx context.Context) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.err != nil {
		return nil, s.err
	}
	return []byte(s.data), nil
}

func (s *source) String() string { return "test-source" }

func (s *source) set(data string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data, s.err = data, err
}

func (s *source) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// clock is a settable time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func parseString(b []byte) (string, error) {
	if len(b) == 0 {
		return "", errors.New("empty")
	}
	return string(b), nil
}

var errDown = errors.New("rpc error: code = Unavailable")

func TestCache_Timeline(t *testing.T) {
	const ttl = time.Minute
	type step struct {
		advance   time.Duration
		data      string // what the source holds from this step on
		err       error
		want      string // what Get returns, at once unless it must wait
		wantErr   bool
		wantCalls int // fetches so far, background ones finished
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{
			name: "first Get fetches, then serves from cache within TTL",
			steps: []step{
				{data: "v1", want: "v1", wantCalls: 1},
				{advance: ttl - time.Second, data: "v2", want: "v1", wantCalls: 1},
			},
		},
		{
			name: "after TTL the held value is served and a rotated one fetched in the background",
			steps: []step{
				{data: "v1", want: "v1", wantCalls: 1},
				{advance: ttl, data: "v2", want: "v1", wantCalls: 2},
				{data: "v2", want: "v2", wantCalls: 2},
				{advance: ttl - time.Second, data: "v3", want: "v2", wantCalls: 2},
			},
		},
		{
			name: "source fails after TTL: serves the held value, retries after 2 s, 4 s, 8 s",
			steps: []step{
				{data: "v1", want: "v1", wantCalls: 1},
				{advance: ttl, err: errDown, want: "v1", wantCalls: 2},
				{advance: 2*time.Second - 1, err: errDown, want: "v1", wantCalls: 2},
				{advance: 1, err: errDown, want: "v1", wantCalls: 3},
				{advance: 4*time.Second - 1, err: errDown, want: "v1", wantCalls: 3},
				{advance: 1, err: errDown, want: "v1", wantCalls: 4},
				{advance: 8*time.Second - 1, data: "v2", want: "v1", wantCalls: 4},
				{advance: 1, data: "v2", want: "v1", wantCalls: 5},
				{data: "v2", want: "v2", wantCalls: 5},
				{advance: time.Second, data: "v3", want: "v2", wantCalls: 5},
			},
		},
		{
			name: "parse fails after TTL: serves the held value",
			steps: []step{
				{data: "v1", want: "v1", wantCalls: 1},
				{advance: ttl, data: "", want: "v1", wantCalls: 2},
				{data: "", want: "v1", wantCalls: 2},
			},
		},
		{
			name: "never loaded: error, not retried within the interval, recovers later",
			steps: []step{
				{err: errDown, wantErr: true, wantCalls: 1},
				{advance: time.Second, data: "v1", wantErr: true, wantCalls: 1},
				{advance: time.Second, data: "v1", want: "v1", wantCalls: 2},
			},
		},
		{
			name: "never loaded: the interval does not grow, nothing else can be served",
			steps: []step{
				{err: errDown, wantErr: true, wantCalls: 1},
				{advance: 2 * time.Second, err: errDown, wantErr: true, wantCalls: 2},
				{advance: 2 * time.Second, err: errDown, wantErr: true, wantCalls: 3},
				{advance: 2 * time.Second, data: "v1", want: "v1", wantCalls: 4},
			},
		},
		{
			name: "never parsed: error, recovers later",
			steps: []step{
				{data: "", wantErr: true, wantCalls: 1},
				{advance: 2 * time.Second, data: "v1", want: "v1", wantCalls: 2},
			},
		},
		{
			name: "idle past TTL plus StaleGrace: the next Get waits for the renewal",
			steps: []step{
				{data: "v1", want: "v1", wantCalls: 1},
				{advance: ttl + 31*time.Second, data: "v2", want: "v2", wantCalls: 2},
			},
		},
		{
			name: "idle past TTL plus StaleGrace, source failing: one Get waits, then the held value is served at once",
			steps: []step{
				{data: "v1", want: "v1", wantCalls: 1},
				{advance: ttl + 31*time.Second, err: errDown, want: "v1", wantCalls: 2},
				{advance: time.Second, err: errDown, want: "v1", wantCalls: 2},
				{advance: time.Second, data: "v2", want: "v1", wantCalls: 3},
				{data: "v2", want: "v2", wantCalls: 3},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &source{}
			clk := &clock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
			c := secrets.NewCache(src, parseString, ttl)
			c.Now = clk.Now
			secrets.NoJitter(c)
			for i, s := range tt.steps {
				clk.advance(s.advance)
				src.set(s.data, s.err)
				got, err := c.Get(t.Context())
				c.Wait()
				if (err != nil) != s.wantErr {
					t.Fatalf("step %d: Get error = %v, want error %v", i, err, s.wantErr)
				}
				if err == nil && got != s.want {
					t.Errorf("step %d: Get = %q, want %q", i, got, s.want)
				}
				if n := src.count(); n != s.wantCalls {
					t.Errorf("step %d: fetches = %d, want %d", i, n, s.wantCalls)
				}
			}
		})
	}
}

func TestCache_FailuresInARow_WaitDoublesUpToMaxRetryInterval(t *testing.T) {
	src := &source{data: "v1"}
	clk := &clock{t: time.Unix(0, 0)}
	c := secrets.NewCache(src, parseString, time.Minute)
	c.Now = clk.Now
	secrets.NoJitter(c)
	c.Get(t.Context())
	clk.advance(time.Minute)
	src.set("", errDown)
	var waits []time.Duration
	for range 8 {
		before := src.count()
		for d := time.Duration(0); ; d += time.Second {
			if got, err := c.Get(t.Context()); err != nil || got != "v1" {
				t.Fatalf("Get = %q, %v while failing; want the held v1 at once", got, err)
			}
			c.Wait()
			if src.count() > before {
				waits = append(waits, d)
				break
			}
			clk.advance(time.Second)
		}
	}
	want := []time.Duration{0, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second, time.Minute, time.Minute}
	if !slices.Equal(waits, want) {
		t.Errorf("waits between fetches %v, want %v", waits, want)
	}
}

// TestCache_PastTTL_ServesAtOnceWhileTheRenewalHangs: concurrent Gets of a
// value past its TTL all return it without waiting for the source, which
// sees one fetch.
func TestCache_PastTTL_ServesAtOnceWhileTheRenewalHangs(t *testing.T) {
	g := newGate()
	clk := &clock{t: time.Unix(0, 0)}
	c := secrets.NewCache(g, parseString, time.Minute)
	c.Now = clk.Now
	go func() { <-g.started; g.release <- struct{}{} }() // the first fetch only
	if got, err := c.Get(t.Context()); err != nil || got != "v1" {
		t.Fatalf("first Get = %q, %v", got, err)
	}
	clk.advance(time.Minute)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if got, err := c.Get(t.Context()); err != nil || got != "v1" {
				t.Errorf("Get past TTL = %q, %v; want v1", got, err)
			}
		})
	}
	wg.Wait() // before the renewal is released: no Get waited for it
	<-g.started
	close(g.release)
	c.Wait()
	if got := g.calls.Load(); got != 2 {
		t.Errorf("fetches = %d, want 2: the first and one renewal", got)
	}
}

func TestCache_Prefetch_StartsTheFetchAGetThenShares(t *testing.T) {
	g := newGate()
	c := secrets.NewCache(g, parseString, time.Minute)
	c.Prefetch(t.Context()) // returns without waiting
	<-g.started
	got := make(chan string, 1)
	go func() {
		v, _ := c.Get(t.Context())
		got <- v
	}()
	time.Sleep(20 * time.Millisecond)
	close(g.release)
	if v := <-got; v != "v1" {
		t.Errorf("Get after Prefetch = %q, want v1", v)
	}
	if n := g.calls.Load(); n != 1 {
		t.Errorf("fetches = %d, want 1", n)
	}
}

func TestCache_NeverLoaded_ErrorNamesSourceAndWrapsCause(t *testing.T) {
	src := &source{err: errDown}
	c := secrets.NewCache(src, parseString, time.Minute)
	_, err := c.Get(t.Context())
	serr, ok := errors.AsType[*secrets.Error](err)
	if !ok {
		t.Fatalf("Get error %v (%T) is not a *secrets.Error", err, err)
	}
	if serr.Name != "test-source" || !errors.Is(err, errDown) {
		t.Errorf("Get error = %v, want one naming test-source and wrapping %v", err, errDown)
	}
	if want := "secret test-source: rpc error: code = Unavailable"; err.Error() != want {
		t.Errorf("Get error = %q, want %q", err, want)
	}
}

func TestCache_ParseError_HidesSecretContent(t *testing.T) {
	const content = `{"web":{"client_secret":"hunter2"}} trailing-Z`
	tests := []struct {
		name  string
		parse func([]byte) (map[string]any, error)
	}{
		{"json syntax error", func(b []byte) (map[string]any, error) {
			var m map[string]any
			return m, json.Unmarshal(b, &m)
		}},
		{"wrapped json syntax error", func(b []byte) (map[string]any, error) {
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				return nil, errors.Join(errors.New("keys"), err)
			}
			return m, nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := secrets.NewCache(secrets.Static(content), tt.parse, time.Minute)
			_, err := c.Get(t.Context())
			if err == nil {
				t.Fatal("Get succeeded, want a parse error")
			}
			msg := err.Error()
			if strings.Contains(msg, "hunter2") || strings.Contains(msg, "'t'") || strings.Contains(msg, "trailing") {
				t.Errorf("error %q quotes the secret", msg)
			}
			if !strings.Contains(msg, "secret static: parse: invalid JSON at byte offset") {
				t.Errorf("error %q does not say where parsing failed", msg)
			}
		})
	}
}

func TestCache_OnError_SeesFailuresHiddenByStaleValue(t *testing.T) {
	src := &source{data: "v1"}
	clk := &clock{t: time.Unix(0, 0)}
	c := secrets.NewCache(src, parseString, time.Minute)
	c.Now = clk.Now
	var seen []error
	c.OnError = func(err error) { seen = append(seen, err) }

	if _, err := c.Get(t.Context()); err != nil {
		t.Fatal(err)
	}
	clk.advance(time.Minute)
	src.set("", errDown)
	if got, err := c.Get(t.Context()); err != nil || got != "v1" {
		t.Fatalf("Get = %q, %v; want stale v1", got, err)
	}
	c.Wait()
	if len(seen) != 1 || !errors.Is(seen[0], errDown) {
		t.Errorf("OnError saw %v, want one error wrapping %v", seen, errDown)
	}
}

func TestCache_Invalidate_RefetchesEvenWithinRetryInterval(t *testing.T) {
	src := &source{err: errDown}
	clk := &clock{t: time.Unix(0, 0)}
	c := secrets.NewCache(src, parseString, time.Hour)
	c.Now = clk.Now

	if _, err := c.Get(t.Context()); err == nil {
		t.Fatal("first Get succeeded, want error")
	}
	src.set("v1", nil)
	c.Invalidate()
	if got, err := c.Get(t.Context()); err != nil || got != "v1" {
		t.Fatalf("Get after Invalidate = %q, %v; want v1", got, err)
	}
	src.set("v2", nil)
	c.Invalidate()
	if got, err := c.Get(t.Context()); err != nil || got != "v2" {
		t.Errorf("Get after second Invalidate = %q, %v; want v2", got, err)
	}
	if n := src.count(); n != 3 {
		t.Errorf("fetches = %d, want 3", n)
	}
}

func TestCache_ZeroTTL_KeepsValueUntilInvalidate(t *testing.T) {
	src := &source{data: "v1"}
	clk := &clock{t: time.Unix(0, 0)}
	c := secrets.NewCache(src, parseString, 0)
	c.Now = clk.Now
	c.Get(t.Context())
	clk.advance(1000 * time.Hour)
	src.set("v2", nil)
	if got, _ := c.Get(t.Context()); got != "v1" {
		t.Errorf("Get = %q, want v1", got)
	}
	c.Invalidate()
	if got, _ := c.Get(t.Context()); got != "v2" {
		t.Errorf("Get after Invalidate = %q, want v2", got)
	}
}

// gate is a Fetcher that blocks until released and reports whether its
// context was still live.
type gate struct {
	calls    atomic.Int32
	started  chan struct{}
	release  chan struct{}
	ctxAlive atomic.Bool
}

func newGate() *gate {
	return &gate{started: make(chan struct{}, 100), release: make(chan struct{})}
}

func (g *gate) Fetch(ctx context.Context) ([]byte, error) {
	g.calls.Add(1)
	g.started <- struct{}{}
	select {
	case <-g.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	g.ctxAlive.Store(ctx.Err() == nil)
	return []byte("v1"), nil
}

func TestCache_ConcurrentGets_ShareOneFetch(t *testing.T) {
	g := newGate()
	c := secrets.NewCache(g, parseString, time.Minute)
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			v, err := c.Get(t.Context())
			if err == nil && v != "v1" {
				err = errors.New("got " + v)
			}
			errs <- err
		})
	}
	<-g.started
	time.Sleep(50 * time.Millisecond) // let the others join the fetch
	close(g.release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Get: %v", err)
		}
	}
	if got := g.calls.Load(); got != 1 {
		t.Errorf("fetches = %d, want 1", got)
	}
}

func TestCache_FirstCallerCancelled_FetchCompletesForOthers(t *testing.T) {
	g := newGate()
	c := secrets.NewCache(g, parseString, time.Minute)

	ctx1, cancel1 := context.WithCancel(t.Context())
	first := make(chan error, 1)
	go func() {
		_, err := c.Get(ctx1)
		first <- err
	}()
	<-g.started
	cancel1()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Get error = %v, want context.Canceled", err)
	}

	second := make(chan string, 1)
	go func() {
		v, _ := c.Get(t.Context())
		second <- v
	}()
	time.Sleep(20 * time.Millisecond)
	close(g.release)
	if v := <-second; v != "v1" {
		t.Errorf("second Get = %q, want v1", v)
	}
	if !g.ctxAlive.Load() {
		t.Error("the shared fetch's context was cancelled with the first caller's")
	}
	if got := g.calls.Load(); got != 1 {
		t.Errorf("fetches = %d, want 1", got)
	}
}

func TestCache_FetchTimeout_BoundsHungSource(t *testing.T) {
	g := newGate() // never released
	c := secrets.NewCache(g, parseString, time.Minute)
	c.FetchTimeout = 50 * time.Millisecond
	_, err := c.Get(t.Context())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Get error = %v, want context.DeadlineExceeded", err)
	}
}
