package gmailoauth

// These tests check the repository root against what Google's Go buildpack
// for Cloud Functions does with it (GoogleCloudPlatform/buildpacks,
// cmd/go/functions_framework/lib/lib.go and converter/get_package/main.go):
//
//   - The whole upload becomes the function source. GOOGLE_FUNCTION_SOURCE is
//     not read for Go; the package built is always the module root's.
//   - get_package parses every .go file of the root (parser.ParseDir, no
//     filter: tests included, build tags ignored). They must all have one
//     package name, and their imports are collected.
//   - The module path's first element must contain a dot.
//   - If those imports include the framework's functions package, the
//     declarative template is used: a main package in
//     <source>/functions.local/app/main.go that blank-imports the module root
//     and calls funcframework.Start. Otherwise it generates
//     userfunction.<FUNCTION_TARGET>, which our root package does not have.
//   - It is built with `go build` inside the module, and at run time
//     FUNCTION_TARGET (= --entry-point) picks the registered function to
//     serve at "/"; an unknown name stops the server at start-up.

import (
	"bufio"
	"context"
	"errors"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/runnerproc"
)

const (
	frameworkFunctions = "github.com/GoogleCloudPlatform/functions-framework-go/functions"
	ourFunctions       = "github.com/gmail-oauth-functions/gmail-oauth-functions/functions"
	ignoreFile         = "deploy/functions.gcloudignore"
)

// entryPoints are the --entry-point values deploy/deploy.sh uses.
var entryPoints = []string{"Authorize", "Callback", "ListMessages", "Disconnect"}

// deployedMain is the buildpack's template for functions that register
// themselves (lib/template_declarative.go), filled in for this module. It is
// a program of its own so that the load tool (deploy/loadtest, -target
// deployed) runs what Cloud Functions runs; the upload's build below uses it
// as the main package the buildpack generates.
const deployedMain = "deploy/loadtest/deployed/main.go"

// modulePath reads the module path and the go directive from go.mod.
func modulePath(t *testing.T) (module, goVersion string) {
	t.Helper()
	b, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "module" {
			module = f[1]
		}
		if len(f) == 2 && f[0] == "go" {
			goVersion = f[1]
		}
	}
	if module == "" || goVersion == "" {
		t.Fatal("go.mod has no module or go line")
	}
	return module, goVersion
}

// TestDeployedMain_IsFilledInForThisModule checks that the buildpack's main
// blank-imports this module's root, whose init registers the functions, and
// starts the Functions Framework, as the template filled in for this module
// does.
func TestDeployedMain_IsFilledInForThisModule(t *testing.T) {
	module, _ := modulePath(t)
	f, err := parser.ParseFile(token.NewFileSet(), deployedMain, nil, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	imports := map[string]string{}
	for _, im := range f.Imports {
		p, _ := strconv.Unquote(im.Path.Value)
		imports[p] = ""
		if im.Name != nil {
			imports[p] = im.Name.Name
		}
	}
	if name, ok := imports[module]; f.Name.Name != "main" || !ok || name != "_" {
		t.Errorf("%s: package %s, imports %v; want package main blank-importing %s", deployedMain, f.Name.Name, imports, module)
	}
	if _, ok := imports["github.com/GoogleCloudPlatform/functions-framework-go/funcframework"]; !ok {
		t.Errorf("%s does not import the Functions Framework's funcframework", deployedMain)
	}
}

func TestBuildpackPicksTheRootPackage(t *testing.T) {
	module, _ := modulePath(t)
	if first, _, _ := strings.Cut(module, "/"); !strings.Contains(first, ".") {
		t.Errorf("module path %q: the buildpack needs a dot in its first element", module)
	}

	// What get_package does: every .go file, whatever its suffix or build tags.
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	names := map[string][]string{}
	imports := map[string]bool{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".go") {
			continue
		}
		f, err := parser.ParseFile(fset, e.Name(), nil, parser.ImportsOnly)
		if err != nil {
			t.Fatalf("the buildpack cannot parse %s: %v", e.Name(), err)
		}
		names[f.Name.Name] = append(names[f.Name.Name], e.Name())
		for _, im := range f.Imports {
			p, _ := strconv.Unquote(im.Path.Value)
			imports[p] = true
		}
	}
	if len(names) != 1 {
		t.Fatalf("the root has %d package names %v: the buildpack stops with \"multiple packages in user code directory\"", len(names), names)
	}
	for name := range names {
		if name == "main" {
			t.Errorf("the root package is main: the buildpack cannot import it")
		}
		if fi, err := os.Stat(name); err == nil && fi.IsDir() {
			t.Errorf("a directory ./%s has the root package's name: older buildpacks would build ./%s instead of the root", name, name)
		}
	}
	if !imports[frameworkFunctions] {
		t.Errorf("the root package does not import %s: the buildpack would generate userfunction.<entry point>, which does not exist", frameworkFunctions)
	}
	if !imports[ourFunctions] {
		t.Errorf("the root package does not import %s: nothing would register the functions", ourFunctions)
	}
}

