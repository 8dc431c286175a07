package browsertest

import (
	"bufio"
	"encoding/json"
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
	"testing"
	"time"
)

// RunnerPackage is the import path of the local runner.
const RunnerPackage = "github.com/gmail-oauth-functions/gmail-oauth-functions/functions/cmd/local"

// BuildRunner builds the local runner into dir, as the README says
// (go build -o DIR/local ./functions/cmd/local), and returns the binary's
// path.
func BuildRunner(dir string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("the go command is needed to build the local runner: %w", err)
	}
	bin := filepath.Join(dir, "local")
	cmd := exec.Command(goBin, "build", "-o", bin, RunnerPackage)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", RunnerPackage, err, out)
	}
	return bin, nil
}

// RunnerConfig says how to start the local runner.
type RunnerConfig struct {
	Bin      string   // from BuildRunner
	Port     int      // -port; 0 picks a free port
	FakePort int      // -fake-google-port; 0 picks a free port
	DataDir  string   // -data; "" is a new t.TempDir()
	Env      []string // KEY=VALUE added to a minimal environment (PATH, HOME, TMPDIR)
	// SettingsInEnv passes the ports and the data folder as PORT,
	// FAKE_GOOGLE_PORT and LOCAL_DATA_DIR instead of flags.
	SettingsInEnv bool
}

// Runner is a running local runner.
type Runner struct {
	URL      string // http://localhost:Port, where the functions are
	FakeURL  string // http://localhost:FakePort, the fake Google
	Port     int
	FakePort int
	DataDir  string

	t      testing.TB
	cmd    *exec.Cmd
	out    *lockedBuffer
	exited chan struct{}
	err    error // of cmd.Wait, valid once exited is closed
}

// StartRunner starts the runner binary with -port, -fake-google-port and
// -data (or their variables) and nothing else set but cfg.Env, waits until
// its functions answer, and stops it when the test ends. When it picked the
// ports itself and one was taken in the meantime, it tries new ones.
func StartRunner(t testing.TB, cfg RunnerConfig) *Runner {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	pickPorts := cfg.Port == 0 || cfg.FakePort == 0
	for attempt := 1; ; attempt++ {
		c := cfg
		if c.Port == 0 {
			c.Port = FreePort(t)
		}
		if c.FakePort == 0 {
			c.FakePort = FreePort(t)
		}
		r := startRunner(t, c)
		err := r.waitReady()
		if err == nil {
			return r
		}
		r.Stop()
		if pickPorts && attempt < 3 && strings.Contains(r.Output(), "address already in use") {
			t.Logf("a port was taken before the runner bound it; trying new ports: %v", err)
			continue
		}
		t.Fatalf("%v; the runner's output:\n%s", err, r.Output())
	}
}

func startRunner(t testing.TB, cfg RunnerConfig) *Runner {
	t.Helper()
	r := &Runner{
		URL:      "http://localhost:" + strconv.Itoa(cfg.Port),
		FakeURL:  "http://localhost:" + strconv.Itoa(cfg.FakePort),
		Port:     cfg.Port,
		FakePort: cfg.FakePort,
		DataDir:  cfg.DataDir,
		t:        t,
		out:      &lockedBuffer{},
		exited:   make(chan struct{}),
	}
	settings := []string{"-port", strconv.Itoa(cfg.Port), "-fake-google-port", strconv.Itoa(cfg.FakePort), "-data", cfg.DataDir}
	env := append(minimalEnv(), cfg.Env...)
	if cfg.SettingsInEnv {
		env = append(env, "PORT="+strconv.Itoa(cfg.Port), "FAKE_GOOGLE_PORT="+strconv.Itoa(cfg.FakePort), "LOCAL_DATA_DIR="+cfg.DataDir)
		settings = nil
	}
	r.cmd = exec.Command(cfg.Bin, settings...)
	r.cmd.Env = env
	r.cmd.Stdout = r.out
	r.cmd.Stderr = r.out
	// Its own process group, so Stop reaches anything it starts; killed
	// with the test process if that dies first.
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("starting the local runner: %v", err)
	}
	go func() {
		r.err = r.cmd.Wait()
		close(r.exited)
	}()
	t.Cleanup(r.Stop)
	return r
}

// minimalEnv is the environment of the runner: only what a shell needs, so
// that no setting of the test's own environment reaches it.
func minimalEnv() []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// waitReady waits until Authorize answers a JSON client with an
// authorization URL that points at the fake Google.
func (r *Runner) waitReady() error {
	client := &http.Client{Timeout: 2 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	deadline := time.Now().Add(20 * time.Second)
	last := "no answer yet"
	for time.Now().Before(deadline) {
		select {
		case <-r.exited:
			return fmt.Errorf("the local runner exited before it answered (%v)", r.err)
		default:
		}
		req, _ := http.NewRequest(http.MethodGet, r.URL+"/Authorize", nil)
		req.Header.Set("Accept", "application/json")
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			var v struct {
				URL string `json:"authorization_url"`
			}
			if resp.StatusCode == http.StatusOK && json.Unmarshal(body, &v) == nil && strings.HasPrefix(v.URL, r.FakeURL+"/") {
				return nil
			}
			last = fmt.Sprintf("status %d: %s", resp.StatusCode, body)
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("the local runner did not answer GET /Authorize within 20s (last: %s)", last)
}

// Output is everything the runner has written to stdout and stderr.
func (r *Runner) Output() string { return r.out.String() }

// Stop ends the runner (SIGTERM to its process group, SIGKILL after 5 s)
// and waits until it has exited. It may be called more than once.
func (r *Runner) Stop() {
	select {
	case <-r.exited:
		return
	default:
	}
	pgid := r.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(5 * time.Second):
		r.t.Logf("the local runner ignored SIGTERM for 5s; killing it")
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-r.exited
	}
	// Anything else it started is in its group.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// LogRequest is one access log line of the runner's functions.
type LogRequest struct {
	Function string `json:"function"`
	Method   string `json:"method"`
	Status   int    `json:"status"`
}

// Requests returns the access log lines the runner has written for the
// function, in order.
func (r *Runner) Requests(function string) []LogRequest {
	var got []LogRequest
	sc := bufio.NewScanner(strings.NewReader(r.Output()))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var line struct {
			Message string `json:"message"`
			LogRequest
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Message == "request" && line.Function == function {
			got = append(got, line.LogRequest)
		}
	}
	return got
}

// FreePort returns a TCP port on localhost that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "localhost:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer ln.Close()
	addr, ok := ln.Addr().(*net.TCPAddr)
	if !ok {
		t.Fatalf("listener address %v is not TCP", ln.Addr())
	}
	return addr.Port
}
