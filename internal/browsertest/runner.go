package browsertest

import (
	"bufio"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/fakegoogle"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/runnerproc"
)

// RunnerConfig says how to start the local runner.
type RunnerConfig struct {
	Bin      string   // from runnerproc.Build
	Port     int      // -port; 0 picks a free port
	FakePort int      // -fake-google-port; 0 picks a free port
	DataDir  string   // -data; "" is a new t.TempDir()
	Env      []string // KEY=VALUE added to a minimal environment (PATH, HOME, TMPDIR)
	// SettingsInEnv passes the ports and the data folder as PORT,
	// FAKE_GOOGLE_PORT and LOCAL_DATA_DIR instead of flags.
	SettingsInEnv bool
	// TextLog leaves LOG_FORMAT to the runner's default (text), as a
	// user's run does. Otherwise the runner logs JSON, whose access lines
	// Requests reads.
	TextLog bool
	// SeedFakeState writes the fake Google's state file into a new
	// DataDir before the start, with this process's signing key
	// (fakegoogle.SeedStateFile), so that the runner loads its key instead
	// of spending seconds generating one. A test of what a first start
	// writes leaves it false.
	SeedFakeState bool
}

// Runner is a running local runner.
type Runner struct {
	URL      string // http://localhost:Port, where the functions are
	FakeURL  string // http://localhost:FakePort, the fake Google
	Port     int
	FakePort int
	DataDir  string

	t    testing.TB
	proc *runnerproc.Process
	out  *lockedBuffer
}

// readyTimeout bounds a runner's start. The start is CPU-bound (a runner
// with a new data folder, unless seeded, first generates the fake Google's
// RSA signing key), and on a CI machine saturated by the browser and emulator tests a
// runner built with -race once printed nothing for 20 s.
const readyTimeout = time.Minute

// StartRunner starts the runner binary with -port, -fake-google-port and
// -data (or their variables) and nothing else set but cfg.Env, waits until
// its functions answer, and stops it when the test ends. When it picked the
// ports itself and one was taken in the meantime, it tries new ones.
func StartRunner(t testing.TB, cfg RunnerConfig) *Runner {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
		if cfg.SeedFakeState {
			if err := fakegoogle.SeedStateFile(filepath.Join(cfg.DataDir, fakegoogle.StateFileName)); err != nil {
				t.Fatal(err)
			}
		}
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
		_, _, err := r.proc.WaitReady(context.Background(), r.URL, r.FakeURL, readyTimeout)
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
	}
	settings := []string{"-port", strconv.Itoa(cfg.Port), "-fake-google-port", strconv.Itoa(cfg.FakePort), "-data", cfg.DataDir}
	env := runnerproc.MinimalEnv()
	if !cfg.TextLog {
		env = append(env, "LOG_FORMAT=json")
	}
	env = append(env, cfg.Env...)
	if cfg.SettingsInEnv {
		env = append(env, "PORT="+strconv.Itoa(cfg.Port), "FAKE_GOOGLE_PORT="+strconv.Itoa(cfg.FakePort), "LOCAL_DATA_DIR="+cfg.DataDir)
		settings = nil
	}
	cmd := exec.Command(cfg.Bin, settings...)
	cmd.Env = env
	cmd.Stdout = r.out
	cmd.Stderr = r.out
	var err error
	if r.proc, err = runnerproc.Start(cmd); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	return r
}

// Output is everything the runner has written to stdout and stderr.
func (r *Runner) Output() string { return r.out.String() }

// AwaitOutput waits up to 5 s until the runner's output contains s (it
// comes through a pipe, a moment after the runner writes it), and returns
// the output. It fails the test if s does not come.
func (r *Runner) AwaitOutput(s string) string {
	r.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		out := r.Output()
		if strings.Contains(out, s) {
			return out
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("the runner's output lacks %q after 5s; it is:\n%s", s, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop ends the runner (SIGTERM to its process group, SIGKILL after 5 s)
// and waits until it has exited. It may be called more than once.
func (r *Runner) Stop() {
	if r.proc.Stop(5 * time.Second) {
		r.t.Logf("the local runner ignored SIGTERM for 5s; it was killed")
	}
}

// LogRequest is one access log line of the runner's functions.
type LogRequest struct {
	Function string `json:"function"`
	Method   string `json:"method"`
	Status   int    `json:"status"`
}

// Requests returns the access log lines the runner has written for the
// function, in order. It needs the JSON log (RunnerConfig.TextLog unset).
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
	port, err := runnerproc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}