// runtimeOf returns the default --runtime of deploy/deploy.sh, e.g. go126.
func runtimeOf(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("deploy/deploy.sh")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`RUNTIME="\$\{RUNTIME:-(go1\d+)\}"`).FindSubmatch(b)
	if m == nil {
		t.Fatal("deploy/deploy.sh: no default RUNTIME=go1NN found")
	}
	return string(m[1])
}

func TestGoDirectiveFitsTheRuntime(t *testing.T) {
	_, goVersion := modulePath(t)
	runtime := runtimeOf(t) // go126 means Go 1.26.x
	parts := strings.Split(goVersion, ".")
	if len(parts) < 2 {
		t.Fatalf("go directive %q", goVersion)
	}
	minor, err := strconv.Atoi(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	runtimeMinor, _ := strconv.Atoi(strings.TrimPrefix(runtime, "go1"))
	if parts[0] != "1" || minor > runtimeMinor {
		t.Errorf("go.mod says go %s, newer than the %s runtime (Go 1.%d): the build would fail on Cloud Functions", goVersion, runtime, runtimeMinor)
	}
	if len(parts) == 3 && parts[2] != "0" && minor == runtimeMinor {
		t.Logf("go.mod says go %s: the %s runtime must ship at least that patch release (go %d.%d.0 is safest)", goVersion, runtime, 1, minor)
	}
}

func TestBuildpackBuildServesEveryEntryPoint(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the function binary (-short skips it)")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go is not on PATH: %v", err)
	}
	dir := t.TempDir()

	// The upload, as gcloud makes it with the ignore file deploy.sh passes.
	src := filepath.Join(dir, "serverless_function_source_code")
	rules := readIgnoreRules(t, ignoreFile)
	copied := copyTree(t, ".", src, rules)
	for _, must := range []string{"go.mod", "go.sum", "functions.go", "functions/functions.go"} {
		if !copied[must] {
			t.Fatalf("%s is not uploaded: %s excludes it", must, ignoreFile)
		}
	}
	for p := range copied {
		if strings.HasSuffix(p, "_test.go") || strings.HasPrefix(p, "deploy/") || strings.Contains(path.Base(p), "client_secret") {
			t.Errorf("%s would be uploaded", p)
		}
	}

	// The buildpack's generated main package, inside the module.
	app := filepath.Join(src, "functions.local", "app")
	if err := os.MkdirAll(app, 0o755); err != nil {
		t.Fatal(err)
	}
	main, err := os.ReadFile(deployedMain)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(app, "main.go"), main, 0o644); err != nil {
		t.Fatal(err)
	}
	// The build compiles every dependency when nothing else built them in
	// this configuration yet: minutes on a busy two-core machine.
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	// The buildpack then runs `go mod tidy` in the source. Here it may not
	// reach the module proxy: offline, a tidy that needs the network is
	// reported and skipped, any other failure is one the buildpack would hit.
	tidy := exec.CommandContext(ctx, goTool, "mod", "tidy")
	tidy.Dir = src
	tidy.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off", "GOPROXY=off")
	if out, err := tidy.CombinedOutput(); err != nil {
		if !strings.Contains(string(out), "GOPROXY=off") && !strings.Contains(string(out), "module lookup disabled") {
			t.Fatalf("the buildpack's go mod tidy would fail: %v\n%s", err, out)
		}
		t.Logf("go mod tidy needs the network here, skipped it: %s", lineWith(string(out), "GOPROXY=off"))
	}

	// The buildpack's build, in the test's own configuration (race detector,
	// cgo) rather than the buildpack's: the layout and the go.mod are what
	// is checked here, and another configuration would compile the whole
	// dependency tree once more.
	bin := filepath.Join(dir, "main")
	flags, env := runnerproc.SameBuild()
	build := exec.CommandContext(ctx, goTool, append(append([]string{"build"}, flags...), "-o", bin, "./functions.local/app")...)
	build.Dir = src
	build.Env = append(append(os.Environ(), "GOFLAGS=-mod=readonly -buildvcs=false", "GOWORK=off"), env...)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("the buildpack's build would fail: go build ./functions.local/app: %v\n%s", err, out)
	}

	// Local settings, so that each function really works rather than
	// answering "not configured": a file token store, a client secret file
	// and a key set file. Nothing reaches Google: only Authorize's redirect
	// names it.
	cfg := localSettings(t, dir)
	answers := map[string]int{}
	for _, target := range entryPoints {
		t.Run(target, func(t *testing.T) {
			status, loc, body, logs := serveOnce(t, bin, target, cfg)
			answers[target] = status
			if status == http.StatusNotFound || status == http.StatusServiceUnavailable {
				t.Errorf("FUNCTION_TARGET=%s answered %d (%s)\nlogs:\n%s", target, status, body, logs)
			}
			if target == "Authorize" && !strings.Contains(loc+body, "https://accounts.google.com/") {
				t.Errorf("Authorize: want Google's consent page as redirect or authorization_url, got %d %q %s", status, loc, body)
			}
			t.Logf("FUNCTION_TARGET=%s: GET / -> %d %s %s", target, status, loc, firstLineOf(body))
		})
	}
	if answers["Authorize"] == answers["Callback"] && answers["Callback"] == answers["ListMessages"] {
		t.Errorf("Authorize, Callback and ListMessages answer alike (%v): FUNCTION_TARGET does not pick the function", answers)
	}

	t.Run("unknown target fails to start", func(t *testing.T) {
		out, err := runUntilExit(t, bin, "NoSuchFunction")
		if err == nil || !strings.Contains(out, "no matching function") {
			t.Errorf("FUNCTION_TARGET=NoSuchFunction: want a start-up failure naming no matching function, got %v:\n%s", err, out)
		}
	})
}

