// Package firestoretest runs the real Cloud Firestore emulator for tests.
//
// A test binary that uses it calls Main from TestMain:
//
//	func TestMain(m *testing.M) { firestoretest.Main(m) }
//
// The emulator is started on first use (so a run that selects no emulator
// test pays nothing), on a free loopback port, in a process group of its own,
// and the whole group is stopped when the tests end. It is also stopped if
// the test binary dies without cleaning up: a watchdog shell kills the
// group when the binary's end of a pipe to it closes.
//
// The emulator's JVM starts with options that shorten its start, and keeps
// a class archive in the user's cache directory for later starts (jvm.go).
//
// When FIRESTORE_EMULATOR_HOST is already set, that emulator is used and
// nothing is started.
//
// When gcloud, Java or the emulator component is missing, tests that need the
// emulator fail under CI=true and are skipped, loudly, otherwise.
//
// Stop and Restart take the emulator away and bring it back on the same
// address, for tests of what the functions do while Firestore is down.
package firestoretest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// EnvHost is the variable the Firestore client libraries read to find the
// emulator.
const EnvHost = "FIRESTORE_EMULATOR_HOST"

// StartTimeout bounds how long Host waits for the emulator to answer.
var StartTimeout = 90 * time.Second

var (
	mu       sync.Mutex
	inMain   bool
	started  bool
	host     string
	startErr error
	emu      *emulator
	skipped  int
)

// Main runs the tests of m with the emulator available to them, stops the
// emulator (if one was started) and exits with the tests' status.
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run is Main for a TestMain with more to do afterwards: it returns the
// tests' status instead of exiting.
func Run(m *testing.M) int {
	mu.Lock()
	inMain = true
	mu.Unlock()
	code := m.Run()
	mu.Lock()
	if emu != nil {
		emu.stop(syscall.SIGTERM)
		emu = nil
	}
	if skipped > 0 {
		fmt.Fprintf(os.Stderr, "firestoretest: WARNING: %d test(s) needing the Firestore emulator were SKIPPED: %v\n", skipped, startErr)
	}
	mu.Unlock()
	return code
}

// Host returns the emulator's host:port, starting the emulator on first use.
// It returns an error saying what is missing when the emulator cannot run.
func Host() (string, error) {
	mu.Lock()
	defer mu.Unlock()
	if started {
		return host, startErr
	}
	started = true
	if h := os.Getenv(EnvHost); h != "" {
		host = h
		return host, nil
	}
	if !inMain {
		startErr = errors.New("firestoretest.Main was not called from TestMain, so the emulator could not be stopped after the tests; refusing to start it")
		return "", startErr
	}
	emu, startErr = start("", StartTimeout)
	if startErr != nil {
		return "", startErr
	}
	host = emu.host
	startErr = os.Setenv(EnvHost, host)
	return host, startErr
}

// Require returns the emulator's host:port for t. When the emulator is not
// available, it fails t under CI=true and skips it otherwise.
func Require(t testing.TB) string {
	t.Helper()
	h, err := Host()
	if err == nil {
		return h
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("Firestore emulator required under CI=true but unavailable: %v", err)
	}
	mu.Lock()
	skipped++
	mu.Unlock()
	t.Skipf("SKIPPED: this Firestore emulator test did NOT run: %v. "+
		"Install the Google Cloud CLI with its Firestore emulator component and Java 11+, "+
		"or point %s at a running emulator; under CI=true this is a failure.", err, EnvHost)
	return ""
}

// emulator is a running Firestore emulator: the component's launcher, or
// `gcloud emulators firestore start` (see emulatorCommand).
type emulator struct {
	host     string
	cmd      *exec.Cmd // the leader of the emulator's process group
	exited   chan struct{}
	watchdog *exec.Cmd
	log      *os.File
	// recording is where the JVM writes a class archive when it exits, and
	// archive where it is kept afterwards (see jvm.go); recording is "" when
	// no archive is being recorded.
	recording, archive string
}

// watchdogScript waits for its standard input to close (the test binary
// exited, however it exited) and then ends the emulator's process group.
const watchdogScript = `read -r _ || :
kill -TERM -$1 2>/dev/null || exit 0
sleep 10
kill -KILL -$1 2>/dev/null || :`

