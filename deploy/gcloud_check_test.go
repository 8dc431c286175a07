package deploy

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// realGcloud is the real gcloud, run in one Python process for every
// command line the tests check (testdata/gcloud_check.py): a gcloud process
// spends seconds of CPU starting and loading its command groups, and the
// tests check dozens of command lines. Commands run one at a time,
// isolated from any credentials and from the network.
type realGcloud struct {
	mu     sync.Mutex
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *bufio.Reader
	config string // CLOUDSDK_CONFIG, removed by close
	broken error
}

// gcloudAnswer is what gcloud_check.py says of one command line.
type gcloudAnswer struct {
	Code   int    `json:"code"`
	Output string `json:"output"`
}

// gcloudCallTimeout bounds one command line. Loading a command group takes
// seconds on an idle machine and has taken minutes on a busy shared one; a
// hang is longer.
const gcloudCallTimeout = 5 * time.Minute

var shared struct {
	once sync.Once
	g    *realGcloud
	err  error
}

// sharedGcloud starts the process on first use; TestMain closes it.
func sharedGcloud(gcloud string) (*realGcloud, error) {
	shared.once.Do(func() { shared.g, shared.err = startRealGcloud(gcloud) })
	return shared.g, shared.err
}

func startRealGcloud(gcloud string) (*realGcloud, error) {
	bin, err := filepath.EvalSymlinks(gcloud)
	if err != nil {
		return nil, fmt.Errorf("resolve gcloud: %w", err)
	}
	root := filepath.Dir(filepath.Dir(bin))
	python, err := gcloudPython(root)
	if err != nil {
		return nil, err
	}
	script, err := filepath.Abs(filepath.Join("testdata", "gcloud_check.py"))
	if err != nil {
		return nil, err
	}
	config, err := os.MkdirTemp("", "gcloud-config-")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(python, script, root)
	cmd.Env = append(os.Environ(),
		"CLOUDSDK_ROOT_DIR="+root,
		"CLOUDSDK_CONFIG="+config,
		"CLOUDSDK_CORE_DISABLE_PROMPTS=1",
		"CLOUDSDK_CORE_CHECK_GCE_METADATA=false", // no metadata-server credentials (Cloud Build, GCE)
		"CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK=1",
		"CLOUDSDK_CORE_DISABLE_USAGE_REPORTING=true",
		"CLOUDSDK_PROXY_TYPE=http", // and should anything try the network, a dead proxy
		"CLOUDSDK_PROXY_ADDRESS=127.0.0.1",
		"CLOUDSDK_PROXY_PORT=9",
	)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		os.RemoveAll(config)
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		os.RemoveAll(config)
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(config)
		return nil, fmt.Errorf("start %s %s: %w", python, script, err)
	}
	return &realGcloud{cmd: cmd, in: in, out: bufio.NewReader(out), config: config}, nil
}

// gcloudPython is the Python gcloud itself would run on: CLOUDSDK_PYTHON,
// the SDK's bundled Python, or python3.
func gcloudPython(root string) (string, error) {
	if p := os.Getenv("CLOUDSDK_PYTHON"); p != "" {
		return p, nil
	}
	bundled := filepath.Join(root, "platform", "bundledpythonunix", "bin", "python3")
	if _, err := os.Stat(bundled); err == nil {
		return bundled, nil
	}
	p, err := exec.LookPath("python3")
	if err != nil {
		return "", fmt.Errorf("no Python for gcloud: set CLOUDSDK_PYTHON: %w", err)
	}
	return p, nil
}

// run runs gcloud with c's arguments, in c's directory, and returns its
// exit status and output.
func (g *realGcloud) run(c call) (gcloudAnswer, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.broken != nil {
		return gcloudAnswer{}, g.broken
	}
	dir := ""
	if c.dir != "" {
		abs, err := filepath.Abs(c.dir)
		if err != nil {
			return gcloudAnswer{}, err
		}
		dir = abs
	}
	req, _ := json.Marshal(map[string]any{"argv": c.args, "dir": dir})
	type result struct {
		a   gcloudAnswer
		err error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		if _, r.err = g.in.Write(append(req, '\n')); r.err == nil {
			var line []byte
			if line, r.err = g.out.ReadBytes('\n'); r.err == nil {
				r.err = json.Unmarshal(line, &r.a)
			}
		}
		done <- r
	}()
	select {
	case r := <-done:
		if r.err != nil {
			g.broken = fmt.Errorf("gcloud_check.py: %w", r.err)
			g.cmd.Process.Kill()
			return gcloudAnswer{}, g.broken
		}
		return r.a, nil
	case <-time.After(gcloudCallTimeout):
		g.broken = fmt.Errorf("real gcloud hung on %s", c)
		g.cmd.Process.Kill()
		return gcloudAnswer{}, g.broken
	}
}

// closeSharedGcloud ends the shared process, if one was started.
func closeSharedGcloud() {
	g := shared.g
	if g == nil {
		return
	}
	g.in.Close()
	done := make(chan error, 1)
	go func() { done <- g.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		g.cmd.Process.Kill()
		<-done
	}
	os.RemoveAll(g.config)
}

func TestMain(m *testing.M) {
	code := m.Run()
	closeSharedGcloud()
	os.Exit(code)
}
