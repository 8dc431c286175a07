package deploy

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
)

// shellWords splits a command line as a POSIX shell would, for the forms the
// docs use: blanks separate words, '...' and "..." quote (nothing is expanded
// inside them), a backslash outside quotes escapes the next character, and an
// unquoted # that starts a word begins a comment.
func shellWords(line string) ([]string, error) {
	var (
		words []string
		w     strings.Builder
		inW   bool
		quote rune
	)
	rs := []rune(line)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			w.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inW = r, true
		case r == '\\' && i+1 < len(rs):
			i++
			w.WriteRune(rs[i])
			inW = true
		case r == ' ' || r == '\t':
			if inW {
				words = append(words, w.String())
				w.Reset()
				inW = false
			}
		case r == '#' && !inW:
			return words, nil
		default:
			w.WriteRune(r)
			inW = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unclosed %c in %q", quote, line)
	}
	if inW {
		words = append(words, w.String())
	}
	return words, nil
}

func TestShellWords(t *testing.T) {
	for line, want := range map[string][]string{
		`gcloud a b --x=y`:                       {"gcloud", "a", "b", "--x=y"},
		`gcloud a '--s=^;^A=1;B=x,y' --f="q r"`:  {"gcloud", "a", "--s=^;^A=1;B=x,y", "--f=q r"},
		`gcloud a --v='value(url)'   # a remark`: {"gcloud", "a", "--v=value(url)"},
		`deploy/deploy.sh --x=a\ b --y=a#b`:      {"deploy/deploy.sh", "--x=a b", "--y=a#b"},
	} {
		got, err := shellWords(line)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("shellWords(%s) = %q, %v; want %q", line, got, err, want)
		}
	}
	if _, err := shellWords(`gcloud 'open`); err == nil {
		t.Error("an unclosed quote must be an error")
	}
}

// docCommands returns the commands, as words, starting with prefix that a
// markdown file shows in its code blocks, or a YAML file in its comments,
// line continuations joined.
func docCommands(t *testing.T, file, prefix string) [][]string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	yaml := strings.HasSuffix(file, ".yaml")
	var lines []string // the commands' text, one line each, "" elsewhere
	inBlock := false
	for _, line := range strings.Split(string(b), "\n") {
		l := strings.TrimSpace(line)
		c, comment := strings.CutPrefix(l, "#")
		switch {
		case yaml && comment:
			lines = append(lines, strings.TrimSpace(c))
		case !yaml && strings.HasPrefix(l, "```"):
			inBlock = !inBlock
			lines = append(lines, "")
		case !yaml && inBlock:
			lines = append(lines, l)
		default:
			lines = append(lines, "")
		}
	}
	var out [][]string
	for _, l := range strings.Split(strings.ReplaceAll(strings.Join(lines, "\n"), "\\\n", " "), "\n") {
		if !strings.HasPrefix(l, prefix) {
			continue
		}
		words, err := shellWords(l)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		out = append(out, words)
	}
	return out
}

