package browsertest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestNewBrowser_LoadsLoopbackPagesButNoOtherHost shows the browser works
// against a local server and cannot reach any other host.
func TestNewBrowser_LoadsLoopbackPagesButNoOtherHost(t *testing.T) {
	ctx := NewBrowser(t)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><title>loopback</title><h1 id="greeting">hello from `+r.Host+`</h1>`)
	}))
	defer ts.Close()

	tctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	resp, err := chromedp.Run(tctx, chromedp.NavigateResponse(ts.URL))
	if err != nil {
		t.Fatalf("navigate to %s: %v", ts.URL, err)
	}
	if resp.Status != http.StatusOK {
		t.Errorf("status = %d, want 200", resp.Status)
	}
	got, err := chromedp.Run(tctx, chromedp.Text(chromedp.ID("greeting")))
	if err != nil {
		t.Fatal(err)
	}
	if want := "hello from " + strings.TrimPrefix(ts.URL, "http://"); got != want {
		t.Errorf("#greeting = %q, want %q", got, want)
	}

	err = chromedp.Do(tctx, chromedp.Navigate("http://example.com/"))
	if err == nil || !strings.Contains(err.Error(), "ERR_NAME_NOT_RESOLVED") {
		t.Errorf("navigating to example.com: err = %v, want net::ERR_NAME_NOT_RESOLVED (no network but loopback)", err)
	}
}

// TestNewBrowser_LeavesNoProcess closes a browser in a subtest and checks
// that none of its processes is left.
func TestNewBrowser_LeavesNoProcess(t *testing.T) {
	RequireChromium(t)
	var profileArg string
	t.Run("browser", func(t *testing.T) {
		ctx := NewBrowser(t)
		if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
			t.Fatal(err)
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", chromedp.FromContext(ctx).Browser.Process().Pid))
		if err != nil {
			t.Fatal(err)
		}
		for a := range strings.SplitSeq(string(cmdline), "\x00") {
			if strings.HasPrefix(a, "--user-data-dir=") {
				profileArg = a
			}
		}
		if profileArg == "" {
			t.Fatalf("the browser's command line has no --user-data-dir: %q", cmdline)
		}
		if n := len(pidsWithArg(profileArg)); n == 0 {
			t.Fatalf("no process has %s while the browser runs", profileArg)
		}
	})
	if pids := pidsWithArg(profileArg); len(pids) > 0 {
		t.Errorf("processes %v with %s are still running after the test", pids, profileArg)
	}
}
