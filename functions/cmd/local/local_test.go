package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/browsertest"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/fakegoogle"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/firestoretest"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/runnerproc"
)

// runnerBin is this package built as the README says, once for all tests.
var runnerBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "local-runner-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	runnerBin, err = runnerproc.Build(context.Background(), dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := firestoretest.Run(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// autoApprove makes the fake Google approve without its consent page.
const autoApprove = "FAKE_GOOGLE_AUTO_APPROVE=true"

// TestRunner_WithNoSettingsPrintsTheURLToOpen: started with only its ports
// and data folder (as flags or as variables), the runner says where to go:
// one line with the home page's URL, which serves the page. After it the
// log is short text lines, with no line per request.
func TestRunner_WithNoSettingsPrintsTheURLToOpen(t *testing.T) {
	for _, tc := range []struct {
		name  string
		inEnv bool
	}{
		{"Flags", false},
		{"Env", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := browsertest.StartRunner(t, browsertest.RunnerConfig{Bin: runnerBin, SettingsInEnv: tc.inEnv, TextLog: true})
			// A page load, as the user's browser makes.
			status, page := get(t, newClient(t), r.URL+"/", "text/html")
			if status != http.StatusOK || !bytes.Contains(page, []byte("<title>Gmail OAuth functions</title>")) {
				t.Errorf("GET / = %d, want the home page: %s", status, page)
			}
			open := "\nOpen " + r.URL + "/\n"
			r.AwaitOutput(open)
			out := r.AwaitOutput(`msg="instance ready"`) // the app is built on the first request
			if strings.Count(out, "Open ") != 1 {
				t.Errorf("the output has not exactly one line to open; it is:\n%s", out)
			}
			// Besides the banner, only short text log lines, and no access
			// line, though WaitReady's GET /Authorize and the page load
			// above were requests.
			banner := []string{"Serving function: ", "Functions on " + r.URL + ": ", "Google is the local fake on " + r.FakeURL + " ", strings.TrimSpace(open)}
			if !strings.Contains(out, banner[2]) {
				t.Errorf("the output does not name the fake Google; it is:\n%s", out)
			}
		lines:
			for l := range strings.SplitSeq(out, "\n") {
				for _, b := range banner {
					if l == "" || strings.HasPrefix(l, b) {
						continue lines
					}
				}
				if !strings.HasPrefix(l, "time=") || strings.Contains(l, "msg=request") {
					t.Errorf("%q: want only the banner and short text log lines, no access line; the output is:\n%s", l, out)
				}
			}
			for _, f := range []string{"dev_keys.json", "fake_client_secret.json", "fakegoogle.json"} {
				fi, err := os.Stat(filepath.Join(r.DataDir, f))
				if err != nil {
					t.Errorf("the data folder lacks %s: %v", f, err)
				} else if fi.Mode().Perm() != 0o600 {
					t.Errorf("%s has mode %v, want 0600 (it holds keys)", f, fi.Mode().Perm())
				}
			}
		})
	}
}

// TestRunner_LogSettings: LOG_LEVEL=debug shows the access lines in text,
// and LOG_FORMAT=json gives Cloud Logging's lines, as deployed.
func TestRunner_LogSettings(t *testing.T) {
	for _, tc := range []struct {
		env  string
		want string
	}{
		{"LOG_LEVEL=debug", "level=DEBUG msg=request function=Authorize method=GET status=200"},
		{"LOG_FORMAT=json", `"severity":"INFO","message":"request","function":"Authorize","method":"GET","status":200`},
	} {
		t.Run(tc.env, func(t *testing.T) {
			r := browsertest.StartRunner(t, browsertest.RunnerConfig{Bin: runnerBin, TextLog: true, Env: []string{tc.env}, SeedFakeState: true})
			r.AwaitOutput(tc.want)
		})
	}
}