// functionEnv is a clean environment: only what Cloud Run would set, so no
// setting of the developer's shell leaks in.
func functionEnv(port, target string) []string {
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.TempDir(),
		"PORT=" + port,
		"FUNCTION_TARGET=" + target,
		"K_SERVICE=" + strings.ToLower(target),
		"K_REVISION=" + strings.ToLower(target) + "-00001-abc",
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// serveOnce starts the binary for target, waits until it answers GET /, and
// stops it.
func serveOnce(t *testing.T, bin, target string, settings []string) (status int, location, body, logs string) {
	t.Helper()
	port := freePort(t)
	cmd := exec.Command(bin)
	cmd.Env = append(functionEnv(port, target), settings...)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
		<-exited
	}()

	client := &http.Client{
		Timeout:       5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("FUNCTION_TARGET=%s: the server exited (%v) before answering:\n%s", target, err, out.String())
		default:
		}
		req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:"+port+"/", nil)
		req.Header.Set("Accept", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Location"), string(b), out.String()
	}
	t.Fatalf("FUNCTION_TARGET=%s: no answer on port %s within 20s:\n%s", target, port, out.String())
	return 0, "", "", ""
}

// localSettings writes a client secret and a key set under dir and returns
// the settings that make the functions use them and a local token store.
func localSettings(t *testing.T, dir string) []string {
	t.Helper()
	const base = "http://127.0.0.1:8080"
	clientSecret := filepath.Join(dir, "client_secret.json")
	keys := filepath.Join(dir, "keys.json")
	write := func(name, content string) {
		if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(clientSecret, `{"web":{"client_id":"test-client.apps.googleusercontent.com","client_secret":"test-secret",`+
		`"auth_uri":"https://accounts.google.com/o/oauth2/auth","token_uri":"https://oauth2.googleapis.com/token",`+
		`"redirect_uris":["`+base+`/Callback"]}}`)
	write(keys, `{"primary":"k1","keys":{"k1":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}}`)
	return []string{
		"OAUTH_CLIENT_SECRET_FILE=" + clientSecret,
		"TOKEN_KEYS_FILE=" + keys,
		"TOKEN_STORE=local",
		"LOCAL_STORE_PATH=" + filepath.Join(dir, "tokens.json"),
		"AUTHORIZE_URL=" + base + "/Authorize",
		"OAUTH_REDIRECT_URL=" + base + "/Callback",
		"LIST_AUTH_MODE=session",
	}
}

// syncBuffer collects a process's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runUntilExit runs the binary and waits for it to stop by itself.
func runUntilExit(t *testing.T, bin, target string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = functionEnv(freePort(t), target)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return string(out), errors.New("still running after 20s")
	}
	if err == nil {
		return string(out), nil
	}
	return string(out), err
}