// start starts the emulator on addr, or on a free loopback port when addr
// is "", and waits until it answers and has served a first write.
func start(addr string, timeout time.Duration) (*emulator, error) {
	for _, bin := range []string{"gcloud", "java"} {
		if _, err := exec.LookPath(bin); err != nil {
			return nil, fmt.Errorf("%s not found in PATH (the Firestore emulator needs both gcloud and Java)", bin)
		}
	}
	if addr == "" {
		port, err := freePort()
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	}
	log, err := os.CreateTemp("", "firestore-emulator-*.log")
	if err != nil {
		return nil, fmt.Errorf("emulator log: %w", err)
	}
	e := &emulator{host: addr, exited: make(chan struct{}), log: log}
	h, p, _ := net.SplitHostPort(addr)
	e.cmd, e.recording, e.archive = emulatorCommand(h, p)
	// A file, not a pipe: Wait must not wait for the java grandchild to
	// close its output.
	e.cmd.Stdout, e.cmd.Stderr = log, log
	// gcloud moves itself into a new process group unless it leads its
	// session; as a session leader it keeps the group, and its bash and java
	// children stay in it. The launcher script does the same.
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	begin := time.Now()
	if err := e.cmd.Start(); err != nil {
		log.Close()
		os.Remove(log.Name())
		return nil, fmt.Errorf("start emulator: %w", err)
	}
	go func() { e.cmd.Wait(); close(e.exited) }()
	if err := e.startWatchdog(); err != nil {
		e.stop(syscall.SIGTERM)
		return nil, err
	}
	if err := e.waitReady(timeout); err != nil {
		out := e.output()
		e.stop(syscall.SIGTERM)
		return nil, fmt.Errorf("%w; emulator output:\n%s", err, out)
	}
	if err := e.warm(timeout); err != nil {
		out := e.output()
		e.stop(syscall.SIGTERM)
		return nil, fmt.Errorf("%w; emulator output:\n%s", err, out)
	}
	fmt.Fprintf(os.Stderr, "firestoretest: Firestore emulator ready on %s after %v\n", addr, time.Since(begin).Round(time.Millisecond))
	return e, nil
}

// startWatchdog starts a shell that ends the emulator's process group when
// this process's end of its standard input closes, so that no emulator
// outlives a test binary that crashed or was killed.
func (e *emulator) startWatchdog() error {
	w := exec.Command("sh", "-c", watchdogScript, "sh", strconv.Itoa(e.cmd.Process.Pid))
	w.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if _, err := w.StdinPipe(); err != nil {
		return fmt.Errorf("emulator watchdog: %w", err)
	}
	if err := w.Start(); err != nil {
		return fmt.Errorf("emulator watchdog: %w", err)
	}
	e.watchdog = w
	return nil
}

// waitReady polls the emulator's HTTP root, which answers "Ok" once it serves.
func (e *emulator) waitReady(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+e.host+"/", nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-e.exited:
			return fmt.Errorf("the Firestore emulator exited before answering on %s (is the cloud-firestore-emulator component installed?)", e.host)
		case <-ctx.Done():
			return fmt.Errorf("the Firestore emulator did not answer on %s within %v", e.host, timeout)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stop ends the emulator's whole process group (the launcher, or gcloud and
// its bash wrapper, and the java server) with sig, then with SIGKILL
// whatever is left after a grace period. It then keeps the class archive the
// JVM recorded if it exited cleanly, stops the watchdog and removes the log.
func (e *emulator) stop(sig syscall.Signal) {
	pgid := e.cmd.Process.Pid
	syscall.Kill(-pgid, sig)
	<-e.exited // reap the leader so that only live processes keep the group alive
	grace := 15 * time.Second
	if e.recording != "" && sig != syscall.SIGKILL {
		grace = time.Minute // the JVM writes its class archive as it exits
	}
	deadline := time.Now().Add(grace)
	for groupAlive(pgid) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	clean := sig != syscall.SIGKILL && !groupAlive(pgid)
	if !clean {
		syscall.Kill(-pgid, syscall.SIGKILL)
		for i := 0; groupAlive(pgid) && i < 100; i++ {
			time.Sleep(20 * time.Millisecond)
		}
	}
	keepArchive(e.recording, e.archive, clean)
	if e.watchdog != nil {
		syscall.Kill(-e.watchdog.Process.Pid, syscall.SIGKILL)
		e.watchdog.Wait()
	}
	e.log.Close()
	os.Remove(e.log.Name())
}

// output returns what the emulator printed so far.
func (e *emulator) output() string {
	b, err := os.ReadFile(e.log.Name())
	if err != nil {
		return fmt.Sprintf("(unreadable: %v)", err)
	}
	return string(b)
}

// groupAlive reports whether any process is left in the process group.
func groupAlive(pgid int) bool {
	return syscall.Kill(-pgid, 0) == nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
