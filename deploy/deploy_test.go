package deploy

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

// need returns the path of tool. When it is missing the test fails under
// CI=true and otherwise skips, saying so on stderr even without -v.
func need(t *testing.T, tool, why string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed and CI=true: %s", tool, why)
	}
	msg := fmt.Sprintf("SKIPPED %s: %s is not installed, so %s is not checked (install it, e.g. apt-get install -y %s; under CI=true this fails)", t.Name(), tool, why, tool)
	fmt.Fprintln(os.Stderr, msg)
	t.Skip(msg)
	return ""
}

// scripts lists the shell scripts of this directory.
func scripts(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"setup.sh", "deploy.sh", "rotate-keys.sh", "lib.sh"} {
		if !slices.Contains(files, want) {
			t.Fatalf("deploy/%s is missing (found %v)", want, files)
		}
	}
	return files
}

func TestScriptsParse(t *testing.T) {
	bash := need(t, "bash", "the scripts' syntax")
	for _, f := range scripts(t) {
		if out, err := exec.Command(bash, "-n", f).CombinedOutput(); err != nil {
			t.Errorf("bash -n %s: %v\n%s", f, err, out)
		}
	}
}

func TestScriptsPassShellcheck(t *testing.T) {
	sc := need(t, "shellcheck", "the scripts' lint")
	args := append([]string{"-x", "--severity=style"}, scripts(t)...)
	if out, err := exec.Command(sc, args...).CombinedOutput(); err != nil {
		t.Errorf("shellcheck %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func TestScriptsAreExecutable(t *testing.T) {
	for _, f := range scripts(t) {
		if f == "lib.sh" {
			continue
		}
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode()&0o111 == 0 {
			t.Errorf("%s is not executable (chmod +x deploy/%s)", f, f)
		}
	}
}

// commandWords returns, for each gcloud invocation on the line, the command
// words after "gcloud" up to the first token that is not a plain lower-case
// word (a flag, a variable, a quoted or dotted argument, a redirection).
func commandWords(line string) [][]string {
	var out [][]string
	fields := strings.Fields(line)
	for i, f := range fields {
		if f != "gcloud" && !strings.HasSuffix(f, "(gcloud") && !strings.HasSuffix(f, "'gcloud") && !strings.HasSuffix(f, "`gcloud") {
			continue
		}
		var words []string
		for _, w := range fields[i+1:] {
			if !plainWord.MatchString(w) {
				break
			}
			words = append(words, w)
		}
		if len(words) > 0 {
			out = append(out, words)
		}
	}
	return out
}

var plainWord = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

// gcloudCommands returns every "gcloud group ... verb" the scripts run or
// tell the reader to run, and the scripts it is in.
func gcloudCommands(t *testing.T) map[string][]string {
	t.Helper()
	found := map[string][]string{}
	for _, f := range scripts(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		text := strings.ReplaceAll(string(b), "\\\n", " ")
		for _, line := range strings.Split(text, "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			for _, words := range commandWords(line) {
				cmd := "gcloud " + strings.Join(words, " ")
				if !slices.Contains(found[cmd], f) {
					found[cmd] = append(found[cmd], f)
				}
			}
		}
	}
	if len(found) < 10 {
		t.Fatalf("found only %d gcloud commands in the scripts (%v): the extraction is broken", len(found), found)
	}
	return found
}

// deployGuide returns deploy/README.md, the deploy guide, whitespace
// collapsed and shell line continuations joined.
func deployGuide(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatalf("deploy/README.md: %v", err)
	}
	s := strings.ReplaceAll(string(b), "\\\n", " ")
	return strings.Join(strings.Fields(s), " ")
}

func TestReadmeShowsEveryGcloudCommand(t *testing.T) {
	guide := deployGuide(t)
	for cmd, files := range gcloudCommands(t) {
		re := regexp.MustCompile(regexp.QuoteMeta(cmd) + `(?:[^a-z0-9-]|$)`)
		if !re.MatchString(guide) {
			t.Errorf("deploy/README.md does not show %q (run by %v)", cmd, files)
		}
	}
}

// README.md keeps a pointer to the deploy guide, not a second copy of it.
func TestReadmeLinksToDeployGuide(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if !strings.Contains(s, "](deploy/README.md)") {
		t.Error("README.md does not link to deploy/README.md")
	}
	for _, copied := range []string{"gcloud functions deploy", "gcloud projects add-iam-policy-binding", "deploy/setup.sh --project=", "gcloud builds submit"} {
		if strings.Contains(s, copied) {
			t.Errorf("README.md still holds deploy-guide material (%q): it belongs in deploy/README.md", copied)
		}
	}
}

func TestGcloudCommandExtraction(t *testing.T) {
	for line, want := range map[string]string{
		`  run gcloud secrets versions add "$N" --data-file=- --project="$P"`:           "gcloud secrets versions add",
		`if query gcloud firestore databases describe --database="$D" >/dev/null; then`: "gcloud firestore databases describe",
		`run gcloud services enable cloudfunctions.googleapis.com`:                      "gcloud services enable",
		`p=$(gcloud config get-value project 2>/dev/null || true)`:                      "gcloud config get-value project",
		`die "no project: run 'gcloud config set project ID'"`:                          "gcloud config set project",
		`printf '%s' "$1" | gcloud secrets versions add "$S" --data-file=-`:             "gcloud secrets versions add",
		`usage: default: gcloud's configured project`:                                   "",
	} {
		got := ""
		if w := commandWords(line); len(w) > 0 {
			got = "gcloud " + strings.Join(w[0], " ")
		}
		if got != want {
			t.Errorf("%s\n got %q, want %q", line, got, want)
		}
	}
}

// call is one recorded gcloud invocation.
type call struct {
	args  []string
	stdin string // what was piped in with --data-file=-
	dir   string // where the real gcloud runs it, if not here
}

func (c call) String() string { return "gcloud " + strings.Join(c.args, " ") }

// is reports whether the call starts with the given command words.
func (c call) is(words ...string) bool {
	return len(c.args) >= len(words) && slices.Equal(c.args[:len(words)], words)
}

