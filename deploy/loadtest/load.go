package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/fakegoogle"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/runnerproc"
)

// requestTimeout bounds every request the tool makes.
const requestTimeout = 30 * time.Second

// Run starts the stack, runs the phases of a load test (see the package
// documentation) and returns the report. It stops the stack before it
// returns.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	// The hard limit of the whole run, whatever happens.
	limit := cfg.Duration + cfg.Baseline + 2*time.Minute
	if cfg.Floor {
		limit += cfg.Duration
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()

	dir, err := os.MkdirTemp("", "loadtest-")
	if err != nil {
		return nil, err
	}
	if cfg.Keep {
		cfg.Log.Printf("temporary folder (kept): %s", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	bin := cfg.Runner
	if bin == "" {
		cfg.Log.Printf("building the functions (-target %s)", cfg.Target)
		if bin, err = build(ctx, cfg.Target, dir); err != nil {
			return nil, err
		}
	}

	st, err := startStack(ctx, cfg, dir, bin)
	if err != nil {
		return nil, err
	}
	defer st.stop()
	rep := &Report{Config: reportConfig(cfg), Machine: machine(), StartupMS: ms(st.Startup), FirstRequestMS: ms(st.FirstRequest)}
	cfg.Log.Printf("runner pid %d serving at %s after %v (fake Google in the %s, %v latency)", st.proc.Cmd.Process.Pid, st.FuncURL, st.Startup.Round(time.Millisecond), cfg.Fake, cfg.Latency)
	ps, err := st.readProc()
	if err != nil {
		return nil, err
	}
	rep.Runner.PID = st.proc.Cmd.Process.Pid
	rep.Runner.RSSAfterStartMiB = mib(ps.RSS)

	tr := loopbackTransport(2*cfg.Concurrency + 8)
	defer tr.CloseIdleConnections()

	// Log every user in, C at a time.
	users := make([]*simUser, cfg.Users)
	for i := range users {
		jar, _ := cookiejar.New(nil)
		users[i] = &simUser{email: fmt.Sprintf("user%d@loadtest.example", i),
			c: &http.Client{Transport: tr, Jar: jar, Timeout: requestTimeout}}
	}
	cfg.Log.Printf("logging in %d users", cfg.Users)
	setup := drive(ctx, cfg.Concurrency, time.Hour, cfg.Users, func(ctx context.Context, n int) (string, int, error) {
		status, err := users[n].login(ctx, st.FuncURL)
		return opLogin, status, err
	})
	rep.Setup = setup.stats(opLogin)
	if rep.Setup.Errors > 0 {
		return nil, fmt.Errorf("logging the users in: %d of %d failed (%v, first: %s); runner output:\n%s",
			rep.Setup.Errors, cfg.Users, rep.Setup.Statuses, rep.Setup.FirstError, st.output())
	}
	if ps, err = st.readProc(); err == nil {
		rep.Runner.RSSAfterLoginsMiB = mib(ps.RSS)
	}

	listURL := st.FuncURL + "/ListMessages"
	if cfg.Query != "" {
		listURL += "?" + cfg.Query
	}
	if status, err := users[0].list(ctx, listURL); err != nil || status != http.StatusOK {
		return nil, fmt.Errorf("a first ListMessages answered %d (%v); runner output:\n%s", status, err, st.output())
	}

	if cfg.Baseline > 0 {
		cfg.Log.Printf("baseline: %d clients calling the fake Gmail list directly for %v", cfg.Concurrency, cfg.Baseline)
		b, err := baseline(ctx, cfg, st, tr)
		if err != nil {
			return nil, fmt.Errorf("baseline: %w", err)
		}
		rep.Baseline = &b
	}

	var floor *floorProc
	if cfg.Floor {
		cfg.Log.Printf("starting the floor: a plain reverse proxy to the fake Gmail list")
		if floor, err = startFloor(ctx, cfg, st, tr); err != nil {
			return nil, fmt.Errorf("floor: %w", err)
		}
		defer floor.stop()
	}

	bound := cfg.Duration.String()
	if cfg.Requests > 0 {
		bound += fmt.Sprintf(" or %d operations", cfg.Requests)
	}
	cfg.Log.Printf("load: %d clients for %s, a login every %d operations (0: none)", cfg.Concurrency, bound, cfg.LoginEvery)
	before, err := st.readProc()
	if err != nil {
		return nil, err
	}
	perUser := make([]atomic.Int64, len(users))
	res := drive(ctx, cfg.Concurrency, cfg.Duration, cfg.Requests, func(ctx context.Context, n int) (string, int, error) {
		u := n % len(users)
		if cfg.LoginEvery > 0 && n%cfg.LoginEvery == cfg.LoginEvery-1 {
			status, err := users[u].login(ctx, st.FuncURL)
			return opLogin, status, err
		}
		perUser[u].Add(1)
		status, err := users[u].list(ctx, listURL)
		return opList, status, err
	})
	after, err := st.readProc()
	if err != nil {
		return nil, err
	}
	rep.fillLoad(res, before, after)
	if floor != nil {
		cfg.Log.Printf("floor: %d clients for %s", cfg.Concurrency, bound)
		if rep.Floor, err = runFloor(ctx, cfg, floor, tr); err != nil {
			return nil, fmt.Errorf("floor: %w", err)
		}
		rep.fillFloorRatio()
		if rep.Floor.Errors > 0 {
			rep.Notes = append(rep.Notes, fmt.Sprintf("the floor failed %d of %d requests (first: %s)", rep.Floor.Errors, rep.Floor.Count, rep.Floor.FirstError))
		}
		if cfg.LoginEvery > 0 {
			rep.Notes = append(rep.Notes, "the CPU ratio to the floor counts the logins of the load phase on the functions' side: run with -login-every 0 for ListMessages alone")
		}
	}
	var most int64
	for i := range perUser {
		most = max(most, perUser[i].Load())
	}
	// The App's own quota: a bucket of 6000 units per user (1200 lists),
	// refilled at 100 units a second (20 lists).
	if secs := res.elapsed.Seconds(); float64(most) > 1200+20*secs {
		rep.Notes = append(rep.Notes, fmt.Sprintf("a user was listed %d times in %.0fs: more than the App's per-user Gmail quota allows without waiting (1200 + 20/s); use more -users", most, secs))
	}
	if cfg.Fake == FakeInRunner {
		rep.Notes = append(rep.Notes, "the runner's RSS and CPU include the fake Google, whose seeded mailboxes take about 2 MiB per user: run with -fake tool to measure the functions alone")
	}
	if cfg.Requests > 0 && res.ops >= cfg.Requests {
		rep.Notes = append(rep.Notes, fmt.Sprintf("stopped after -requests %d operations", cfg.Requests))
	}
	cfg.Log.Printf("done: %d operations in %v", res.ops, res.elapsed.Round(time.Millisecond))
	return rep, nil
}

// deployedPackage is the buildpack's generated main for this module.
const deployedPackage = "github.com/gmail-oauth-functions/gmail-oauth-functions/deploy/loadtest/deployed"

// build builds the program of target into dir and returns its path.
func build(ctx context.Context, target, dir string) (string, error) {
	if target == TargetLocal {
		return runnerproc.Build(ctx, dir)
	}
	bin := filepath.Join(dir, "function")
	return bin, runnerproc.BuildProgram(ctx, deployedPackage, bin)
}

// Operation kinds.
const (
	opList     = "ListMessages"
	opLogin    = "login"
	opBaseline = "gmail.list (direct)"
	opFloor    = "floor (proxy)"
)

// simUser is one user's browser: a cookie jar.
type simUser struct {
	email string
	c     *http.Client
}

// login goes GET /Authorize?login_hint= → the auto-approving fake Google →
// GET /Callback, following the redirects, and answers Callback's status.
func (u *simUser) login(ctx context.Context, funcURL string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, funcURL+"/Authorize?login_hint="+url.QueryEscape(u.email), nil)
	if err != nil {
		return 0, err
	}
	resp, err := u.c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, err
	}
	if resp.Request.URL.Path != "/Callback" {
		return resp.StatusCode, fmt.Errorf("the login ended at %s, not /Callback", resp.Request.URL.Redacted())
	}
	if resp.StatusCode == http.StatusOK && !bytes.Contains(body, []byte("Gmail connected")) {
		return resp.StatusCode, fmt.Errorf("callback page without success: %.200s", body)
	}
	return resp.StatusCode, nil
}

