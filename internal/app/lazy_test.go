package app

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/config"
)

func TestLazy_MissingSetting_503WithLogLineThenRecovers(t *testing.T) {
	var logs bytes.Buffer
	env := map[string]string{} // nothing set yet
	builds := 0
	var good *harness
	lazy := NewLazy(func(ctx context.Context) (*App, error) {
		builds++
		if _, err := config.FromEnv(func(k string) string { return env[k] }); err != nil {
			return nil, err
		}
		return good.app, nil
	}, slog.New(slog.NewJSONHandler(&logs, nil)))
	now := time.Now()
	lazy.now = func() time.Time { return now }
	h := lazy.Handler("ListMessages")

	rec := httptest.NewRecorder()
	h(rec, httptest.NewRequest(http.MethodGet, "/ListMessages", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "not_configured") || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if !strings.Contains(logs.String(), "OAUTH_REDIRECT_URL") {
		t.Fatalf("the log line does not name the missing setting: %s", logs.String())
	}
	// Within the retry interval the build is not attempted again.
	h(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/ListMessages", nil))
	if builds != 1 {
		t.Fatalf("%d builds, want 1 within the retry interval", builds)
	}
	// Fixed, and later: the next request builds and is served.
	good = newHarness(t)
	for k, v := range map[string]string{"OAUTH_CLIENT_SECRET_FILE": "c.json", "TOKEN_KEYS_FILE": "k.json", "TOKEN_STORE": "local",
		"OAUTH_REDIRECT_URL": "http://localhost:8080/Callback", "AUTHORIZE_URL": "http://localhost:8080/Authorize"} {
		env[k] = v
	}
	now = now.Add(RetryInterval)
	rec = httptest.NewRecorder()
	h(rec, httptest.NewRequest(http.MethodGet, "/ListMessages", nil))
	if rec.Code != http.StatusUnauthorized || builds != 2 {
		t.Fatalf("after the fix: %d %s (builds %d)", rec.Code, rec.Body, builds)
	}
	// Built once: later requests reuse the App.
	h(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/ListMessages", nil))
	if builds != 2 {
		t.Fatalf("the App was built again: %d builds", builds)
	}
}

func TestLazy_BuildErrorIsNotCachedForever(t *testing.T) {
	calls := 0
	lazy := NewLazy(func(context.Context) (*App, error) { calls++; return nil, errors.New("firestore: unavailable") }, slog.New(slog.DiscardHandler))
	now := time.Now()
	lazy.now = func() time.Time { return now }
	lazy.Get(t.Context())
	now = now.Add(RetryInterval + time.Millisecond)
	lazy.Get(t.Context())
	if calls != 2 {
		t.Fatalf("%d builds, want a retry after the interval", calls)
	}
}
