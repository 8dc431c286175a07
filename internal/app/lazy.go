package app

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Lazy builds the App on the first request of an instance and reuses it.
// It is not built at import time: a missing setting becomes a 503 with a
// log line naming it, not a crash loop, and a later request tries again.
type Lazy struct {
	build func(ctx context.Context) (*App, error)
	log   *slog.Logger
	now   func() time.Time

	app     atomic.Pointer[App]
	mu      sync.Mutex
	lastErr error
	lastTry time.Time
}

// RetryInterval is how often a failed build is tried again.
const RetryInterval = 5 * time.Second

// NewLazy returns a Lazy that builds with build. log is used until the App
// exists.
func NewLazy(build func(ctx context.Context) (*App, error), log *slog.Logger) *Lazy {
	return &Lazy{build: build, log: log, now: time.Now}
}

// Get returns the App, building it if needed.
func (l *Lazy) Get(ctx context.Context) (*App, error) {
	if a := l.app.Load(); a != nil {
		return a, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if a := l.app.Load(); a != nil {
		return a, nil
	}
	if l.lastErr != nil && l.now().Sub(l.lastTry) < RetryInterval {
		return nil, l.lastErr
	}
	l.lastTry = l.now()
	a, err := l.build(context.WithoutCancel(ctx))
	if err != nil {
		l.lastErr = err
		return nil, err
	}
	l.lastErr = nil
	l.app.Store(a)
	return a, nil
}

// Handler returns the function called name, answering 503 while the App
// cannot be built.
func (l *Lazy) Handler(name string) http.HandlerFunc {
	var once sync.Once
	var h http.HandlerFunc
	return func(w http.ResponseWriter, r *http.Request) {
		a, err := l.Get(r.Context())
		if err != nil {
			l.log.ErrorContext(r.Context(), "function not configured", "function", name, "err", err)
			setSecurityHeaders(w.Header())
			retryAfter(w, RetryInterval)
			writeJSON(w, http.StatusServiceUnavailable, apiError{Code: "not_configured",
				Description: "this function is not configured correctly; the logs name the setting"})
			return
		}
		once.Do(func() { h = a.Handlers()[name] })
		h(w, r)
	}
}