// flag returns the value of --name=value, and whether it was given.
func (c call) flag(name string) (string, bool) {
	for _, a := range c.args {
		if a == "--"+name {
			return "", true
		}
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

func (c call) has(arg string) bool { return slices.Contains(c.args, arg) }

// stubGcloud is a stand-in for gcloud: it records every call and answers the
// few read-only queries the scripts make. STUB_EXISTS lists what already
// exists: firestore, secrets, sa (the service accounts), versions, repo (the
// image repository), role (the deployer's custom role). STUB_UNCONDITIONAL
// lists the project's unconditional grants as ROLE=MEMBER.
const stubGcloud = `#!/usr/bin/env bash
set -euo pipefail
{ printf '%s\x1f' "$@"; printf '\n'; } >>"$STUB_DIR/log"
n=$(wc -l <"$STUB_DIR/log")
exists() { [[ " ${STUB_EXISTS:-} " == *" $1 "* ]]; }
flag() { local a; for a in "${@:2}"; do [[ "$a" == "--$1="* ]] && { printf '%s' "${a#*=}"; return; }; done; }
case "$1 ${2:-} ${3:-}" in
"config get-value project") echo stub-project ;;
"firestore databases describe") exists firestore || { echo "NOT_FOUND" >&2; exit 1; } ;;
"iam service-accounts describe") exists sa || { echo "NOT_FOUND" >&2; exit 1; } ;;
"secrets describe "*) exists secrets || { echo "NOT_FOUND" >&2; exit 1; } ;;
"secrets versions list") if exists versions; then echo "projects/1/secrets/$4/versions/1"; fi ;;
"secrets versions access")
  f="$STUB_DIR/latest-$(flag secret "$@")"
  [[ -f "$f" ]] || { echo "NOT_FOUND" >&2; exit 1; }
  cat "$f" ;;
"secrets versions add")
  if [[ " $* " == *" --data-file=- "* ]]; then
    cat >"$STUB_DIR/stdin-$n"
    cp "$STUB_DIR/stdin-$n" "$STUB_DIR/latest-$4"
  fi ;;
"functions describe "*) echo "https://$(flag region "$@")-$(flag project "$@").cloudfunctions.net/$3" ;;
"artifacts repositories describe") exists repo || { echo "NOT_FOUND" >&2; exit 1; } ;;
"iam roles describe") exists role || { echo "NOT_FOUND" >&2; exit 1; } ;;
"projects get-iam-policy "*)
  f=$(flag filter "$@")
  for g in ${STUB_UNCONDITIONAL:-}; do
    if [[ "$f" == *"bindings.role=\"${g%%=*}\""* && "$f" == *"bindings.members=\"${g#*=}\""* && "$f" == *"NOT bindings.condition:*"* ]]; then
      echo "${g%%=*}"
    fi
  done ;;
esac
`

// runScript runs deploy/<script> with the stub gcloud first on PATH and returns
// its calls, its combined output, and its error.
func runScript(t *testing.T, env []string, script string, args ...string) ([]call, string, error) {
	t.Helper()
	bash := need(t, "bash", "the scripts' behaviour")
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "gcloud"), []byte(stubGcloud), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"log"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range env {
		if k, v, ok := strings.Cut(e, "="); ok && strings.HasPrefix(k, "STUB_LATEST_") {
			name := strings.TrimPrefix(k, "STUB_LATEST_")
			if err := os.WriteFile(filepath.Join(dir, "latest-"+name), []byte(v), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	cmd := exec.Command(bash, append([]string{script}, args...)...)
	cmd.Env = append([]string{
		"PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH"),
		"HOME=" + dir,
		"STUB_DIR=" + dir,
	}, env...)
	out, err := cmd.CombinedOutput()

	log, rerr := os.ReadFile(filepath.Join(dir, "log"))
	if rerr != nil {
		t.Fatal(rerr)
	}
	var calls []call
	for i, line := range strings.Split(strings.TrimSuffix(string(log), "\n"), "\n") {
		if line == "" {
			continue
		}
		c := call{args: strings.Split(strings.TrimSuffix(line, "\x1f"), "\x1f")}
		if b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("stdin-%d", i+1))); err == nil {
			c.stdin = string(b)
		}
		calls = append(calls, c)
	}
	return calls, string(out), err
}

func find(calls []call, words ...string) []call {
	var out []call
	for _, c := range calls {
		if c.is(words...) {
			out = append(out, c)
		}
	}
	return out
}

func dump(calls []call) string {
	var b strings.Builder
	for _, c := range calls {
		fmt.Fprintf(&b, "  %s\n", c)
	}
	return b.String()
}

// keySet is the key set's JSON form.
type keySet struct {
	Primary string            `json:"primary"`
	Keys    map[string]string `json:"keys"`
}

func parseKeySet(t *testing.T, s string) keySet {
	t.Helper()
	var ks keySet
	if err := json.Unmarshal([]byte(s), &ks); err != nil {
		t.Fatalf("key set %q: %v", s, err)
	}
	if _, ok := ks.Keys[ks.Primary]; !ok {
		t.Fatalf("key set %q: the primary %q is not among the keys", s, ks.Primary)
	}
	for id, v := range ks.Keys {
		k, err := base64.StdEncoding.DecodeString(v)
		if err != nil || len(k) != 32 {
			t.Fatalf("key set: key %q is not standard base64 of 32 bytes (%d bytes, %v)", id, len(k), err)
		}
	}
	return ks
}

// noSecretsOnCommandLines fails if a key value appears in any recorded argument.
func noSecretsOnCommandLines(t *testing.T, calls []call, ks keySet) {
	t.Helper()
	for _, c := range calls {
		for _, v := range ks.Keys {
			if strings.Contains(c.String(), v) {
				t.Errorf("a key is on a command line: %s", c)
			}
		}
	}
}

// The service accounts setup.sh makes, and the grants each gets.
const (
	runtimeSA   = "gmail-oauth-fn@stub-project.iam.gserviceaccount.com"
	authorizeSA = "gmail-oauth-authorize@stub-project.iam.gserviceaccount.com"
	buildSA     = "gmail-oauth-build@stub-project.iam.gserviceaccount.com"

	// databaseCondition scopes Firestore to the one database.
	databaseCondition = `expression=resource.name=="projects/stub-project/databases/(default)",title=gmail-oauth-database,description=Firestore database (default) only`
	// sourcesCondition scopes the build's object reads to the functions' source buckets.
	sourcesCondition = `expression=resource.type == "storage.googleapis.com/Object" && (resource.name.startsWith("projects/_/buckets/gcf-v2-sources-") || resource.name.startsWith("projects/_/buckets/gcf-v2-uploads-") || resource.name.startsWith("projects/_/buckets/run-sources-")),title=gmail-oauth-function-sources,description=The source objects of Cloud Functions builds only`
)

// grant is one add-iam-policy-binding: on what, to whom, which role, under
// which condition ("None" when unconditional).
type grant struct{ on, member, role, condition string }

// grants lists the add-iam-policy-binding calls of a run, in order.
func grants(calls []call) []grant {
	var out []grant
	for _, c := range calls {
		i := slices.Index(c.args, "add-iam-policy-binding")
		if i < 0 {
			continue
		}
		g := grant{on: strings.Join(c.args[:i+2], " ")}
		g.member, _ = c.flag("member")
		g.role, _ = c.flag("role")
		g.condition, _ = c.flag("condition")
		out = append(out, g)
	}
	return out
}

func TestSetupFromNothing(t *testing.T) {
	need(t, "openssl", "key set generation")
	clientSecret := filepath.Join(t.TempDir(), "client_secret.json")
	if err := os.WriteFile(clientSecret, []byte(`{"web":{"client_id":"x.apps.googleusercontent.com","client_secret":"s"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	calls, out, err := runScript(t, nil, "setup.sh", "--project=stub-project", "--region=europe-west1", "--client-secret="+clientSecret)
	if err != nil {
		t.Fatalf("setup.sh: %v\n%s", err, out)
	}
	checkWithRealGcloud(t, calls)

	enable := find(calls, "services", "enable")
	if len(enable) != 1 {
		t.Fatalf("want one services enable, got:\n%s", dump(calls))
	}
	for _, api := range []string{"cloudfunctions", "run", "cloudbuild", "artifactregistry", "firestore", "secretmanager", "logging", "gmail"} {
		if !enable[0].has(api + ".googleapis.com") {
			t.Errorf("%s.googleapis.com is not enabled: %s", api, enable[0])
		}
	}
	if c := find(calls, "firestore", "databases", "create"); len(c) != 1 || !c[0].has("--type=firestore-native") || !c[0].has("--location=europe-west1") || !c[0].has("--database=(default)") {
		t.Errorf("want one native-mode Firestore database created in europe-west1, got:\n%s", dump(c))
	}
	for _, s := range []string{"gmail-oauth-client", "gmail-oauth-token-keys"} {
		if c := find(calls, "secrets", "create", s); len(c) != 1 || !c[0].has("--replication-policy=automatic") {
			t.Errorf("secret %s not created once: %s", s, dump(c))
		}
	}
	if c := find(calls, "secrets", "versions", "add", "gmail-oauth-client"); len(c) != 1 || !c[0].has("--data-file="+clientSecret) {
		t.Errorf("client secret not added from the file: %s", dump(c))
	}
	keys := find(calls, "secrets", "versions", "add", "gmail-oauth-token-keys")
	if len(keys) != 1 || !keys[0].has("--data-file=-") {
		t.Fatalf("want the generated key set piped to one new version, got:\n%s", dump(keys))
	}
	noSecretsOnCommandLines(t, calls, parseKeySet(t, keys[0].stdin))

	for _, name := range []string{"gmail-oauth-fn", "gmail-oauth-authorize", "gmail-oauth-build"} {
		if c := find(calls, "iam", "service-accounts", "create", name); len(c) != 1 {
			t.Errorf("service account %s not created once:\n%s", name, dump(calls))
		}
	}
	if c := find(calls, "artifacts", "repositories", "create", "gmail-oauth-functions"); len(c) != 1 || !c[0].has("--repository-format=docker") || !c[0].has("--location=europe-west1") {
		t.Errorf("want the Docker image repository created in the region, got:\n%s", dump(c))
	}

	// Least privilege: every grant, exactly. Nothing on the whole project but
	// Firestore on its one database, build logs, and the functions' source
	// objects; the secrets on each secret only; images on one repository.
	want := []grant{
		{"projects add-iam-policy-binding stub-project", "serviceAccount:" + runtimeSA, "roles/datastore.user", databaseCondition},
		{"secrets add-iam-policy-binding gmail-oauth-client", "serviceAccount:" + runtimeSA, "roles/secretmanager.secretAccessor", ""},
		{"secrets add-iam-policy-binding gmail-oauth-token-keys", "serviceAccount:" + runtimeSA, "roles/secretmanager.secretAccessor", ""},
		{"secrets add-iam-policy-binding gmail-oauth-client", "serviceAccount:" + authorizeSA, "roles/secretmanager.secretAccessor", ""},
		{"secrets add-iam-policy-binding gmail-oauth-token-keys", "serviceAccount:" + authorizeSA, "roles/secretmanager.secretAccessor", ""},
		{"projects add-iam-policy-binding stub-project", "serviceAccount:" + buildSA, "roles/logging.logWriter", "None"},
		{"projects add-iam-policy-binding stub-project", "serviceAccount:" + buildSA, "roles/storage.objectViewer", sourcesCondition},
		{"artifacts repositories add-iam-policy-binding gmail-oauth-functions", "serviceAccount:" + buildSA, "roles/artifactregistry.writer", ""},
	}
	if got := grants(calls); !slices.Equal(got, want) {
		t.Errorf("grants:\n got  %q\n want %q", got, want)
	}
	for _, c := range find(calls, "artifacts", "repositories", "add-iam-policy-binding") {
		if !c.has("--location=europe-west1") {
			t.Errorf("repository grant outside the region: %s", c)
		}
	}
	if c := find(calls, "projects", "remove-iam-policy-binding"); len(c) != 0 {
		t.Errorf("removed a grant nobody made:\n%s", dump(c))
	}
	if c := find(calls, "iam", "roles"); len(c) != 0 {
		t.Errorf("a custom role without --deployer:\n%s", dump(c))
	}
}

func TestSetupAgainChangesNothing(t *testing.T) {
	calls, out, err := runScript(t, []string{"STUB_EXISTS=firestore secrets sa versions repo"}, "setup.sh", "--project=stub-project")
	if err != nil {
		t.Fatalf("setup.sh: %v\n%s", err, out)
	}
	for _, c := range calls {
		if c.is("firestore", "databases", "create") || c.is("secrets", "create") || c.is("secrets", "versions", "add") ||
			c.is("iam", "service-accounts", "create") || c.is("artifacts", "repositories", "create") || c.is("projects", "remove-iam-policy-binding") {
			t.Errorf("second run changed something it should have left: %s", c)
		}
	}
	if n := len(grants(calls)); n != 8 {
		t.Errorf("want the 8 grants re-asserted, got %d:\n%s", n, dump(calls))
	}
}

// A project set up by an older setup.sh has unconditional, project-wide
// grants: Firestore on every database for the runtime, roles/run.admin for the
// deployer. Running setup.sh again leaves only the narrow ones.
func TestSetupRemovesOlderBroaderGrants(t *testing.T) {
	const deployer = "serviceAccount:123-compute@developer.gserviceaccount.com"
	calls, out, err := runScript(t, []string{
		"STUB_EXISTS=firestore secrets sa versions repo role",
		"STUB_UNCONDITIONAL=roles/datastore.user=serviceAccount:" + runtimeSA + " roles/run.admin=" + deployer,
	}, "setup.sh", "--project=stub-project", "--deployer="+deployer)
	if err != nil {
		t.Fatalf("setup.sh: %v\n%s", err, out)
	}
	// The real gcloud sees only what the other setup tests do not run.
	checkWithRealGcloud(t, slices.Concat(find(calls, "projects", "get-iam-policy"), find(calls, "projects", "remove-iam-policy-binding"), find(calls, "iam", "roles", "update")))
	var removed []string
	for _, c := range find(calls, "projects", "remove-iam-policy-binding", "stub-project") {
		m, _ := c.flag("member")
		r, _ := c.flag("role")
		if !c.has("--condition=None") {
			t.Errorf("removal must name the unconditional grant only: %s", c)
		}
		removed = append(removed, r+"="+m)
	}
	if want := []string{"roles/datastore.user=serviceAccount:" + runtimeSA, "roles/run.admin=" + deployer}; !slices.Equal(removed, want) {
		t.Errorf("removed %q, want %q", removed, want)
	}
	// The narrow grant comes first, so the functions never lose Firestore.
	added := slices.IndexFunc(calls, func(c call) bool {
		return c.is("projects", "add-iam-policy-binding") && c.has("--role=roles/datastore.user")
	})
	dropped := slices.IndexFunc(calls, func(c call) bool {
		return c.is("projects", "remove-iam-policy-binding") && c.has("--role=roles/datastore.user")
	})
	if added < 0 || dropped < added {
		t.Errorf("the database-scoped grant must precede the removal of the project-wide one:\n%s", dump(calls))
	}
}

func TestSetupDeployer(t *testing.T) {
	const deployer = "serviceAccount:123-compute@developer.gserviceaccount.com"
	calls, out, err := runScript(t, []string{"STUB_EXISTS=firestore secrets sa versions repo"}, "setup.sh", "--project=stub-project", "--deployer", deployer)
	if err != nil {
		t.Fatalf("setup.sh: %v\n%s", err, out)
	}
	// The real gcloud sees the deployer's commands; TestSetupFromNothing has the rest.
	checkWithRealGcloud(t, slices.DeleteFunc(slices.Clone(calls), func(c call) bool {
		return !c.is("iam", "roles") && !slices.ContainsFunc(c.args, func(a string) bool { return strings.HasSuffix(a, deployer) })
	}))
	role := find(calls, "iam", "roles", "create", "gmailOAuthInvokerAdmin")
	if len(role) != 1 || !role[0].has("--project=stub-project") || !role[0].has("--stage=GA") {
		t.Fatalf("want the custom role created once in the project, got:\n%s", dump(calls))
	}
	perms, _ := role[0].flag("permissions")
	if got := strings.Split(perms, ","); !slices.Equal(got, []string{"run.services.getIamPolicy", "run.services.setIamPolicy", "resourcemanager.projects.get"}) {
		t.Errorf("custom role permissions = %q: want exactly what a deploy needs beyond roles/cloudfunctions.developer", got)
	}
	var roles, actAs []string
	for _, g := range grants(calls) {
		if g.member != deployer {
			continue
		}
		switch {
		case g.on == "projects add-iam-policy-binding stub-project":
			roles = append(roles, g.role)
		case g.role == "roles/iam.serviceAccountUser":
			actAs = append(actAs, strings.TrimPrefix(g.on, "iam service-accounts add-iam-policy-binding "))
		default:
			t.Errorf("unexpected grant to the deployer: %+v", g)
		}
	}
	if want := []string{"roles/cloudfunctions.developer", "projects/stub-project/roles/gmailOAuthInvokerAdmin"}; !slices.Equal(roles, want) {
		t.Errorf("deployer project roles = %v, want %v (no roles/run.admin)", roles, want)
	}
	if want := []string{runtimeSA, authorizeSA, buildSA}; !slices.Equal(actAs, want) {
		t.Errorf("deployer acts as %v, want %v (the build account too: --build-service-account needs it)", actAs, want)
	}

	// Again, with the role there: its permissions are re-asserted, not re-created.
	calls, out, err = runScript(t, []string{"STUB_EXISTS=firestore secrets sa versions repo role"}, "setup.sh", "--project=stub-project", "--deployer", deployer)
	if err != nil {
		t.Fatalf("setup.sh again: %v\n%s", err, out)
	}
	if c := find(calls, "iam", "roles", "update", "gmailOAuthInvokerAdmin"); len(c) != 1 || !c[0].has("--permissions="+perms) || len(find(calls, "iam", "roles", "create")) != 0 {
		t.Errorf("want the existing role updated to the same permissions, got:\n%s", dump(calls))
	}
}

// envVars parses a gcloud KEY=VALUE list (--set-env-vars, --substitutions),
// honouring gcloud's ^DELIM^ prefix (`gcloud topic escaping`).
func envVars(t *testing.T, v string) map[string]string {
	t.Helper()
	sep := ","
	if strings.HasPrefix(v, "^") {
		i := strings.Index(v[1:], "^")
		if i < 1 {
			t.Fatalf("bad delimiter prefix in %q", v)
		}
		sep, v = v[1:i+1], v[i+2:]
	}
	m := map[string]string{}
	for _, kv := range strings.Split(v, sep) {
		k, val, ok := strings.Cut(kv, "=")
		if !ok {
			t.Fatalf("env var %q has no =", kv)
		}
		m[k] = val
	}
	return m
}

func deploys(t *testing.T, calls []call) map[string]call {
	t.Helper()
	out := map[string]call{}
	for _, c := range find(calls, "functions", "deploy") {
		ep, _ := c.flag("entry-point")
		if _, dup := out[ep]; dup {
			t.Errorf("%s deployed twice", ep)
		}
		out[ep] = c
	}
	return out
}

// configNames is every setting internal/config reads, or nil if it is absent.
func configNames(t *testing.T) []string {
	b, err := os.ReadFile("../internal/config/config.go")
	if err != nil {
		t.Logf("internal/config/config.go not readable (%v): not cross-checking the setting names", err)
		return nil
	}
	var names []string
	for _, m := range regexp.MustCompile(`"([A-Z][A-Z0-9_]+)"`).FindAllStringSubmatch(string(b), -1) {
		names = append(names, m[1])
	}
	return names
}

// functionNames are the deployed names of the entry points.
var functionNames = map[string]string{"Authorize": "gmail-authorize", "Callback": "gmail-callback", "ListMessages": "gmail-list-messages", "Disconnect": "gmail-disconnect"}

// privateIn reports whether ep is deployed private in the given mode:
// ListMessages and Disconnect in iam mode, which servers call.
func privateIn(mode, ep string) bool {
	return mode == "iam" && (ep == "ListMessages" || ep == "Disconnect")
}

// checkDeploy checks the four deploys of a run with the default settings
// and returns each function's environment.
func checkDeploy(t *testing.T, calls []call, wantAuth string, urlBase string) map[string]map[string]string {
	t.Helper()
	d := deploys(t, calls)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	known := configNames(t)
	envs := map[string]map[string]string{}
	for ep, name := range functionNames {
		c, ok := d[ep]
		if !ok {
			t.Errorf("%s not deployed:\n%s", ep, dump(calls))
			continue
		}
		if c.args[2] != name {
			t.Errorf("%s deployed as %q, want %q", ep, c.args[2], name)
		}
		// Authorize stores nothing, so it runs without Firestore access.
		runsAs := runtimeSA
		if ep == "Authorize" {
			runsAs = authorizeSA
		}
		for _, want := range []string{"--gen2", "--trigger-http", "--runtime=go126", "--region=us-central1", "--project=stub-project",
			"--service-account=" + runsAs,
			"--build-service-account=projects/stub-project/serviceAccounts/" + buildSA,
			"--docker-repository=projects/stub-project/locations/us-central1/repositories/gmail-oauth-functions",
			"--concurrency=80", "--cpu=1", "--memory=512Mi", "--timeout=60s", "--max-instances=10",
			"--source=" + root, "--ignore-file=deploy/functions.gcloudignore", "--quiet"} {
			if !c.has(want) {
				t.Errorf("%s: missing %s in\n  %s", ep, want, c)
			}
		}
		// --ignore-file is relative to --source.
		if _, err := os.Stat(filepath.Join(root, "deploy/functions.gcloudignore")); err != nil {
			t.Errorf("the ignore file: %v", err)
		}
		access := "--allow-unauthenticated"
		if privateIn(wantAuth, ep) {
			access = "--no-allow-unauthenticated"
		}
		if !c.has(access) || (access == "--allow-unauthenticated" && c.has("--no-allow-unauthenticated")) {
			t.Errorf("%s: want %s in\n  %s", ep, access, c)
		}
		v, _ := c.flag("set-env-vars")
		env := envVars(t, v)
		envs[ep] = env
		for k, want := range map[string]string{
			"GOOGLE_CLOUD_PROJECT": "stub-project",
			"OAUTH_CLIENT_SECRET":  "projects/stub-project/secrets/gmail-oauth-client/versions/latest",
			"TOKEN_KEYS_SECRET":    "projects/stub-project/secrets/gmail-oauth-token-keys/versions/latest",
			"AUTHORIZE_URL":        urlBase + "/gmail-authorize",
			"OAUTH_REDIRECT_URL":   urlBase + "/gmail-callback",
			"TOKEN_STORE":          "firestore",
			"FIRESTORE_DATABASE":   "(default)",
			"LIST_AUTH_MODE":       wantAuth,
		} {
			if env[k] != want {
				t.Errorf("%s: %s=%q, want %q", ep, k, env[k], want)
			}
		}
		// Cloud Run's IAM check takes a token for this function's URL only, and
		// so does the function: a token minted for one does not open another.
		if wantAuth == "iam" {
			if want := "https://us-central1-stub-project.cloudfunctions.net/" + name; env["IAM_AUDIENCE"] != want {
				t.Errorf("%s: IAM_AUDIENCE=%q, want its own URL %q", ep, env["IAM_AUDIENCE"], want)
			}
		} else if _, ok := env["IAM_AUDIENCE"]; ok {
			t.Errorf("%s: IAM_AUDIENCE set in session mode", ep)
		}
		for k := range env {
			if known != nil && !slices.Contains(known, k) {
				t.Errorf("%s: %s is set, but internal/config does not read it", ep, k)
			}
		}
	}
	return envs
}

// invokers maps each function to the members deploy.sh lets invoke it.
func invokers(calls []call) map[string][]string {
	out := map[string][]string{}
	for _, c := range find(calls, "functions", "add-invoker-policy-binding") {
		m, _ := c.flag("member")
		out[c.args[2]] = append(out[c.args[2]], m)
	}
	return out
}

func TestDeploySessionMode(t *testing.T) {
	calls, out, err := runScript(t, nil, "deploy.sh", "--project=stub-project", "--list-auth=session", "--allowed-origins=https://app.example.com,https://admin.example.com")
	if err != nil {
		t.Fatalf("deploy.sh: %v\n%s", err, out)
	}
	checkWithRealGcloud(t, calls)
	envs := checkDeploy(t, calls, "session", "https://us-central1-stub-project.cloudfunctions.net")
	if got := envs["Disconnect"]["ALLOWED_ORIGINS"]; got != "https://app.example.com,https://admin.example.com" {
		t.Errorf("ALLOWED_ORIGINS=%q: the comma must survive gcloud's list parsing", got)
	}
	if c := find(calls, "functions", "add-invoker-policy-binding"); len(c) != 0 {
		t.Errorf("session mode grants invokers:\n%s", dump(c))
	}
}

// In iam mode servers call ListMessages and Disconnect: both are private, and
// each allowed caller may invoke both, and nothing else.
func TestDeployIAMMode(t *testing.T) {
	callers := "app@caller-project.iam.gserviceaccount.com, batch@caller-project.iam.gserviceaccount.com"
	calls, out, err := runScript(t, nil, "deploy.sh", "--project", "stub-project", "--list-auth=iam", "--allowed-callers="+callers)
	if err != nil {
		t.Fatalf("deploy.sh: %v\n%s", err, out)
	}
	checkWithRealGcloud(t, calls)
	envs := checkDeploy(t, calls, "iam", "https://us-central1-stub-project.cloudfunctions.net")
	for _, ep := range []string{"ListMessages", "Disconnect"} {
		if envs[ep]["IAM_ALLOWED_CALLERS"] != callers {
			t.Errorf("%s: IAM_ALLOWED_CALLERS=%q", ep, envs[ep]["IAM_ALLOWED_CALLERS"])
		}
	}
	members := []string{"serviceAccount:app@caller-project.iam.gserviceaccount.com", "serviceAccount:batch@caller-project.iam.gserviceaccount.com"}
	want := map[string][]string{"gmail-list-messages": members, "gmail-disconnect": members}
	if got := invokers(calls); !maps.EqualFunc(got, want, slices.Equal) {
		t.Errorf("invokers = %v, want %v", got, want)
	}
	// Each binding comes after the deploy that creates its function.
	for _, c := range find(calls, "functions", "add-invoker-policy-binding") {
		bind := slices.IndexFunc(calls, func(x call) bool { return slices.Equal(x.args, c.args) })
		dep := slices.IndexFunc(calls, func(x call) bool { return x.is("functions", "deploy", c.args[2]) })
		if dep < 0 || dep > bind {
			t.Errorf("%s granted before %s is deployed", c, c.args[2])
		}
	}
}

func TestDeployCustomDomainAndOne(t *testing.T) {
	calls, out, err := runScript(t, nil, "deploy.sh", "--project=stub-project", "--base-url=https://gmail.example.com/", "--only=Callback", "--build-service-account=builder@stub-project.iam.gserviceaccount.com")
	if err != nil {
		t.Fatalf("deploy.sh: %v\n%s", err, out)
	}
	checkWithRealGcloud(t, calls)
	d := deploys(t, calls)
	if len(d) != 1 {
		t.Fatalf("--only=Callback deployed %d functions:\n%s", len(d), dump(calls))
	}
	c := d["Callback"]
	v, _ := c.flag("set-env-vars")
	env := envVars(t, v)
	if env["OAUTH_REDIRECT_URL"] != "https://gmail.example.com/gmail-callback" || env["AUTHORIZE_URL"] != "https://gmail.example.com/gmail-authorize" {
		t.Errorf("custom domain URLs: %v", env)
	}
	if !c.has("--build-service-account=projects/stub-project/serviceAccounts/builder@stub-project.iam.gserviceaccount.com") {
		t.Errorf("build service account: %s", c)
	}
}

// Sizing: the flags Cloud Run accepts reach gcloud as given, with a memory it
// accepts for the CPU when none is given; the rest are refused before gcloud
// runs, with a message that names the rule.
func TestDeploySizing(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		want    []string // flags of the deploy
		refused string   // or: part of the error
	}{
		{args: nil, want: []string{"--concurrency=80", "--cpu=1", "--memory=512Mi", "--max-instances=10"}},
		{args: []string{"--cpu=2"}, want: []string{"--concurrency=80", "--cpu=2", "--memory=512Mi"}},
		{args: []string{"--cpu=4"}, want: []string{"--cpu=4", "--memory=2Gi"}},
		{args: []string{"--cpu=8", "--concurrency=1000"}, want: []string{"--concurrency=1000", "--cpu=8", "--memory=4Gi"}},
		{args: []string{"--cpu=2000m", "--memory=8Gi"}, want: []string{"--cpu=2000m", "--memory=8Gi"}},
		{args: []string{"--cpu=0.5", "--concurrency=1"}, want: []string{"--concurrency=1", "--cpu=0.5", "--memory=512Mi"}},
		{args: []string{"--cpu=.583", "--concurrency=1", "--memory=1Gi"}, want: []string{"--cpu=.583", "--memory=1Gi"}},
		{args: []string{"--memory=4Gi", "--max-instances=3"}, want: []string{"--memory=4Gi", "--max-instances=3"}},
		{args: []string{"--memory=256MB"}, want: []string{"--memory=256MB"}},

		{args: []string{"--cpu=0.5"}, refused: "--concurrency=80 needs at least 1 vCPU"},
		{args: []string{"--cpu=500m", "--concurrency=2"}, refused: "needs at least 1 vCPU"},
		{args: []string{"--cpu=0.07", "--concurrency=1"}, refused: "at least 0.08"},
		{args: []string{"--cpu=3"}, refused: "must be 1, 2, 4, 6 or 8"},
		{args: []string{"--cpu=16"}, refused: "must be 1, 2, 4, 6 or 8"},
		{args: []string{"--cpu=lots"}, refused: "--cpu must be a number"},
		{args: []string{"--concurrency=0"}, refused: "from 1 to 1000"},
		{args: []string{"--concurrency=1001"}, refused: "from 1 to 1000"},
		{args: []string{"--concurrency=8.5"}, refused: "from 1 to 1000"},
		{args: []string{"--memory=8Gi"}, refused: "128 MiB to 4096 MiB"},
		{args: []string{"--memory=64Mi"}, refused: "128 MiB to 4096 MiB"},
		{args: []string{"--memory=134M"}, refused: "128 MiB to 4096 MiB"}, // 127.8 MiB
		{args: []string{"--cpu=4", "--memory=1Gi"}, refused: "2048 MiB to 16384 MiB"},
		{args: []string{"--cpu=0.4", "--concurrency=1", "--memory=1Gi"}, refused: "128 MiB to 512 MiB"},
		{args: []string{"--cpu=0.5", "--concurrency=1", "--memory=2Gi"}, refused: "128 MiB to 1024 MiB"},
		{args: []string{"--memory=512XB"}, refused: "--memory must be a size"},
		{args: []string{"--max-instances=0"}, refused: "--max-instances"},
	} {
		name := strings.Join(tc.args, " ")
		calls, out, err := runScript(t, nil, "deploy.sh", append([]string{"--project=stub-project", "--only=ListMessages"}, tc.args...)...)
		if tc.refused != "" {
			if err == nil || !strings.Contains(out, tc.refused) {
				t.Errorf("%s: want refused with %q, got %v:\n%s", name, tc.refused, err, out)
			}
			if len(calls) != 0 {
				t.Errorf("%s: refused, but gcloud ran:\n%s", name, dump(calls))
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v\n%s", name, err, out)
			continue
		}
		d := deploys(t, calls)["ListMessages"]
		for _, w := range tc.want {
			if !d.has(w) {
				t.Errorf("%s: want %s in\n  %s", name, w, d)
			}
		}
		if name == "--cpu=4" {
			checkWithRealGcloud(t, calls) // a derived memory
		}
	}
}

func TestDeployRefusesUnsafeSettings(t *testing.T) {
	for name, args := range map[string][]string{
		"run.app base URL":     {"--base-url=https://gmail-callback-abc123-uc.a.run.app"},
		"iam without callers":  {"--list-auth=iam"},
		"unknown auth mode":    {"--list-auth=cookie"},
		"unknown entry point":  {"--only=Nope"},
		"plain http base URL":  {"--base-url=http://example.com"},
		"flag without a value": {"--region"},
	} {
		calls, out, err := runScript(t, nil, "deploy.sh", append([]string{"--project=stub-project"}, args...)...)
		if err == nil {
			t.Errorf("%s: deploy.sh succeeded:\n%s", name, out)
		}
		if len(find(calls, "functions", "deploy")) != 0 {
			t.Errorf("%s: deployed anyway", name)
		}
	}
}

func TestDeployDryRunChangesNothing(t *testing.T) {
	calls, out, err := runScript(t, nil, "deploy.sh", "--project=stub-project", "--dry-run", "--list-auth=iam", "--allowed-callers=app@caller-project.iam.gserviceaccount.com")
	if err != nil {
		t.Fatalf("deploy.sh --dry-run: %v\n%s", err, out)
	}
	if len(calls) != 0 {
		t.Errorf("--dry-run ran gcloud:\n%s", dump(calls))
	}
	if strings.Count(out, "+ gcloud functions deploy") != 4 || strings.Count(out, "+ gcloud functions add-invoker-policy-binding") != 2 {
		t.Errorf("--dry-run does not print the four deploy commands and the two invoker bindings:\n%s", out)
	}
}

const oldKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" // 32 bytes

func TestRotateKeysKeepsOldKeys(t *testing.T) {
	need(t, "jq", "key rotation")
	need(t, "openssl", "key rotation")
	latest := `STUB_LATEST_gmail-oauth-token-keys={"primary":"k1","keys":{"k1":"` + oldKey + `"}}`
	calls, out, err := runScript(t, []string{latest}, "rotate-keys.sh", "--project=stub-project", "--key-id=k2", "--wait-seconds=0")
	if err != nil {
		t.Fatalf("rotate-keys.sh: %v\n%s", err, out)
	}
	checkWithRealGcloud(t, calls)
	adds := find(calls, "secrets", "versions", "add", "gmail-oauth-token-keys")
	if len(adds) != 2 {
		t.Fatalf("want two new versions (stage, then promote), got:\n%s", dump(calls))
	}
	staged, promoted := parseKeySet(t, adds[0].stdin), parseKeySet(t, adds[1].stdin)
	if staged.Primary != "k1" || staged.Keys["k1"] != oldKey || staged.Keys["k2"] == "" {
		t.Errorf("staged key set: %+v: want k2 added, k1 kept and still primary", staged)
	}
	if promoted.Primary != "k2" || promoted.Keys["k1"] != oldKey || promoted.Keys["k2"] != staged.Keys["k2"] || len(promoted.Keys) != 2 {
		t.Errorf("promoted key set: %+v: want k2 primary, k1 kept", promoted)
	}
	noSecretsOnCommandLines(t, calls, promoted)
}

func TestRotateKeysInTwoRuns(t *testing.T) {
	need(t, "jq", "key rotation")
	need(t, "openssl", "key rotation")
	latest := `STUB_LATEST_gmail-oauth-token-keys={"primary":"k1","keys":{"k1":"` + oldKey + `"}}`
	calls, out, err := runScript(t, []string{latest}, "rotate-keys.sh", "--project=stub-project", "--stage-only")
	if err != nil {
		t.Fatalf("rotate-keys.sh --stage-only: %v\n%s", err, out)
	}
	adds := find(calls, "secrets", "versions", "add")
	if len(adds) != 1 || parseKeySet(t, adds[0].stdin).Primary != "k1" || len(parseKeySet(t, adds[0].stdin).Keys) != 2 {
		t.Fatalf("--stage-only must add one version with the new key, primary unchanged:\n%s", dump(adds))
	}

	_, out, err = runScript(t, []string{latest}, "rotate-keys.sh", "--project=stub-project", "--promote=k9")
	if err == nil || !strings.Contains(out, "no key k9") {
		t.Errorf("promoting a key that is not staged must fail: %v\n%s", err, out)
	}
}

// The real gcloud, when installed, must accept every command the scripts ran:
// it is run with no credentials, so it stops at "no active account" after
// parsing the arguments, and a wrong flag or command shows as a usage error.
var realGcloudChecked sync.Map

func checkWithRealGcloud(t *testing.T, calls []call) {
	t.Helper()
	gcloud, err := exec.LookPath("gcloud")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("gcloud is not installed and CI=true: cannot check that gcloud accepts the scripts' commands")
		}
		msg := fmt.Sprintf("NOT CHECKED in %s: gcloud is not installed, so the scripts' gcloud commands were not checked against the real gcloud (under CI=true this fails)", t.Name())
		fmt.Fprintln(os.Stderr, msg)
		t.Log(msg)
		return
	}
	var todo []call
	for _, c := range calls {
		if c.is("config") {
			continue
		}
		if _, done := realGcloudChecked.LoadOrStore(strings.Join(c.args, "\x1f"), true); !done {
			todo = append(todo, c)
		}
	}
	for _, p := range realGcloudProblems(t, gcloud, todo) {
		t.Error(p)
	}
}

// realGcloudProblems runs each call with the real gcloud (one process for
// the whole test binary, see realGcloud), isolated from any credentials and
// from the network, and describes those it rejects.
func realGcloudProblems(t *testing.T, gcloud string, calls []call) []string {
	t.Helper()
	g, err := sharedGcloud(gcloud)
	if err != nil {
		return []string{fmt.Sprintf("cannot run the real gcloud: %v", err)}
	}
	var problems []string
	for _, c := range calls {
		a, err := g.run(c)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		switch s := a.Output; {
		case a.Code == 2 || strings.Contains(s, "unrecognized arguments") || strings.Contains(s, ") argument ") || strings.Contains(s, "Invalid choice"):
			problems = append(problems, fmt.Sprintf("real gcloud rejects the arguments of\n  %s\n%s", c, s))
		case a.Code == 0:
			problems = append(problems, fmt.Sprintf("real gcloud ran %s without credentials: the check is not isolated", c))
		case !strings.Contains(s, "active account"):
			t.Logf("real gcloud on %s (exit %d): %s", c, a.Code, s)
		}
	}
	return problems
}

func TestRealGcloudCheckCatchesMistakes(t *testing.T) {
	gcloud, err := exec.LookPath("gcloud")
	if err != nil {
		checkWithRealGcloud(t, nil) // reports the missing gcloud the same way
		return
	}
	deploy := []string{"functions", "deploy", "f", "--gen2", "--runtime=go126", "--trigger-http", "--project=stub-project", "--region=us-central1"}
	bad := []call{
		{args: []string{"secrets", "versions", "add", "s", "--datafile=-", "--project=stub-project"}},
		{args: []string{"functions", "deploy", "f", "--gen2", "--runtime=go126", "--trigger-https", "--project=stub-project", "--region=us-central1"}},
		{args: []string{"firestore", "databases", "create", "--location=nam5", "--type=native", "--project=stub-project"}},
		// The sizing flags: --cpu only with --memory; concurrency is --concurrency.
		{args: append(slices.Clone(deploy), "--concurrency=80", "--cpu=1")},
		{args: append(slices.Clone(deploy), "--max-instance-request-concurrency=80")},
		// A condition is expression=...,title=..., not the bare expression.
		{args: []string{"projects", "add-iam-policy-binding", "stub-project", "--member=serviceAccount:" + runtimeSA, "--role=roles/datastore.user",
			`--condition=resource.name=="projects/stub-project/databases/(default)"`, "--format=none"}},
		{args: []string{"iam", "roles", "create", "r", "--project=stub-project", "--permission=run.services.setIamPolicy"}},
		{args: []string{"artifacts", "repositories", "create", "r", "--format=docker", "--location=us-central1", "--project=stub-project"}},
		// The runbook's cut-off names the member.
		{args: []string{"functions", "remove-invoker-policy-binding", "gmail-disconnect", "--project=stub-project", "--region=us-central1"}},
		// Two callers in one substitution without gcloud's ^;^ escaping.
		{args: []string{"builds", "submit", "--config=cloudbuild.yaml", "--project=stub-project",
			"--substitutions=_LIST_AUTH=iam,_ALLOWED_CALLERS=a@x.iam.gserviceaccount.com,b@y.iam.gserviceaccount.com"}, dir: ".."},
	}
	if p := realGcloudProblems(t, gcloud, bad); len(p) != len(bad) {
		t.Errorf("the real-gcloud check caught %d of %d bad commands: %v", len(p), len(bad), p)
	}
}

// cloudBuild reads ../cloudbuild.yaml and its substitutions' defaults.
func cloudBuild(t *testing.T) (string, map[string]string) {
	t.Helper()
	b, err := os.ReadFile("../cloudbuild.yaml")
	if err != nil {
		t.Fatalf("cloudbuild.yaml: %v", err)
	}
	s := string(b)
	subs := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^  (_[A-Z0-9_]+): *('[^']*'|[^ #\n]*)`).FindAllStringSubmatch(s, -1) {
		subs[m[1]] = strings.Trim(m[2], "'")
	}
	return s, subs
}

func TestCloudBuildSubstitutions(t *testing.T) {
	s, subs := cloudBuild(t)
	for _, k := range []string{"_REGION", "_SERVICE_ACCOUNT", "_LIST_AUTH", "_RUNTIME", "_GO_VERSION"} {
		if _, ok := subs[k]; !ok {
			t.Errorf("cloudbuild.yaml: substitution %s has no default", k)
		}
	}
	// Cloud Build expands $NAME and ${NAME} itself: anything else must be $$.
	for _, m := range regexp.MustCompile(`\$(\$|\{[A-Z0-9_]+\}|[A-Z0-9_]+)`).FindAllStringSubmatch(s, -1) {
		name := strings.Trim(m[1], "{}")
		switch {
		case m[1] == "$":
		case strings.HasPrefix(name, "_"):
			if _, ok := subs[name]; !ok {
				t.Errorf("cloudbuild.yaml uses %s, which has no default", m[0])
			}
		case !slices.Contains([]string{"PROJECT_ID", "PROJECT_NUMBER", "BUILD_ID", "LOCATION", "COMMIT_SHA", "SHORT_SHA", "BRANCH_NAME", "TAG_NAME", "REF_NAME", "REPO_NAME", "TRIGGER_NAME"}, name):
			t.Errorf("cloudbuild.yaml: %s is not a Cloud Build substitution (write $$ for the shell)", m[0])
		}
	}
	b, err := os.ReadFile("deploy.sh")
	if err != nil {
		t.Fatal(err)
	}
	def := regexp.MustCompile(`RUNTIME="\$\{RUNTIME:-(go1\d+)\}"`).FindSubmatch(b)
	if def == nil || subs["_RUNTIME"] != string(def[1]) {
		t.Errorf("cloudbuild.yaml _RUNTIME=%q, deploy.sh's default runtime %q: keep them the same", subs["_RUNTIME"], def)
	}
	if want := "1." + strings.TrimPrefix(subs["_RUNTIME"], "go1") + "."; !strings.HasPrefix(subs["_GO_VERSION"], want) {
		t.Errorf("_GO_VERSION=%s does not match the runtime %s", subs["_GO_VERSION"], subs["_RUNTIME"])
	}
	if !strings.Contains(s, "CI=true go test") || !strings.Contains(s, "chromium") || !strings.Contains(s, "shellcheck") {
		t.Error("the test step must install Chromium and shellcheck and run the tests with CI=true")
	}
}

// cloudBuildDeploy runs the deploy steps of cloudbuild.yaml as Cloud Build
// would with the given substitutions over the defaults, each with the stub
// gcloud, and returns their calls.
func cloudBuildDeploy(t *testing.T, given map[string]string) []call {
	t.Helper()
	s, subs := cloudBuild(t)
	maps.Copy(subs, given)
	subs["PROJECT_ID"] = "stub-project"
	expand := func(a string) string {
		return regexp.MustCompile(`\$\{?(_?[A-Z0-9_]+)\}?`).ReplaceAllStringFunc(a, func(v string) string {
			return subs[strings.Trim(v, "${}")]
		})
	}
	steps := regexp.MustCompile(`(?m)^  - id: (deploy-[a-z-]+)\n(?:    .*\n)*?    args: \[(.*)\]\n    waitFor: \['test'\]`).FindAllStringSubmatch(s, -1)
	if len(steps) != 4 {
		t.Fatalf("want 4 deploy steps waiting for the tests, found %d", len(steps))
	}
	var all []call
	for _, st := range steps {
		var args []string
		for _, a := range strings.Split(st[2], ", ") {
			args = append(args, expand(strings.Trim(a, "'")))
		}
		if args[0] != "deploy/deploy.sh" {
			t.Fatalf("%s runs %s", st[1], args[0])
		}
		// Cloud Build runs in the source root; runScript runs from deploy/.
		calls, out, err := runScript(t, nil, filepath.Base(args[0]), args[1:]...)
		if err != nil {
			t.Fatalf("%s: %v\n%s", st[1], err, out)
		}
		if n := len(find(calls, "functions", "deploy")); n != 1 {
			t.Errorf("%s deploys %d functions", st[1], n)
		}
		all = append(all, calls...)
	}
	return all
}

// The deploy steps, run as Cloud Build would run them with the default
// substitutions, deploy each function once with the settings of a manual deploy.
func TestCloudBuildDeploySteps(t *testing.T) {
	checkDeploy(t, cloudBuildDeploy(t, nil), "session", "https://us-central1-stub-project.cloudfunctions.net")

	// Each service-account substitution reaches every deploy.
	calls := cloudBuildDeploy(t, map[string]string{
		"_SERVICE_ACCOUNT":           "fn@other.iam.gserviceaccount.com",
		"_AUTHORIZE_SERVICE_ACCOUNT": "authz@other.iam.gserviceaccount.com",
		"_BUILD_SERVICE_ACCOUNT":     "builder@other.iam.gserviceaccount.com",
	})
	for ep, c := range deploys(t, calls) {
		runsAs := "fn@other.iam.gserviceaccount.com"
		if ep == "Authorize" {
			runsAs = "authz@other.iam.gserviceaccount.com"
		}
		if !c.has("--service-account="+runsAs) || !c.has("--build-service-account=projects/stub-project/serviceAccounts/builder@other.iam.gserviceaccount.com") {
			t.Errorf("%s: the substitutions' accounts do not reach\n  %s", ep, c)
		}
	}
}