// list calls ListMessages as the user and answers its status.
func (u *simUser) list(ctx context.Context, target string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := u.c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode == http.StatusOK && !bytes.HasPrefix(body, []byte(`{"messages":[`)) {
		return resp.StatusCode, fmt.Errorf("not a page of messages: %.200s", body)
	}
	return resp.StatusCode, nil
}

// baseline drives C clients calling the fake Gmail list endpoint directly,
// with an access token of its own and the Gmail parameters of -query.
func baseline(ctx context.Context, cfg Config, st *stack, tr *http.Transport) (Stats, error) {
	token, err := directToken(ctx, st, tr, "baseline@loadtest.example")
	if err != nil {
		return Stats{}, err
	}
	q, err := url.ParseQuery(cfg.Query)
	if err != nil {
		return Stats{}, fmt.Errorf("-query: %w", err)
	}
	gq := url.Values{"alt": {"json"}, "prettyPrint": {"false"}, "fields": {"messages(id,threadId),nextPageToken,resultSizeEstimate"}}
	for _, k := range []string{"q", "labelIds", "maxResults", "includeSpamTrash"} {
		if v, ok := q[k]; ok {
			gq[k] = v
		}
	}
	target := st.FakeURL + "/gmail/v1/users/me/messages?" + gq.Encode()
	c := &http.Client{Transport: tr, Timeout: requestTimeout}
	res := drive(ctx, cfg.Concurrency, cfg.Baseline, 0, func(ctx context.Context, _ int) (string, int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			return opBaseline, 0, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := c.Do(req)
		if err != nil {
			return opBaseline, 0, err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return opBaseline, resp.StatusCode, err
	})
	s := res.stats(opBaseline)
	s.Throughput = float64(s.Count) / res.elapsed.Seconds()
	if s.Errors > 0 {
		return s, fmt.Errorf("%d of %d direct Gmail calls failed (%v, first: %s)", s.Errors, s.Count, s.Statuses, s.FirstError)
	}
	return s, nil
}

// directToken gets an access token for email straight from the fake Google,
// as the functions' OAuth client: authorization (auto-approved) and code
// exchange.
func directToken(ctx context.Context, st *stack, tr *http.Transport, email string) (string, error) {
	secret, err := os.ReadFile(filepath.Join(st.Dir, "data", "fake_client_secret.json"))
	if err != nil {
		return "", err
	}
	oc, err := google.ConfigFromJSON(secret, fakegoogle.GmailReadonlyScope)
	if err != nil {
		return "", err
	}
	oc.RedirectURL = st.FuncURL + "/Callback"
	c := &http.Client{Transport: tr, Timeout: requestTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, oc.AuthCodeURL("baseline", oauth2.AccessTypeOffline, oauth2.SetAuthURLParam("login_hint", email)), nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		return "", fmt.Errorf("the fake Google did not approve: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	tok, err := oc.Exchange(context.WithValue(ctx, oauth2.HTTPClient, c), loc.Query().Get("code"))
	if err != nil {
		return "", fmt.Errorf("code exchange: %w", err)
	}
	return tok.AccessToken, nil
}

// series is what a worker saw of one kind of operation.
type series struct {
	durs     []time.Duration
	statuses map[string]int
	errors   int
	firstErr string
}

// driveResult is what all workers saw.
type driveResult struct {
	elapsed time.Duration
	ops     int
	kinds   map[string]*series
}

// drive runs op with conc workers until dur has passed or limit operations
// (0: no limit) have started, and collects latencies and statuses by the
// kind op names. n numbers the operations from 0. An operation that has
// started when dur passes is waited for.
func drive(ctx context.Context, conc int, dur time.Duration, limit int, op func(ctx context.Context, n int) (kind string, status int, err error)) *driveResult {
	var next atomic.Int64
	start := time.Now()
	end := start.Add(dur)
	results := make([]map[string]*series, conc)
	var wg sync.WaitGroup
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := map[string]*series{}
			results[w] = mine
			for ctx.Err() == nil && time.Now().Before(end) {
				n := int(next.Add(1) - 1)
				if limit > 0 && n >= limit {
					return
				}
				t0 := time.Now()
				kind, status, err := op(ctx, n)
				d := time.Since(t0)
				s := mine[kind]
				if s == nil {
					s = &series{statuses: map[string]int{}}
					mine[kind] = s
				}
				s.durs = append(s.durs, d)
				key := strconv.Itoa(status)
				if status == 0 {
					key = "transport error"
				}
				s.statuses[key]++
				if err != nil || status < 200 || status > 299 {
					if s.errors == 0 {
						s.firstErr = fmt.Sprintf("status %d: %v", status, err)
					}
					s.errors++
				}
			}
		}()
	}
	wg.Wait()
	res := &driveResult{elapsed: time.Since(start), kinds: map[string]*series{}}
	for _, m := range results {
		for kind, s := range m {
			all := res.kinds[kind]
			if all == nil {
				all = &series{statuses: map[string]int{}}
				res.kinds[kind] = all
			}
			all.durs = append(all.durs, s.durs...)
			for k, v := range s.statuses {
				all.statuses[k] += v
			}
			if all.errors == 0 {
				all.firstErr = s.firstErr
			}
			all.errors += s.errors
			res.ops += len(s.durs)
		}
	}
	return res
}

// machine describes this machine.
func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range bytes.Split(b, []byte("\n")) {
			if k, v, ok := bytes.Cut(line, []byte(":")); ok && string(bytes.TrimSpace(k)) == "model name" {
				m.CPUModel = string(bytes.TrimSpace(v))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range bytes.Split(b, []byte("\n")) {
			if k, v, ok := bytes.Cut(line, []byte(":")); ok && string(k) == "MemTotal" {
				if f := bytes.Fields(v); len(f) == 2 {
					kb, _ := strconv.ParseInt(string(f[0]), 10, 64)
					m.MemoryMiB = mib(kb << 10)
				}
			}
		}
	}
	return m
}
