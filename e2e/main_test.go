// Package e2e_test drives the local runner (functions/cmd/local) in real
// headless Chromium: Authorize → the fake Google's consent page → Callback
// → ListMessages, the refusals, Disconnect, and the home page at / that does
// all of it through the HTTP API. It needs Chromium (Debian
// package chromium); without it the tests skip loudly, or fail under
// CI=true. Set E2E_SCREENSHOT_DIR to keep the screenshots the tests take.
package e2e_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/runnerproc"
)

// runnerBin is the local runner, built once for the package.
var runnerBin string

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
	os.RemoveAll(dir)
	os.Exit(code)
}
