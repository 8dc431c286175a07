package browsertest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Shared is one headless Chromium for the tests of a package, started by
// the first test that asks for it. Each test gets a browser context of its
// own, which has its own cookies, storage and cache, as a fresh profile
// would, so the tests stay independent. Starting Chromium took 5 to 10 s
// on a busy two-core machine; a browser context takes milliseconds.
//
// Call Close from TestMain after the tests ran.
type Shared struct {
	once    sync.Once
	profile string
	output  lockedBuffer
	ctx     context.Context // the browser's first tab
	cancel  func()
	err     error
}

// NewContext returns a chromedp context for the first tab of a new browser
// context in the shared browser, starting the browser if this is the first
// test. The browser context is disposed of when the test ends. A tab opened
// later with chromedp.NewContext(ctx) shares its browser context, and so
// its cookies. Without Chromium the test is skipped, or fails under
// CI=true (see RequireChromium).
func (s *Shared) NewContext(t testing.TB) context.Context {
	t.Helper()
	exe := RequireChromium(t)
	s.once.Do(func() { s.start(t, exe) })
	if s.err != nil {
		t.Fatal(s.err)
	}
	ctx, cancel := chromedp.NewContext(s.ctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	// The first Run creates the browser context and its tab, and binds
	// their life to ctx: no timeout here.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("opening a browser context: %v\nbrowser output:\n%s", err, s.output.String())
	}
	return ctx
}

// start starts the browser; the first test's t only logs.
func (s *Shared) start(t testing.TB, exe string) {
	if s.profile, s.err = os.MkdirTemp("", "browsertest-profile-"); s.err != nil {
		return
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), allocatorOptions(exe, s.profile, &s.output)...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	s.ctx, s.cancel = ctx, func() { cancel(); cancelAlloc() }
	begin := time.Now()
	if err := chromedp.Do(ctx); err != nil {
		s.err = fmt.Errorf("starting Chromium (%s): %v\nbrowser output:\n%s", exe, err, s.output.String())
		return
	}
	t.Logf("Chromium started in %v, shared by this package's tests (profile %s)", time.Since(begin).Round(time.Millisecond), s.profile)
}

// Close closes the browser, if it was started, and removes its profile. It
// reports an error if any of its processes had to be killed.
func (s *Shared) Close() error {
	if s.ctx == nil {
		if s.profile != "" {
			os.RemoveAll(s.profile)
		}
		return nil
	}
	var err error
	done, stop := context.WithTimeout(s.ctx, 10*time.Second)
	if e := chromedp.Cancel(done); e != nil && !strings.Contains(e.Error(), "context canceled") {
		err = fmt.Errorf("closing Chromium: %w", e)
	}
	stop()
	s.cancel()
	if n := killProfileProcesses(s.profile); n > 0 {
		err = fmt.Errorf("%d Chromium processes of profile %s were still running after the browser closed; killed them", n, s.profile)
	}
	os.RemoveAll(s.profile)
	return err
}
