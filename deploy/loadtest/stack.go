package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/fakegoogle"
)

// runnerPackage is the local runner's import path.
const runnerPackage = "github.com/gmail-oauth-functions/gmail-oauth-functions/functions/cmd/local"

// buildRunner builds the local runner into dir. It must run inside the
// module (e.g. from the repository root).
func buildRunner(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "local")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, runnerPackage)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s (run from the repository, or pass -runner): %v\n%s", runnerPackage, err, out)
	}
	return bin, nil
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// stack is the running local runner and the fake Google.
type stack struct {
	FuncURL string // http://localhost:PORT
	FakeURL string // http://localhost:PORT of the fake Google
	Dir     string // the temporary folder: data, log, binary

	cmd     *exec.Cmd
	logFile *os.File
	exited  chan struct{}
	waitErr error
	fakeSrv *http.Server // FakeInTool only

	StartedAt    time.Time
	Startup      time.Duration // process start → first served request
	FirstRequest time.Duration // how long that first request took
}

// startStack starts the runner (and with FakeInTool the fake Google) and
// waits for the first served request.
func startStack(ctx context.Context, cfg Config, dir, bin string) (*stack, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	fakePort, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &stack{
		FuncURL: "http://localhost:" + strconv.Itoa(port),
		FakeURL: "http://localhost:" + strconv.Itoa(fakePort),
		Dir:     dir,
		exited:  make(chan struct{}),
	}
	dataDir := filepath.Join(dir, "data")
	// Only what a process needs from this environment: no setting of the
	// caller's (a real OAUTH_CLIENT_SECRET, a proxy) reaches the runner.
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TMPDIR=" + os.TempDir()}
	if cfg.GOMAXPROCS > 0 {
		env = append(env, "GOMAXPROCS="+strconv.Itoa(cfg.GOMAXPROCS))
	}
	switch cfg.Fake {
	case FakeInRunner:
		env = append(env, "FAKE_GOOGLE_AUTO_APPROVE=true", "FAKE_GOOGLE_LATENCY="+cfg.Latency.String(), "FAKE_GOOGLE_NO_QUOTA=true")
	case FakeInTool:
		fakeEnv, err := s.startFake(cfg, fakePort, dataDir)
		if err != nil {
			return nil, err
		}
		env = append(env, fakeEnv...)
	}
	if s.logFile, err = os.Create(filepath.Join(dir, "runner.log")); err != nil {
		s.stop()
		return nil, err
	}
	s.cmd = exec.Command(bin, "-port", strconv.Itoa(port), "-fake-google-port", strconv.Itoa(fakePort), "-data", dataDir)
	s.cmd.Env = env
	s.cmd.Stdout, s.cmd.Stderr = s.logFile, s.logFile
	// Its own process group, so stop reaches all of it; killed with this
	// process if that dies first.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	s.StartedAt = time.Now()
	if err := s.cmd.Start(); err != nil {
		s.stop()
		return nil, fmt.Errorf("starting the runner: %w", err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	if err := s.waitReady(ctx); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// startFake serves the fake Google in this process on fakePort, writes its
// client secret into dataDir and returns the runner's settings for it.
func (s *stack) startFake(cfg Config, fakePort int, dataDir string) ([]string, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	callback := s.FuncURL + "/Callback"
	fake := fakegoogle.New(fakegoogle.Options{AutoApprove: true, Latency: cfg.Latency, GmailQuotaPerMinute: -1, RedirectURIs: []string{callback}})
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(fakePort))
	if err != nil {
		return nil, fmt.Errorf("fake Google: %w", err)
	}
	s.fakeSrv = &http.Server{Handler: fake, ReadHeaderTimeout: 10 * time.Second}
	go s.fakeSrv.Serve(ln)
	secret := filepath.Join(dataDir, "fake_client_secret.json")
	if err := os.WriteFile(secret, fake.ClientSecretJSON(s.FakeURL, callback), 0o600); err != nil {
		return nil, err
	}
	ep := fakegoogle.Endpoints(s.FakeURL)
	return []string{
		"OAUTH_CLIENT_SECRET_FILE=" + secret,
		"GOOGLE_AUTH_URL=" + ep.AuthURL,
		"GOOGLE_TOKEN_URL=" + ep.TokenURL,
		"GOOGLE_REVOKE_URL=" + ep.RevokeURL,
		"GOOGLE_USERINFO_URL=" + ep.UserinfoURL,
		"GMAIL_ENDPOINT=" + ep.GmailEndpoint,
	}, nil
}

// waitReady polls Authorize until it answers a JSON client with an
// authorization URL at the fake Google, and records how long that took
// from the process start.
func (s *stack) waitReady(ctx context.Context) error {
	c := &http.Client{Transport: loopbackTransport(2), Timeout: 5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	deadline := time.Now().Add(30 * time.Second)
	last := "no answer yet"
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return fmt.Errorf("the runner exited before it answered (%v); its output:\n%s", s.waitErr, s.output())
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.FuncURL+"/Authorize", nil)
		req.Header.Set("Accept", "application/json")
		sent := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			last = err.Error()
			time.Sleep(time.Millisecond)
			continue
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		done := time.Now()
		var v struct {
			URL string `json:"authorization_url"`
		}
		if resp.StatusCode == http.StatusOK && json.Unmarshal(body, &v) == nil && strings.HasPrefix(v.URL, s.FakeURL+"/") {
			s.Startup, s.FirstRequest = done.Sub(s.StartedAt), done.Sub(sent)
			return nil
		}
		last = fmt.Sprintf("status %d: %s", resp.StatusCode, body)
		time.Sleep(time.Millisecond)
	}
	return fmt.Errorf("the runner did not answer GET /Authorize within 30s (last: %s); its output:\n%s", last, s.output())
}

// output is the end of the runner's log.
func (s *stack) output() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "runner.log"))
	if len(b) > 8<<10 {
		b = append([]byte("...\n"), b[len(b)-8<<10:]...)
	}
	return string(b)
}