// ignoreRule is one line of a .gcloudignore file, in the subset of the
// .gitignore syntax that deploy/functions.gcloudignore keeps to.
type ignoreRule struct {
	pattern  string
	negate   bool
	anchored bool // matched against the whole path from the root
	dirOnly  bool
}

func readIgnoreRules(t *testing.T, name string) []ignoreRule {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rules []ignoreRule
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), " ")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var r ignoreRule
		if r.negate = strings.HasPrefix(line, "!"); r.negate {
			line = line[1:]
		}
		if r.dirOnly = strings.HasSuffix(line, "/"); r.dirOnly {
			line = strings.TrimSuffix(line, "/")
		}
		line = strings.TrimPrefix(line, "**/")
		if strings.Contains(line, "**") || strings.ContainsAny(line, "[\\") {
			t.Fatalf("%s: %q uses syntax this test does not implement", name, sc.Text())
		}
		r.anchored = strings.Contains(line, "/")
		r.pattern = strings.TrimPrefix(line, "/")
		if _, err := path.Match(r.pattern, ""); err != nil {
			t.Fatalf("%s: bad pattern %q: %v", name, sc.Text(), err)
		}
		rules = append(rules, r)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rules
}

// ignored reports whether the slash-separated path rel is left out; as in
// git, the last matching rule decides.
func ignored(rules []ignoreRule, rel string, isDir bool) bool {
	out := false
	for _, r := range rules {
		if r.dirOnly && !isDir {
			continue
		}
		subject := path.Base(rel)
		if r.anchored {
			subject = rel
		}
		if ok, _ := path.Match(r.pattern, subject); ok {
			out = !r.negate
		}
	}
	return out
}

func TestIgnoreRules(t *testing.T) {
	rules := readIgnoreRules(t, ignoreFile)
	for rel, want := range map[string]bool{
		"go.mod":                         false,
		"functions.go":                   false,
		"functions/functions.go":         false,
		"internal/app/app.go":            false,
		"buildpack_test.go":              true,
		"internal/app/app_test.go":       true,
		"deploy/deploy.sh":               true,
		"README.md":                      true,
		"client_secret.json":             true,
		"secrets/client_secret_web.json": true,
		"functions/cmd/local/main.go":    true,
		"cloudbuild.yaml":                true,
	} {
		got := false
		parts := strings.Split(rel, "/")
		for i := range parts {
			if ignored(rules, strings.Join(parts[:i+1], "/"), i < len(parts)-1) {
				got = true
				break
			}
		}
		if got != want {
			t.Errorf("%s ignored = %v, want %v", rel, got, want)
		}
	}
}

// copyTree copies src to dst leaving out what the rules ignore, and returns
// the slash-separated paths copied.
func copyTree(t *testing.T, src, dst string, rules []ignoreRule) map[string]bool {
	t.Helper()
	copied := map[string]bool{}
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if ignored(rules, rel, d.IsDir()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(dst, filepath.FromSlash(rel))
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		copied[rel] = true
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return copied
}

// lineWith returns the first line of s that contains sub.
func lineWith(s, sub string) string {
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, sub) {
			return strings.TrimSpace(line)
		}
	}
	return strings.TrimSpace(s)
}

func firstLineOf(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	if len(line) > 200 {
		line = line[:200]
	}
	return line
}