// The runbook for a leaked server credential (SECURITY.md) must work as
// written: its commands are ones gcloud accepts; they remove every invoker
// binding deploy.sh gives that caller, on ListMessages and Disconnect; and its
// redeploy leaves the caller out of both the bindings and the allow-list.
func TestSecurityRunbookCutsOffALeakedCaller(t *testing.T) {
	const (
		leaked = "backend@caller-project.iam.gserviceaccount.com"
		other  = "other@caller-project.iam.gserviceaccount.com"
	)
	var gcloud []call
	var redeploy []string
	for _, words := range docCommands(t, "../SECURITY.md", "gcloud ") {
		gcloud = append(gcloud, call{args: words[1:]})
	}
	for _, words := range docCommands(t, "../SECURITY.md", "deploy/deploy.sh ") {
		if redeploy != nil {
			t.Fatal("SECURITY.md shows more than one deploy.sh command; the runbook's redeploy must be the only one")
		}
		redeploy = words[1:]
	}
	removes := find(gcloud, "functions", "remove-invoker-policy-binding")
	if len(removes) == 0 || redeploy == nil {
		t.Fatalf("SECURITY.md's runbook shows no remove-invoker-policy-binding or no redeploy:\n%s", dump(gcloud))
	}

	// What deploy.sh grants the caller, in the runbook's project and region.
	project, _ := removes[0].flag("project")
	region, _ := removes[0].flag("region")
	calls, out, err := runScript(t, nil, "deploy.sh", "--project="+project, "--region="+region, "--list-auth=iam", "--allowed-callers="+leaked+","+other)
	if err != nil {
		t.Fatalf("deploy.sh: %v\n%s", err, out)
	}
	granted := map[string]bool{}
	for _, c := range find(calls, "functions", "add-invoker-policy-binding") {
		if c.has("--member=serviceAccount:" + leaked) {
			granted[strings.Join(c.args[2:], " ")] = true
		}
	}
	removed := map[string]bool{}
	for _, c := range removes {
		removed[strings.Join(c.args[2:], " ")] = true
	}
	if len(granted) != 2 || !maps.Equal(granted, removed) {
		t.Errorf("deploy.sh grants the caller\n  %v\nthe runbook removes\n  %v\n(both private functions, exactly)", slices.Sorted(maps.Keys(granted)), slices.Sorted(maps.Keys(removed)))
	}

	calls, out, err = runScript(t, nil, "deploy.sh", redeploy...)
	if err != nil {
		t.Fatalf("the runbook's redeploy: %v\n%s", err, out)
	}
	for _, c := range calls {
		if strings.Contains(c.String(), leaked) {
			t.Errorf("the runbook's redeploy still names the leaked caller: %s", c)
		}
	}
	if got := invokers(calls); len(got["gmail-list-messages"]) == 0 || len(got["gmail-disconnect"]) == 0 {
		t.Errorf("the runbook's redeploy must keep the other callers: %v", got)
	}
	checkWithRealGcloud(t, gcloud)
}

// The Cloud Build commands deploy/README.md and cloudbuild.yaml show work as
// written: gcloud accepts them, and their substitutions, read as gcloud reads
// them, deploy; two allowed callers (a value with a comma) reach both
// private functions.
func TestCloudBuildDocumentedCommands(t *testing.T) {
	var submits []call
	for _, file := range []string{"README.md", "../cloudbuild.yaml"} {
		cmds := docCommands(t, file, "gcloud builds submit ")
		if len(cmds) < 2 {
			t.Errorf("%s shows %d gcloud builds submit commands; want the session example and the iam one with two callers", file, len(cmds))
		}
		for _, words := range cmds {
			// gcloud reads --config from where it runs: the source root.
			submits = append(submits, call{args: words[1:], dir: ".."})
		}
	}
	twoCallers := false
	for _, c := range submits {
		v, ok := c.flag("substitutions")
		if !ok {
			t.Errorf("no --substitutions in %s", c)
			continue
		}
		subs := envVars(t, v)
		calls := cloudBuildDeploy(t, subs)
		callers := strings.Split(subs["_ALLOWED_CALLERS"], ",")
		if subs["_LIST_AUTH"] != "iam" || len(callers) < 2 {
			continue
		}
		twoCallers = true
		var want []string
		for _, c := range callers {
			want = append(want, "serviceAccount:"+c)
		}
		got := invokers(calls)
		for _, name := range []string{"gmail-list-messages", "gmail-disconnect"} {
			if !slices.Equal(got[name], want) {
				t.Errorf("%s: invokers of %s = %v, want %v", c, name, got[name], want)
			}
		}
	}
	if !twoCallers {
		t.Error("no documented gcloud builds submit passes two _ALLOWED_CALLERS in iam mode")
	}
	checkWithRealGcloud(t, submits)
}
