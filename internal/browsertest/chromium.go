// Package browsertest has the helpers of the end-to-end tests: it starts
// headless Chromium (through chromedp) with a fresh profile and no network
// but loopback, and it builds and runs the local runner
// (functions/cmd/local) as a subprocess on free ports. Every process it
// starts is stopped when the test ends.
package browsertest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumNames are the executables tried, in order, when CHROMIUM is not
// set.
var chromiumNames = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}

// ChromiumPath returns the Chromium executable: $CHROMIUM if set, else the
// first of chromium, chromium-browser, google-chrome and
// google-chrome-stable on $PATH, else /usr/bin/chromium if it exists.
func ChromiumPath() (string, error) {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return exec.LookPath(p)
	}
	for _, name := range chromiumNames {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium", nil
	}
	return "", fmt.Errorf("no Chromium found (tried $CHROMIUM, %s and /usr/bin/chromium)", strings.Join(chromiumNames, ", "))
}

// RequireChromium returns the Chromium executable. When there is none it
// fails the test under CI=true, and otherwise skips it with a message that
// says the browser test did not run and how to install Chromium.
func RequireChromium(t testing.TB) string {
	t.Helper()
	p, err := ChromiumPath()
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and the browser test cannot run: %v. Install it with: apt-get install -y chromium", err)
	}
	t.Skipf("SKIPPED: THE REAL-BROWSER TEST DID NOT RUN: %v. "+
		"Install Chromium (Debian/Ubuntu: apt-get install -y chromium) or set CHROMIUM=/path/to/chrome, then run the test again. "+
		"(Under CI=true this is a failure, not a skip.)", err)
	return ""
}

// ChromiumFlags are the flags the browser runs with: headless, no sandbox
// (the tests may run as root), no GPU, and no traffic of its own (updates,
// sync, QUIC, background requests). Every host name but localhost resolves
// to nothing, so a page cannot reach the network.
var ChromiumFlags = []struct {
	Name  string
	Value any
}{
	{"headless", true},
	{"no-sandbox", true},
	{"disable-gpu", true},
	{"no-first-run", true},
	{"disable-background-networking", true},
	{"disable-component-update", true},
	{"disable-sync", true},
	{"disable-quic", true},
	{"no-proxy-server", true},
	{"host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"},
}

// NewBrowser starts headless Chromium with a fresh profile (a user data
// folder under t.TempDir) and returns a chromedp context for its first tab.
// The browser is closed, and any of its processes still alive are killed,
// when the test ends. A tab opened later with chromedp.NewContext(ctx)
// shares the browser, and so its cookies.
func NewBrowser(t testing.TB) context.Context {
	t.Helper()
	exe := RequireChromium(t)
	profile := t.TempDir() // removed after the browser's cleanup below
	var output lockedBuffer
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), allocatorOptions(exe, profile, &output)...)
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		done, stop := context.WithTimeout(ctx, 10*time.Second)
		defer stop()
		if err := chromedp.Cancel(done); err != nil && !strings.Contains(err.Error(), "context canceled") {
			t.Logf("closing Chromium: %v", err)
		}
		cancel()
		cancelAlloc()
		if n := killProfileProcesses(profile); n > 0 {
			t.Errorf("%d Chromium processes of profile %s were still running after the browser closed; killed them", n, profile)
		}
	})
	start := time.Now()
	if err := chromedp.Do(ctx); err != nil { // starts the browser, with no timeout
		t.Fatalf("starting Chromium (%s): %v\nbrowser output:\n%s", exe, err, output.String())
	}
	t.Logf("Chromium started in %v (profile %s)", time.Since(start).Round(time.Millisecond), profile)
	return ctx
}

// allocatorOptions start Chromium exe with ChromiumFlags and the user data
// folder profile, its output going to output.
func allocatorOptions(exe, profile string, output *lockedBuffer) []chromedp.ExecAllocatorOption {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1000, 800),
		chromedp.CombinedOutput(output),
	)
	for _, f := range ChromiumFlags {
		opts = append(opts, chromedp.Flag(f.Name, f.Value))
	}
	return opts
}

// killProfileProcesses kills the processes (all started by this test) whose
// command line names profile as their user data folder, until none is
// left, and returns how many it killed.
func killProfileProcesses(profile string) int {
	want := "--user-data-dir=" + profile
	killed := 0
	for quiet := 0; quiet < 3; time.Sleep(20 * time.Millisecond) {
		n := 0
		for _, pid := range pidsWithArg(want) {
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				n++
			}
		}
		if n == 0 {
			quiet++
		} else {
			quiet, killed = 0, killed+n
		}
	}
	return killed
}

// pidsWithArg lists the processes that have arg among their arguments.
func pidsWithArg(arg string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for a := range bytes.SplitSeq(cmdline, []byte{0}) {
			if string(a) == arg {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// lockedBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
