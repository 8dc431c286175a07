// Package runnerproc builds the local runner (functions/cmd/local) and runs
// it as a child process in a process group of its own, for the tests that
// drive it end to end and for the load tool.
package runnerproc

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Package is the import path of the local runner.
const Package = "github.com/gmail-oauth-functions/gmail-oauth-functions/functions/cmd/local"

// Build builds the local runner into dir (as go build -o DIR/local
// ./functions/cmd/local would) and returns the binary's path. It must run
// inside the module. See BuildProgram.
func Build(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "local")
	return bin, BuildProgram(ctx, Package, bin)
}

// BuildProgram builds the main package pkg into the file bin, in the
// calling binary's own configuration (see SameBuild), so that the
// dependencies the test run compiled serve the program too.
//
// It links through go run, whose executables Go's build cache keeps
// (go run -exec cp PKG BIN copies the cached or newly linked executable
// to bin), where go build -o links every time. The test packages that
// start the runner then share one link per configuration and source
// state instead of linking it once each: with -race, on two cores, each
// link took half a minute.
func BuildProgram(ctx context.Context, pkg, bin string) error {
	flags, env := SameBuild()
	args := append(append([]string{"run"}, flags...), "-exec", "cp", pkg, bin)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build %s: %v\n%s", pkg, err, out)
	}
	if fi, err := os.Stat(bin); err != nil || fi.Mode()&0o100 == 0 {
		return fmt.Errorf("build %s: no executable at %s (%v)", pkg, bin, err)
	}
	return nil
}

// SameBuild returns the go build flags and environment settings that build
// a binary in the configuration the calling binary was built in: with the
// race detector if it has it, and with its CGO_ENABLED unless the
// environment sets one. A test that builds a program (the runner, the
// buildpack's build) then reuses every package Go's cache holds for the
// test itself; in another configuration, Go compiles the whole dependency
// tree once more, which on a two-core machine with a cold cache takes
// minutes.
func SameBuild() (flags, env []string) {
	if raceEnabled {
		flags = []string{"-race"}
	}
	if os.Getenv("CGO_ENABLED") == "" {
		env = []string{"CGO_ENABLED=" + cgoEnabled}
	}
	return flags, env
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// MinimalEnv is only what a process needs from this environment, so that no
// setting of the caller's (a real OAUTH_CLIENT_SECRET, a proxy) reaches the
// runner.
func MinimalEnv() []string {
	return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TMPDIR=" + os.TempDir()}
}

// Process is a started runner.
type Process struct {
	Cmd     *exec.Cmd
	Started time.Time

	exited chan struct{}
	err    error // of Cmd.Wait, valid once exited is closed
}

// Start starts cmd in a process group of its own, so that Stop reaches
// anything it starts, and has it killed if this process dies first.
func Start(cmd *exec.Cmd) (*Process, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &Process{Cmd: cmd, Started: time.Now(), exited: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the local runner: %w", err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// Exited is closed when the process has exited; Err then says how.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Err is the process's exit error, once Exited is closed.
func (p *Process) Err() error { return p.err }

// WaitReady polls funcURL's Authorize as a JSON client until it answers
// with an authorization URL under fakeURL, and returns when that answer
// came and how long its request took.
func (p *Process) WaitReady(ctx context.Context, funcURL, fakeURL string, timeout time.Duration) (ready time.Time, took time.Duration, err error) {
	c := &http.Client{Timeout: 2 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	deadline := time.Now().Add(timeout)
	last := "no answer yet"
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			return time.Time{}, 0, fmt.Errorf("the local runner exited before it answered (%v)", p.err)
		case <-ctx.Done():
			return time.Time{}, 0, ctx.Err()
		default:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, funcURL+"/Authorize", nil)
		req.Header.Set("Accept", "application/json")
		sent := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			last = err.Error()
			time.Sleep(5 * time.Millisecond)
			continue
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		done := time.Now()
		var v struct {
			URL string `json:"authorization_url"`
		}
		if resp.StatusCode == http.StatusOK && json.Unmarshal(body, &v) == nil && strings.HasPrefix(v.URL, fakeURL+"/") {
			return done, done.Sub(sent), nil
		}
		last = fmt.Sprintf("status %d: %s", resp.StatusCode, body)
		time.Sleep(5 * time.Millisecond)
	}
	return time.Time{}, 0, fmt.Errorf("the local runner did not answer GET /Authorize within %v (last: %s)", timeout, last)
}

// Stop ends the process (SIGTERM to its group, SIGKILL after grace), waits
// until it has exited, and kills whatever else is left in its group. It
// reports whether SIGTERM was ignored. It may be called more than once.
func (p *Process) Stop(grace time.Duration) (forced bool) {
	select {
	case <-p.exited:
		return false
	default:
	}
	pgid := p.Cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
		forced = true
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.exited
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	return forced
}