// TestRunner_AutoApproveScriptedFlow: with FAKE_GOOGLE_AUTO_APPROVE=true a
// plain HTTP client with a cookie jar goes Authorize → (fake approves) →
// Callback → ListMessages.
func TestRunner_AutoApproveScriptedFlow(t *testing.T) {
	r := browsertest.StartRunner(t, browsertest.RunnerConfig{Bin: runnerBin, Env: []string{autoApprove}, SeedFakeState: true})
	c := newClient(t)
	connect(t, c, r)

	all := listJSON(t, c, r, "")
	if len(all.Messages) < 1 {
		t.Fatalf("ListMessages lists no message: %+v", all)
	}
	for _, tc := range []struct {
		name       string
		query      string
		noCookies  bool
		wantStatus int
		wantError  string // the JSON error code, for a refusal
		wantCount  int    // messages, for a success
	}{
		{name: "FivePerPage", query: "?maxResults=5", wantStatus: 200, wantCount: 5},
		{name: "MaxResultsAbove500", query: "?maxResults=501", wantStatus: 400, wantError: "invalid_request"},
		{name: "UnknownParameter", query: "?labelId=INBOX", wantStatus: 400, wantError: "invalid_request"},
		{name: "UserParameterIsNotTrusted", query: "?user=" + fakegoogle.DemoEmail, wantStatus: 400, wantError: "invalid_request"},
		{name: "NoSessionCookie", noCookies: true, wantStatus: 401, wantError: "authorization_required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := c
			if tc.noCookies {
				client = newClient(t)
			}
			status, body := get(t, client, r.URL+"/ListMessages"+tc.query, "application/json")
			if status != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", status, tc.wantStatus, body)
			}
			if tc.wantError != "" {
				var e struct {
					Error            string `json:"error"`
					AuthorizationURL string `json:"authorization_url"`
				}
				if err := json.Unmarshal(body, &e); err != nil || e.Error != tc.wantError {
					t.Fatalf("body %s, want error %q", body, tc.wantError)
				}
				if tc.wantStatus == 401 && !strings.HasPrefix(e.AuthorizationURL, r.URL+"/Authorize") {
					t.Errorf("authorization_url = %q, want %s/Authorize", e.AuthorizationURL, r.URL)
				}
				return
			}
			l := decodeList(t, body)
			if len(l.Messages) != tc.wantCount || l.NextPageToken == "" {
				t.Errorf("%d messages and nextPageToken %q, want %d and a token", len(l.Messages), l.NextPageToken, tc.wantCount)
			}
		})
	}
}

// TestRunner_SessionSurvivesRestart: the local store, the dev keys and the
// fake Google's grants and tokens live in the data folder, so after a
// restart on the same folder the same session cookie lists the mailbox, with
// no new authorization.
func TestRunner_SessionSurvivesRestart(t *testing.T) {
	cfg := browsertest.RunnerConfig{Bin: runnerBin, Env: []string{autoApprove},
		Port: browsertest.FreePort(t), FakePort: browsertest.FreePort(t), DataDir: t.TempDir()}
	first := browsertest.StartRunner(t, cfg)
	c := newClient(t)
	connect(t, c, first)
	before := listJSON(t, c, first, "?maxResults=5")
	keys, err := os.ReadFile(filepath.Join(cfg.DataDir, "dev_keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"tokens.json", "fakegoogle.json"} {
		if fi, err := os.Stat(filepath.Join(cfg.DataDir, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, %v; want it with mode 0600", f, err, fi)
		}
	}
	first.Stop()

	second := browsertest.StartRunner(t, cfg)
	if again, _ := os.ReadFile(filepath.Join(cfg.DataDir, "dev_keys.json")); !bytes.Equal(again, keys) {
		t.Error("the restart generated new dev keys; the stored tokens and cookies would not open")
	}
	// No Authorize here: the cookie from the first run must be enough.
	status, body := get(t, c, second.URL+"/ListMessages?maxResults=5", "application/json")
	if status != http.StatusOK {
		// 401 reauthorization_required would mean the fake Google forgot
		// the tokens it issued; authorization_required, that the cookie or
		// the stored record was lost.
		t.Fatalf("ListMessages after the restart: status %d, want 200: %s\nrunner output:\n%s", status, body, second.Output())
	}
	after := decodeList(t, body)
	if len(after.Messages) != 5 || after.Messages[0] != before.Messages[0] {
		t.Errorf("after the restart: %+v, want the same first page as before: %+v", after.Messages, before.Messages)
	}
	if next := listJSON(t, c, second, "?maxResults=5&pageToken="+url.QueryEscape(before.NextPageToken)); len(next.Messages) != 5 || next.Messages[0] == before.Messages[0] {
		t.Errorf("the page token from before the restart gave %+v, want the second page", next.Messages)
	}
}

// TestStartFakeGoogle_RefusesACorruptStateFile: a fakegoogle.json the fake
// cannot read stops the runner with its path, and is left for the user to
// look at.
func TestStartFakeGoogle_RefusesACorruptStateFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "fakegoogle.json")
	corrupt := []byte(`{"version":1,"users":[`)
	if err := os.WriteFile(path, corrupt, 0o600); err != nil {
		t.Fatal(err)
	}
	err := startFakeGoogle(strconv.Itoa(browsertest.FreePort(t)), dir, "http://localhost:1", fakegoogle.Options{})
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("startFakeGoogle = %v, want an error naming %s", err, path)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, corrupt) {
		t.Errorf("the corrupt state file was changed to %q", got)
	}
}

