// Command loadtest measures the functions under load on this machine, with
// nothing but loopback traffic.
//
// It builds the functions and starts them as a subprocess on free loopback
// ports, with a temporary data folder (the file token store and a key
// set) and the fake Google: auto-approving, adding -latency to every
// answer as a stand-in for the round trip to Google, and with no Gmail
// quota of its own. By default (-target deployed) the program is the one
// Google's buildpack builds for Cloud Functions (deploy/loadtest/deployed,
// the buildpack's generated main for this module), configured through its
// environment as a deployment is, so that its memory and CPU are the
// deployed functions' and nothing else's; -target local runs the local
// runner (functions/cmd/local) instead, which also links the home page
// and the fake Google. Either way this tool calls that process "the
// runner" in its reports. Then it
//
//  1. measures the time from the runner's process start to the first
//     request its functions serve (the first request builds the App);
//  2. logs in -users users (user0@loadtest.example, user1@...) through
//     Authorize → the fake's consent → Callback, each with its own cookie
//     jar;
//  3. measures the baseline: -concurrency clients calling the fake Gmail
//     list endpoint directly, with the same latency and parameters, for
//     -baseline;
//  4. drives -concurrency clients, for -duration or -requests operations,
//     whichever ends first: ListMessages for the users in turn, and every
//     -login-every-th operation a whole login (Authorize → Google →
//     Callback) instead;
//  5. reports throughput (req/s), p50/p90/p99 latency, the latency the
//     functions add over the baseline, errors by status, and the runner's
//     peak RSS (VmHWM) and CPU time per request.
//
// It always stops by itself: after -duration (or -requests), with a hard
// limit of -duration plus two minutes for the whole run, and every request
// has a 30 s timeout.
//
// The fake Google runs inside this tool (-fake tool, the default), and the
// functions are pointed at it through the GOOGLE_*_URL, GMAIL_ENDPOINT and
// OAUTH_CLIENT_SECRET_FILE settings. With -target local -fake runner it
// runs inside the local runner instead, as in a local run, so the runner's
// RSS and CPU include the fake's (its seeded mailboxes take about 2 MiB per
// user).
//
// With -floor the tool also builds and starts the floor target
// (deploy/loadtest/floor): a plain reverse proxy (net/http/httputil) in a
// process of its own that forwards a ListMessages-shaped request to the
// fake Gmail list with a fixed access token and copies the bytes back. After
// the load phase the same -concurrency clients drive it for the same
// -duration (or -requests), and the report gives its CPU per request, its
// peak RSS and the functions' CPU per operation as a multiple of the
// floor's: the share of the cost that is the functions' own. Run it with
// -login-every 0 so that both sides serve lists only:
//
//	go run ./deploy/loadtest -concurrency 50 -latency 20ms -duration 20s -login-every 0 -floor
//
// The App's own per-user Gmail quota accounting (6000 units a minute per
// user and instance, so 20 lists a second per user after a burst of 1200)
// still applies: use enough -users that no user goes past it, or the
// requests wait for quota as they would in production.
//
// Usage, from the repository root:
//
//	go run ./deploy/loadtest                                    # 50 clients, 20ms, 10 s
//	go run ./deploy/loadtest -concurrency 50 -latency 20ms -duration 20s -users 200
//	go run ./deploy/loadtest -json > load.json                   # JSON report
//	go run ./deploy/loadtest -target local -fake runner          # the local runner, fake Google inside
//	go run ./deploy/loadtest -requests 10000 -login-every 0      # ListMessages only, 10000 requests
//
// Flags:
//
//	-users N          users logged in, and served in turn (default 200)
//	-concurrency C    concurrent clients (default 50)
//	-duration D       length of the load phase (default 10s)
//	-requests N       stop after N operations instead, if sooner (default 0: no limit)
//	-latency D        latency the fake Google adds to every answer (default 20ms)
//	-login-every N    every Nth operation is a login instead of a ListMessages (default 20; 0: none)
//	-query Q          ListMessages query string, e.g. "maxResults=10&format=metadata" (default "")
//	-baseline D       length of the direct Gmail baseline phase (default 3s)
//	-target T         deployed (default: the buildpack's program, the functions alone) or local (the local runner)
//	-fake runner|tool where the fake Google runs (default tool; runner needs -target local)
//	-gomaxprocs N     GOMAXPROCS of the functions' process (default 0: the Go default)
//	-runner PATH      a binary of -target already built (default: go build it into a temporary folder)
//	-floor            after the load phase, drive the floor target the same way (see below)
//	-keep             keep the temporary folder (runner log, token store) and print its path
//	-json             print the report as JSON
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	// The functions and the floor are built without cgo, as the buildpack
	// builds the functions, unless the environment says otherwise.
	if os.Getenv("CGO_ENABLED") == "" {
		os.Setenv("CGO_ENABLED", "0")
	}
	cfg := defaultConfig()
	flag.IntVar(&cfg.Users, "users", cfg.Users, "users logged in, and served in turn")
	flag.IntVar(&cfg.Concurrency, "concurrency", cfg.Concurrency, "concurrent clients")
	flag.DurationVar(&cfg.Duration, "duration", cfg.Duration, "length of the load phase")
	flag.IntVar(&cfg.Requests, "requests", cfg.Requests, "stop after this many operations, if sooner than -duration (0: no limit)")
	flag.DurationVar(&cfg.Latency, "latency", cfg.Latency, "latency the fake Google adds to every answer")
	flag.IntVar(&cfg.LoginEvery, "login-every", cfg.LoginEvery, "every Nth operation is a whole login instead of a ListMessages (0: none)")
	flag.StringVar(&cfg.Query, "query", cfg.Query, `ListMessages query string, e.g. "maxResults=10&format=metadata"`)
	flag.DurationVar(&cfg.Baseline, "baseline", cfg.Baseline, "length of the direct Gmail baseline phase (0: skip)")
	flag.StringVar(&cfg.Target, "target", cfg.Target, "what serves the functions: deployed (the buildpack's program for Cloud Functions, nothing else in it) or local (the local runner, with its home page and fake Google)")
	flag.StringVar(&cfg.Fake, "fake", cfg.Fake, "where the fake Google runs: runner (inside the local runner; needs -target local) or tool (inside this tool, so the runner's RSS is the functions' alone)")
	flag.IntVar(&cfg.GOMAXPROCS, "gomaxprocs", cfg.GOMAXPROCS, "GOMAXPROCS of the runner (0: the Go default)")
	flag.StringVar(&cfg.Runner, "runner", cfg.Runner, "a binary of -target already built (default: go build it)")
	flag.BoolVar(&cfg.Keep, "keep", cfg.Keep, "keep the temporary folder (runner log, token store)")
	flag.BoolVar(&cfg.Floor, "floor", cfg.Floor, "after the load phase, drive the floor target (a plain reverse proxy to the fake Gmail list, in a process of its own) the same way, and report the CPU ratio")
	asJSON := flag.Bool("json", false, "print the report as JSON")
	flag.Parse()
	if flag.NArg() > 0 {
		log.Fatalf("loadtest: unexpected arguments %q", flag.Args())
	}
	cfg.Log = log.New(os.Stderr, "loadtest: ", 0)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := Run(ctx, cfg)
	if err != nil {
		log.Fatalf("loadtest: %v", err)
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			log.Fatalf("loadtest: %v", err)
		}
	} else {
		rep.WriteText(os.Stdout)
	}
	if rep.Load.Errors > 0 {
		os.Exit(1)
	}
}

