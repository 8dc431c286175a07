package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/browsertest"
)

// moduleRoot is where the README's commands run from.
const moduleRoot = "../../.."

// readmeCommands returns the commands of README.md's sh blocks, in order:
// continuations joined, comment lines and trailing comments dropped. It
// fails the test for a code block in another language than sh or mermaid,
// so that no command escapes the check.
func readmeCommands(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(moduleRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	trailingComment := regexp.MustCompile(`\s{2,}#\s.*$`)
	var cmds []string
	lang, inBlock, pending := "", false, ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if fence, ok := strings.CutPrefix(line, "```"); ok {
			if inBlock = !inBlock; inBlock {
				lang = fence
				if lang != "sh" && lang != "mermaid" {
					t.Errorf("README.md has a ```%s block; commands go in ```sh blocks, which this test runs", lang)
				}
			}
			continue
		}
		if !inBlock || lang != "sh" || strings.HasPrefix(strings.TrimSpace(line), "#") || strings.TrimSpace(line) == "" {
			continue
		}
		if cont, ok := strings.CutSuffix(line, `\`); ok {
			pending += cont
			continue
		}
		cmds = append(cmds, strings.TrimSpace(trailingComment.ReplaceAllString(pending+line, "")))
		pending = ""
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return cmds
}

// TestReadme_CommandsWorkAsWritten runs the README's curl commands, in the
// README's order, against the runner (as FAKE_GOOGLE_AUTO_APPROVE=true go
// run ./functions/cmd/local starts it, on a free port instead of 8080), and
// fails on an HTTP error. Its go commands must name packages that exist and
// flags and variables the runner knows. Only a command that needs a
// deployment ($LIST_URL, gcloud) is not run.
func TestReadme_CommandsWorkAsWritten(t *testing.T) {
	cmds := readmeCommands(t)
	if len(cmds) < 10 {
		t.Fatalf("found %d commands in README.md's sh blocks; the parser lost some: %q", len(cmds), cmds)
	}
	if _, err := exec.LookPath("curl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and curl is missing: %v", err)
		}
		t.Skipf("SKIPPED: curl is missing, so the README's curl commands cannot be run: %v", err)
	}
	r := browsertest.StartRunner(t, browsertest.RunnerConfig{Bin: runnerBin, Env: []string{autoApprove}})
	help, _ := exec.Command(runnerBin, "-h").CombinedOutput() // -h exits 2 after printing the flags
	mainGo, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	envPrefix := regexp.MustCompile(`^([A-Z_]+)=\S*\s+`)
	dir := t.TempDir() // the cookie jar goes here
	ran := 0
	for _, cmd := range cmds {
		switch {
		case strings.Contains(cmd, "$"):
			t.Logf("not run, it needs a deployment: %s", cmd)
		case strings.HasPrefix(cmd, "curl "):
			ran++
			local := strings.ReplaceAll(cmd, "localhost:8080", "localhost:"+strconv.Itoa(r.Port))
			sh := exec.Command("sh", "-c", strings.Replace(local, "curl ", "curl --fail-with-body --max-time 20 ", 1))
			sh.Dir = dir
			if out, err := sh.CombinedOutput(); err != nil {
				t.Errorf("%s\nfailed (%v): %s\nrunner output:\n%s", cmd, err, out, r.Output())
			}
		case strings.HasPrefix(cmd, "go ") || envPrefix.MatchString(cmd):
			rest := strings.TrimSuffix(cmd, " &")
			for m := envPrefix.FindStringSubmatch(rest); m != nil; m = envPrefix.FindStringSubmatch(rest) {
				if !strings.Contains(string(mainGo), strconv.Quote(m[1])) {
					t.Errorf("%s: the runner does not read %s", cmd, m[1])
				}
				rest = rest[len(m[0]):]
			}
			checkGoCommand(t, cmd, strings.Fields(rest), string(help))
		default:
			t.Errorf("the README test does not know how to check %q", cmd)
		}
	}
	if ran < 8 {
		t.Errorf("ran %d curl commands, want the README's 8 or more", ran)
	}
}

// checkGoCommand checks a go run or go test command: its packages exist,
// and a go run of the runner uses only flags the runner has.
func checkGoCommand(t *testing.T, cmd string, args []string, runnerHelp string) {
	t.Helper()
	if len(args) < 3 || args[0] != "go" || (args[1] != "run" && args[1] != "test") {
		t.Errorf("%s: want go run or go test", cmd)
		return
	}
	var pkgs, flags []string
	for _, a := range args[2:] {
		switch {
		case strings.HasPrefix(a, "./"):
			pkgs = append(pkgs, a)
		case strings.HasPrefix(a, "-"):
			flags = append(flags, strings.SplitN(a, "=", 2)[0])
		}
	}
	if len(pkgs) == 0 {
		t.Errorf("%s: names no package", cmd)
		return
	}
	list := exec.Command("go", append([]string{"list"}, pkgs...)...)
	list.Dir = moduleRoot
	if out, err := list.CombinedOutput(); err != nil {
		t.Errorf("%s: go list %v: %v\n%s", cmd, pkgs, err, out)
	}
	if args[1] == "run" && pkgs[0] == "./functions/cmd/local" {
		for _, f := range flags {
			if !strings.Contains(runnerHelp, "\n  "+f+" ") && !strings.Contains(runnerHelp, "\n  "+f+"\n") {
				t.Errorf("%s: the runner has no flag %s", cmd, f)
			}
		}
	}
}
