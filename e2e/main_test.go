// Package e2e_test drives the local runner (functions/cmd/local) in real
// headless Chromium: Authorize → the fake Google's consent page → Callback
// → ListMessages, the refusals, Disconnect, and the home page at / that does
// all of it through the HTTP API. It needs Chromium (Debian
// package chromium); without it the tests skip loudly, or fail under
// CI=true. Set E2E_SCREENSHOT_DIR to have the tests save screenshots there.
package e2e_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/browsertest"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/runnerproc"
)

// runnerBin is the local runner, built once for the package.
var runnerBin string

// browser is the package's Chromium; each test has a browser context of
// its own in it.
var browser browsertest.Shared

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "e2e-runner-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	runnerBin, err = runnerproc.Build(context.Background(), dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	if err := browser.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		code = max(code, 1)
	}
	os.RemoveAll(dir)
	os.Exit(code)
}