// Config is one load run.
type Config struct {
	Users       int
	Concurrency int
	Duration    time.Duration
	Requests    int // 0: no limit
	Latency     time.Duration
	LoginEvery  int // 0: no logins in the load phase
	Query       string
	Baseline    time.Duration // 0: skip
	Target      string        // TargetDeployed or TargetLocal
	Fake        string        // FakeInRunner or FakeInTool
	GOMAXPROCS  int           // of the runner; 0: Go's default
	Runner      string        // prebuilt binary of Target; "" builds one
	Keep        bool
	Floor       bool        // also measure the floor target
	Log         *log.Logger // progress; nil: none
}

// What serves the functions.
const (
	// TargetDeployed is the program the buildpack builds for Cloud
	// Functions (deploy/loadtest/deployed), configured through its
	// environment as a deployment is: the functions and nothing else.
	TargetDeployed = "deployed"
	// TargetLocal is the local runner (functions/cmd/local), which also
	// holds the home page and the fake Google.
	TargetLocal = "local"
)

// Where the fake Google runs.
const (
	FakeInRunner = "runner"
	FakeInTool   = "tool"
)

func defaultConfig() Config {
	return Config{
		Users:       200,
		Concurrency: 50,
		Duration:    10 * time.Second,
		Latency:     20 * time.Millisecond,
		LoginEvery:  20,
		Baseline:    3 * time.Second,
		Target:      TargetDeployed,
		Fake:        FakeInTool,
	}
}

func (c *Config) validate() error {
	switch {
	case c.Users < 1:
		return fmt.Errorf("-users must be at least 1")
	case c.Concurrency < 1:
		return fmt.Errorf("-concurrency must be at least 1")
	case c.Duration <= 0 || c.Duration > time.Hour:
		return fmt.Errorf("-duration must be more than 0 and at most 1h")
	case c.Requests < 0 || c.LoginEvery < 0 || c.Latency < 0 || c.Baseline < 0 || c.GOMAXPROCS < 0:
		return fmt.Errorf("-requests, -login-every, -latency, -baseline and -gomaxprocs cannot be negative")
	case c.Fake != FakeInRunner && c.Fake != FakeInTool:
		return fmt.Errorf("-fake must be %s or %s", FakeInRunner, FakeInTool)
	case c.Target != TargetDeployed && c.Target != TargetLocal:
		return fmt.Errorf("-target must be %s or %s", TargetDeployed, TargetLocal)
	case c.Target == TargetDeployed && c.Fake != FakeInTool:
		return fmt.Errorf("-fake %s needs -target %s: the deployed build has no fake Google in it", c.Fake, TargetLocal)
	}
	if c.Log == nil {
		c.Log = log.New(io.Discard, "", 0)
	}
	return nil
}