// newClient is an HTTP client with its own cookie jar.
func newClient(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 20 * time.Second}
}

// connect follows GET /Authorize through the auto-approving fake to
// Callback's success page.
func connect(t *testing.T, c *http.Client, r *browsertest.Runner) {
	t.Helper()
	resp, err := c.Get(r.URL + "/Authorize")
	if err != nil {
		t.Fatalf("GET /Authorize: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/Callback" || !strings.HasPrefix(resp.Request.URL.String(), r.URL) {
		t.Fatalf("GET /Authorize ended at %s with status %d, want %s/Callback with 200: %s\nrunner output:\n%s",
			resp.Request.URL, resp.StatusCode, r.URL, body, r.Output())
	}
	for _, want := range []string{"Gmail connected", fakegoogle.DemoEmail} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("Callback's page lacks %q: %s", want, body)
		}
	}
}

// get GETs url with the Accept header and returns the status and body.
func get(t *testing.T, c *http.Client, url, accept string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", accept)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading the body: %v", url, err)
	}
	return resp.StatusCode, body
}

type message struct {
	ID       string `json:"id"`
	ThreadID string `json:"threadId"`
}

type listResponse struct {
	Messages           []message `json:"messages"`
	NextPageToken      string    `json:"nextPageToken"`
	ResultSizeEstimate int       `json:"resultSizeEstimate"`
}

// listJSON asks ListMessages for JSON and fails the test unless it is 200.
func listJSON(t *testing.T, c *http.Client, r *browsertest.Runner, query string) listResponse {
	t.Helper()
	status, body := get(t, c, r.URL+"/ListMessages"+query, "application/json")
	if status != http.StatusOK {
		t.Fatalf("GET /ListMessages%s: status %d: %s", query, status, body)
	}
	return decodeList(t, body)
}

func decodeList(t *testing.T, body []byte) listResponse {
	t.Helper()
	var l listResponse
	if err := json.Unmarshal(body, &l); err != nil {
		t.Fatalf("ListMessages' answer is not JSON (%v): %s", err, body)
	}
	for i, m := range l.Messages {
		if m.ID == "" || m.ThreadID == "" {
			t.Errorf("message %d has id %q and threadId %q; both must be set", i, m.ID, m.ThreadID)
		}
	}
	return l
}

// TestRunner_WithFirestoreEmulator_KeepsTokensThere: given
// FIRESTORE_EMULATOR_HOST, the runner keeps tokens in Firestore (the real
// emulator) instead of its local file.
func TestRunner_WithFirestoreEmulator_KeepsTokensThere(t *testing.T) {
	host := firestoretest.Require(t)
	project := firestoretest.ProjectID(t)
	// The runner's store budget is the documented maximum: this test is
	// about where the tokens go, and on a saturated CI machine the
	// emulator's first write in a new project has taken over the 3 s
	// default. The budget itself is tested in internal/app.
	r := browsertest.StartRunner(t, browsertest.RunnerConfig{Bin: runnerBin, SeedFakeState: true,
		Env: []string{autoApprove, "FIRESTORE_EMULATOR_HOST=" + host, "GOOGLE_CLOUD_PROJECT=" + project, "STORE_TIMEOUT=30s"}})
	c := newClient(t)
	connect(t, c, r)
	if got := listJSON(t, c, r, "?maxResults=3"); len(got.Messages) != 3 {
		t.Fatalf("listed %d messages, want 3", len(got.Messages))
	}
	fs, _ := firestoretest.NewProjectClient(t.Context(), t, project)
	docs, err := fs.Collection("gmail_tokens").Documents(t.Context()).GetAll()
	if err != nil || len(docs) != 1 {
		t.Fatalf("%d token documents in the emulator, want 1 (%v)", len(docs), err)
	}
	if _, err := os.Stat(filepath.Join(r.DataDir, "tokens.json")); !os.IsNotExist(err) {
		t.Fatalf("the local token file exists too: %v", err)
	}
}
