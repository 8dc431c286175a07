package main

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"encoding/json"
	"log"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/runnerproc"
)

// testLog writes the tool's progress to the test log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// TestRun_Smoke runs the whole tool for about two seconds per target and
// fake Google (the deployed build, the local runner with the fake inside
// it or in the tool) and checks that the report is sane.
func TestRun_Smoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the local stack for several seconds")
	}
	ctx := context.Background()
	dir := t.TempDir()
	bins := map[string]string{}
	for _, target := range []string{TargetDeployed, TargetLocal} {
		bin, err := build(ctx, target, dir)
		if err != nil {
			t.Fatal(err)
		}
		bins[target] = bin
	}
	// Each target is the program it names: the buildpack's main, or the
	// local runner.
	for target, pkg := range map[string]string{TargetDeployed: deployedPackage, TargetLocal: runnerproc.Package} {
		if info, err := buildinfo.ReadFile(bins[target]); err != nil || info.Path != pkg {
			t.Fatalf("-target %s built %+v (%v), want the program %s", target, info, err, pkg)
		}
	}
	const latency = 5 * time.Millisecond
	for _, tc := range []struct{ target, fake string }{
		{TargetDeployed, FakeInTool},
		{TargetLocal, FakeInRunner},
		{TargetLocal, FakeInTool},
	} {
		t.Run(tc.target+"/"+tc.fake, func(t *testing.T) {
			// A login every 4 operations, so that a run of a few operations
			// (a saturated machine has served as few as 10 in the 2 s) still
			// has one.
			cfg := Config{Users: 6, Concurrency: 8, Duration: 2 * time.Second, Latency: latency, LoginEvery: 4,
				Baseline: 500 * time.Millisecond, Target: tc.target, Fake: tc.fake, Runner: bins[tc.target], Log: log.New(testLog{t}, "", 0)}
			start := time.Now()
			rep, err := Run(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if took := time.Since(start); took > cfg.Duration+cfg.Baseline+20*time.Second {
				t.Errorf("the run took %v", took)
			}
			var text bytes.Buffer
			rep.WriteText(&text)
			t.Logf("report:\n%s", text.String())

			list, login := rep.Load.ByKind[opList], rep.Load.ByKind[opLogin]
			switch {
			case rep.Load.Errors != 0 || list.Errors != 0 || login.Errors != 0:
				t.Errorf("errors: %d (ListMessages %v, login %v)", rep.Load.Errors, list.Statuses, login.Statuses)
			case rep.Load.Throughput <= 0 || list.Throughput <= 0 || list.Count < 3:
				t.Errorf("throughput %.1f req/s, ListMessages %d at %.1f req/s", rep.Load.Throughput, list.Count, list.Throughput)
			case login.Count == 0 || login.Count > list.Count/2:
				t.Errorf("%d logins for %d lists with a login every 4 operations", login.Count, list.Count)
			case list.Statuses["200"] != list.Count:
				t.Errorf("ListMessages statuses %v", list.Statuses)
			}
			if rep.Load.ElapsedS < cfg.Duration.Seconds() || rep.Load.ElapsedS > cfg.Duration.Seconds()+5 {
				t.Errorf("the load phase lasted %.2fs, want about %v", rep.Load.ElapsedS, cfg.Duration)
			}
			for name, s := range map[string]Stats{"ListMessages": list, "login": login, "baseline": *rep.Baseline, "setup": rep.Setup} {
				if !(0 < s.P50 && s.P50 <= s.P90 && s.P90 <= s.P99 && s.P99 <= s.MaxMS) {
					t.Errorf("%s: percentiles out of order: %+v", name, s)
				}
			}
			// Every ListMessages waits for at least one Google call.
			if lat := float64(latency) / float64(time.Millisecond); list.P50 < lat || rep.Baseline.P50 < lat {
				t.Errorf("p50 of ListMessages %.2f ms and of Gmail alone %.2f ms, below the injected %v", list.P50, rep.Baseline.P50, latency)
			}
			if rep.AddedMS == nil || rep.AddedMS.P50 != round(list.P50-rep.Baseline.P50, 3) {
				t.Errorf("added latency %+v for p50 %.3f and baseline %.3f", rep.AddedMS, list.P50, rep.Baseline.P50)
			}
			if rep.Setup.Count != cfg.Users || rep.Setup.Errors != 0 {
				t.Errorf("setup: %+v", rep.Setup)
			}
			if rep.StartupMS <= 0 || rep.StartupMS > 30_000 || rep.FirstRequestMS <= 0 || rep.FirstRequestMS > rep.StartupMS {
				t.Errorf("startup %.1f ms, first request %.1f ms", rep.StartupMS, rep.FirstRequestMS)
			}
			r := rep.Runner
			if r.PID == 0 || r.PeakRSSMiB < 5 || r.PeakRSSMiB > 1024 || r.PeakRSSMiB < r.RSSAfterStartMiB || r.CPUSeconds <= 0 || r.CPUPerOpMS <= 0 {
				t.Errorf("runner %+v", r)
			}
			if rep.Machine.CPUs < 1 || rep.Machine.GoVersion == "" {
				t.Errorf("machine %+v", rep.Machine)
			}
			if rep.Config.Target != tc.target || !strings.Contains(text.String(), "target "+tc.target) {
				t.Errorf("the report names target %q, want %q", rep.Config.Target, tc.target)
			}
			b, err := json.Marshal(rep)
			if err != nil || !bytes.Contains(b, []byte(`"peak_rss_mib"`)) || !bytes.Contains(b, []byte(`"throughput_rps"`)) {
				t.Errorf("JSON report %s: %v", b, err)
			}
		})
	}

	t.Run("Floor", func(t *testing.T) {
		cfg := Config{Users: 4, Concurrency: 4, Duration: time.Minute, Requests: 60, Latency: time.Millisecond,
			Target: TargetDeployed, Fake: FakeInTool, Runner: bins[TargetDeployed], Floor: true, Log: log.New(testLog{t}, "", 0)}
		rep, err := Run(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		var text bytes.Buffer
		rep.WriteText(&text)
		t.Logf("report:\n%s", text.String())
		f := rep.Floor
		switch {
		case f == nil:
			t.Fatal("no floor in the report")
		case f.Count != 60 || f.Errors != 0 || f.Statuses["200"] != 60:
			t.Errorf("floor: %d requests, %d errors, statuses %v; want 60 answered 200", f.Count, f.Errors, f.Statuses)
		case f.PeakRSSMiB < 1 || f.PeakRSSMiB < f.RSSAfterStartMiB || f.CPUPerOpMS <= 0:
			t.Errorf("floor %+v", f)
		case rep.CPURatio != round(rep.Runner.CPUPerOpMS/f.CPUPerOpMS, 2) || rep.RSSRatio != round(rep.Runner.PeakRSSMiB/f.PeakRSSMiB, 2):
			t.Errorf("ratios %.2f, %.2f for runner %+v and floor %+v", rep.CPURatio, rep.RSSRatio, rep.Runner, f)
		case !strings.Contains(text.String(), "functions / floor: CPU per request"):
			t.Errorf("the text report has no ratio")
		}
	})

	t.Run("StopsAfterRequests", func(t *testing.T) {
		cfg := Config{Users: 2, Concurrency: 4, Duration: time.Minute, Requests: 40, Latency: time.Millisecond,
			Target: TargetLocal, Fake: FakeInTool, Runner: bins[TargetLocal], Log: log.New(testLog{t}, "", 0)}
		start := time.Now()
		rep, err := Run(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Load.Operations != 40 || rep.Load.Errors != 0 || time.Since(start) > 20*time.Second || rep.Baseline != nil {
			t.Fatalf("%d operations, %d errors, in %v; baseline %+v", rep.Load.Operations, rep.Load.Errors, time.Since(start), rep.Baseline)
		}
	})
}

func TestLoopbackTransport_RefusesOtherHosts(t *testing.T) {
	c := &http.Client{Transport: loopbackTransport(1), Timeout: 5 * time.Second}
	for _, u := range []string{"http://example.com/", "http://10.0.0.1:8080/", "http://[2001:db8::1]/"} {
		_, err := c.Get(u)
		if err == nil || !strings.Contains(err.Error(), "loopback only") {
			t.Errorf("GET %s: %v, want a refusal", u, err)
		}
	}
}

func TestPercentile(t *testing.T) {
	d := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for p, want := range map[float64]time.Duration{50: 5, 90: 9, 99: 10, 100: 10, 0: 1} {
		if got := pct(d, p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
	if got := pct(d[:1], 99); got != 1 {
		t.Errorf("p99 of one = %v", got)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{
		{Users: 0, Concurrency: 1, Duration: time.Second, Target: TargetLocal, Fake: FakeInRunner},
		{Users: 1, Concurrency: 0, Duration: time.Second, Target: TargetLocal, Fake: FakeInRunner},
		{Users: 1, Concurrency: 1, Duration: 0, Target: TargetLocal, Fake: FakeInRunner},
		{Users: 1, Concurrency: 1, Duration: 2 * time.Hour, Target: TargetLocal, Fake: FakeInRunner},
		{Users: 1, Concurrency: 1, Duration: time.Second, Latency: -1, Target: TargetLocal, Fake: FakeInRunner},
		{Users: 1, Concurrency: 1, Duration: time.Second, Target: TargetLocal, Fake: "elsewhere"},
		{Users: 1, Concurrency: 1, Duration: time.Second, Target: "somewhere", Fake: FakeInTool},
		// The deployed build has no fake Google to run.
		{Users: 1, Concurrency: 1, Duration: time.Second, Target: TargetDeployed, Fake: FakeInRunner},
	} {
		if err := c.validate(); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
	for _, c := range []Config{
		{Users: 1, Concurrency: 1, Duration: time.Second, Target: TargetLocal, Fake: FakeInRunner},
		{Users: 1, Concurrency: 1, Duration: time.Second, Target: TargetLocal, Fake: FakeInTool},
		{Users: 1, Concurrency: 1, Duration: time.Second, Target: TargetDeployed, Fake: FakeInTool},
	} {
		if err := c.validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
	d := defaultConfig()
	if err := d.validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}
