package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/fakegoogle"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/keyring"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/runnerproc"
)

// stack is the running local runner and the fake Google.
type stack struct {
	FuncURL string // http://localhost:PORT
	FakeURL string // http://localhost:PORT of the fake Google
	Dir     string // the temporary folder: data, log, binary

	proc    *runnerproc.Process
	logFile *os.File
	fakeSrv *http.Server // FakeInTool only

	StartedAt    time.Time
	Startup      time.Duration // process start → first served request
	FirstRequest time.Duration // how long that first request took
}

// startStack starts the runner (and with FakeInTool the fake Google) and
// waits for the first served request.
func startStack(ctx context.Context, cfg Config, dir, bin string) (*stack, error) {
	port, err := runnerproc.FreePort()
	if err != nil {
		return nil, err
	}
	fakePort, err := runnerproc.FreePort()
	if err != nil {
		return nil, err
	}
	s := &stack{
		FuncURL: "http://localhost:" + strconv.Itoa(port),
		FakeURL: "http://localhost:" + strconv.Itoa(fakePort),
		Dir:     dir,
	}
	dataDir := filepath.Join(dir, "data")
	// The deployed functions' JSON log, with an access line per request,
	// rather than the local runner's default short text.
	env := append(runnerproc.MinimalEnv(), "LOG_FORMAT=json")
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
	args := []string{"-port", strconv.Itoa(port), "-fake-google-port", strconv.Itoa(fakePort), "-data", dataDir}
	if cfg.Target == TargetDeployed {
		// The buildpack's program takes no flags: it is configured as a
		// deployment is, through its environment.
		deployed, err := deployedEnv(s.FuncURL, port, dataDir)
		if err != nil {
			s.stop()
			return nil, err
		}
		args, env = nil, append(env, deployed...)
	}
	if s.logFile, err = os.Create(filepath.Join(dir, "runner.log")); err != nil {
		s.stop()
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = s.logFile, s.logFile
	if s.proc, err = runnerproc.Start(cmd); err != nil {
		s.stop()
		return nil, err
	}
	s.StartedAt = s.proc.Started
	ready, took, err := s.proc.WaitReady(ctx, s.FuncURL, s.FakeURL, 30*time.Second)
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("%w; its output:\n%s", err, s.output())
	}
	s.Startup, s.FirstRequest = ready.Sub(s.StartedAt), took
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

// deployedEnv is the environment of the deployed target: its port, and
// the settings deploy.sh passes, with a file token store and a fresh key
// set file in dataDir where a deployment names Firestore and Secret Manager
// (the local runner sets the same defaults itself).
func deployedEnv(funcURL string, port int, dataDir string) ([]string, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	keys := filepath.Join(dataDir, "keys.json")
	if err := os.WriteFile(keys, keyring.Generate("loadtest"), 0o600); err != nil {
		return nil, err
	}
	return []string{
		"PORT=" + strconv.Itoa(port),
		"TOKEN_STORE=local",
		"LOCAL_STORE_PATH=" + filepath.Join(dataDir, "tokens.json"),
		"TOKEN_KEYS_FILE=" + keys,
		"OAUTH_REDIRECT_URL=" + funcURL + "/Callback",
		"AUTHORIZE_URL=" + funcURL + "/Authorize",
	}, nil
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
	if s.proc != nil {
		s.proc.Stop(5 * time.Second)
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

// procStatus is what /proc/PID says about a process's memory and CPU.
type procStatus struct {
	RSS, HWM int64         // bytes: resident now, and peak resident (VmHWM)
	CPU      time.Duration // user + system time so far
}

// readProc reads /proc/PID/status and /proc/PID/stat of the runner.
func (s *stack) readProc() (procStatus, error) { return readProc(s.proc.Cmd.Process.Pid) }

// readProc reads /proc/PID/status and /proc/PID/stat of process pid.
func readProc(pid int) (procStatus, error) {
	var ps procStatus
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