// stop ends the runner (SIGTERM to its process group, SIGKILL after 5 s)
// and the fake. It may be called more than once.
func (s *stack) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		select {
		case <-s.exited:
		default:
			pgid := s.cmd.Process.Pid
			_ = syscall.Kill(-pgid, syscall.SIGTERM)
			select {
			case <-s.exited:
			case <-time.After(5 * time.Second):
				_ = syscall.Kill(-pgid, syscall.SIGKILL)
				<-s.exited
			}
		}
	}
	if s.fakeSrv != nil {
		s.fakeSrv.Close()
		s.fakeSrv = nil
	}
	if s.logFile != nil {
		s.logFile.Close()
		s.logFile = nil
	}
}

// procStatus is what /proc/PID says about the runner's memory and CPU.
type procStatus struct {
	RSS, HWM int64         // bytes: resident now, and peak resident (VmHWM)
	CPU      time.Duration // user + system time so far
}

// readProc reads /proc/PID/status and /proc/PID/stat of the runner.
func (s *stack) readProc() (procStatus, error) {
	var ps procStatus
	pid := s.cmd.Process.Pid
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ps, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		switch k {
		case "VmRSS":
			ps.RSS = n << 10
		case "VmHWM":
			ps.HWM = n << 10
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ps, err
	}
	// The fields after the command name, which is in parentheses and may
	// hold spaces: state is field 3, utime 14 and stime 15.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return ps, errors.New("unexpected /proc/PID/stat")
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return ps, errors.New("unexpected /proc/PID/stat")
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const clockTicks = 100 // USER_HZ, 100 on every Linux Go supports
	ps.CPU = time.Duration(utime+stime) * time.Second / clockTicks
	return ps, nil
}

// loopbackTransport is an HTTP transport that only ever connects to
// loopback: localhost is 127.0.0.1, literal loopback IPs are allowed, and
// anything else is refused. No proxy.
func loopbackTransport(conns int) *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			if host == "localhost" {
				host = "127.0.0.1"
			}
			if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
				return nil, fmt.Errorf("loadtest: refusing to connect to %s: loopback only", addr)
			}
			return d.DialContext(ctx, network, net.JoinHostPort(host, port))
		},
		MaxIdleConns:        0, // no limit
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
}
