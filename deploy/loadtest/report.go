package main

import (
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
)

// Report is the result of a run. Times are in milliseconds, memory in MiB.
type Report struct {
	Config  ReportConfig `json:"config"`
	Machine Machine      `json:"machine"`
	// StartupMS is the time from the runner's process start to the end of
	// the first request it served (which builds the App).
	StartupMS float64 `json:"startup_ms"`
	// FirstRequestMS is how long that first request took.
	FirstRequestMS float64 `json:"first_request_ms"`
	// Setup is the login of every user before the load.
	Setup Stats `json:"setup_logins"`
	// Baseline is the fake Gmail list called directly, under the same
	// concurrency: what Google alone costs a ListMessages.
	Baseline *Stats `json:"baseline,omitempty"`
	Load     Load   `json:"load"`
	// AddedMS is ListMessages' latency minus the baseline's, by percentile:
	// what the functions add over Google's own latency.
	AddedMS *Percentiles `json:"added_ms,omitempty"`
	Runner  Runner       `json:"runner"`
	// Floor is the floor target under the same load (-floor).
	Floor *Floor `json:"floor,omitempty"`
	// CPURatio is the runner's CPU per operation over the floor's (-floor).
	CPURatio float64 `json:"cpu_ratio_to_floor,omitempty"`
	// RSSRatio is the runner's peak RSS over the floor's (-floor).
	RSSRatio float64  `json:"peak_rss_ratio_to_floor,omitempty"`
	Notes    []string `json:"notes,omitempty"`
}

// ReportConfig is the run's configuration.
type ReportConfig struct {
	Users       int     `json:"users"`
	Concurrency int     `json:"concurrency"`
	DurationS   float64 `json:"duration_s"`
	Requests    int     `json:"requests_limit,omitempty"`
	LatencyMS   float64 `json:"google_latency_ms"`
	LoginEvery  int     `json:"login_every"`
	Query       string  `json:"query"`
	Target      string  `json:"target"`
	Fake        string  `json:"fake_google_in"`
	GOMAXPROCS  int     `json:"runner_gomaxprocs,omitempty"`
}

func reportConfig(c Config) ReportConfig {
	return ReportConfig{Users: c.Users, Concurrency: c.Concurrency, DurationS: c.Duration.Seconds(), Requests: c.Requests,
		LatencyMS: ms(c.Latency), LoginEvery: c.LoginEvery, Query: c.Query, Target: c.Target, Fake: c.Fake, GOMAXPROCS: c.GOMAXPROCS}
}

// Machine is where the run ran.
type Machine struct {
	CPUs      int     `json:"cpus"`
	CPUModel  string  `json:"cpu_model,omitempty"`
	MemoryMiB float64 `json:"memory_mib,omitempty"`
	GoVersion string  `json:"go_version"`
	OS        string  `json:"os"`
}

// Load is the load phase.
type Load struct {
	ElapsedS float64 `json:"elapsed_s"`
	// Operations is every operation: ListMessages and logins.
	Operations int `json:"operations"`
	// Throughput is operations per second.
	Throughput float64 `json:"throughput_rps"`
	Errors     int     `json:"errors"`
	// ByKind is ListMessages and login, each with its own throughput.
	ByKind map[string]Stats `json:"by_kind"`
}

// Percentiles of a latency, in milliseconds.
type Percentiles struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
}

// Stats are one kind of operation's latencies and statuses.
type Stats struct {
	Count int `json:"count"`
	Percentiles
	MeanMS     float64        `json:"mean_ms"`
	MaxMS      float64        `json:"max_ms"`
	Throughput float64        `json:"throughput_rps,omitempty"`
	Errors     int            `json:"errors"`
	Statuses   map[string]int `json:"statuses"`
	FirstError string         `json:"first_error,omitempty"`
}

// Runner is what /proc says of the runner process.
type Runner struct {
	PID               int     `json:"pid"`
	RSSAfterStartMiB  float64 `json:"rss_after_start_mib"`
	RSSAfterLoginsMiB float64 `json:"rss_after_logins_mib"`
	RSSAfterLoadMiB   float64 `json:"rss_after_load_mib"`
	// PeakRSSMiB is VmHWM at the end of the load: the most it was resident.
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	// CPUSeconds is the user and system CPU time it spent in the load
	// phase, and CPUPerOpMS that per operation.
	CPUSeconds float64 `json:"load_cpu_s"`
	CPUPerOpMS float64 `json:"load_cpu_per_op_ms"`
}

// Floor is the floor target's phase: a plain reverse proxy to the fake
// Gmail list, driven as ListMessages was.
type Floor struct {
	Stats
	RSSAfterStartMiB float64 `json:"rss_after_start_mib"`
	RSSAfterLoadMiB  float64 `json:"rss_after_load_mib"`
	PeakRSSMiB       float64 `json:"peak_rss_mib"`
	CPUSeconds       float64 `json:"load_cpu_s"`
	CPUPerOpMS       float64 `json:"load_cpu_per_op_ms"`
}

// fillFloorRatio sets the runner's ratios to the floor.
func (rep *Report) fillFloorRatio() {
	if f := rep.Floor; f != nil && f.CPUPerOpMS > 0 && f.PeakRSSMiB > 0 {
		rep.CPURatio = round(rep.Runner.CPUPerOpMS/f.CPUPerOpMS, 2)
		rep.RSSRatio = round(rep.Runner.PeakRSSMiB/f.PeakRSSMiB, 2)
	}
}

// stats summarises kind's operations.
func (r *driveResult) stats(kind string) Stats {
	s := r.kinds[kind]
	if s == nil {
		return Stats{Statuses: map[string]int{}}
	}
	d := slices.Clone(s.durs)
	slices.Sort(d)
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	st := Stats{Count: len(d), Errors: s.errors, Statuses: s.statuses, FirstError: s.firstErr}
	if len(d) > 0 {
		st.Percentiles = Percentiles{P50: ms(pct(d, 50)), P90: ms(pct(d, 90)), P99: ms(pct(d, 99))}
		st.MeanMS = ms(sum / time.Duration(len(d)))
		st.MaxMS = ms(d[len(d)-1])
	}
	return st
}

// pct is the nearest-rank percentile p of sorted d.
func pct(d []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p/100*float64(len(d)))) - 1
	return d[max(0, min(i, len(d)-1))]
}

// fillLoad records the load phase and the runner's use of memory and CPU.
func (rep *Report) fillLoad(res *driveResult, before, after procStatus) {
	secs := res.elapsed.Seconds()
	rep.Load = Load{ElapsedS: round(secs, 3), Operations: res.ops, Throughput: round(float64(res.ops)/secs, 1), ByKind: map[string]Stats{}}
	for kind := range res.kinds {
		s := res.stats(kind)
		s.Throughput = round(float64(s.Count)/secs, 1)
		rep.Load.ByKind[kind] = s
		rep.Load.Errors += s.Errors
	}
	if l, ok := rep.Load.ByKind[opList]; ok && rep.Baseline != nil && l.Count > 0 {
		b := rep.Baseline
		rep.AddedMS = &Percentiles{P50: round(l.P50-b.P50, 3), P90: round(l.P90-b.P90, 3), P99: round(l.P99-b.P99, 3)}
	}
	rep.Runner.RSSAfterLoadMiB = mib(after.RSS)
	rep.Runner.PeakRSSMiB = mib(after.HWM)
	rep.Runner.CPUSeconds = round((after.CPU - before.CPU).Seconds(), 2)
	if res.ops > 0 {
		rep.Runner.CPUPerOpMS = round(1000*rep.Runner.CPUSeconds/float64(res.ops), 3)
	}
}

// WriteText prints the report for people.
func (rep *Report) WriteText(w io.Writer) {
	c, m := rep.Config, rep.Machine
	fmt.Fprintf(w, "machine: %d CPUs (%s), %.0f MiB, %s %s\n", m.CPUs, m.CPUModel, m.MemoryMiB, m.GoVersion, m.OS)
	fmt.Fprintf(w, "config:  target %s, %d users, %d clients, %gs, Google latency %gms, a login every %d ops, query %q, fake Google in the %s",
		c.Target, c.Users, c.Concurrency, c.DurationS, c.LatencyMS, c.LoginEvery, c.Query, c.Fake)
	if c.GOMAXPROCS > 0 {
		fmt.Fprintf(w, ", runner GOMAXPROCS=%d", c.GOMAXPROCS)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "startup: %.1f ms from process start to the first served request (which took %.1f ms)\n", rep.StartupMS, rep.FirstRequestMS)
	fmt.Fprintf(w, "setup:   %d logins, p50 %.1f ms, p99 %.1f ms\n\n", rep.Setup.Count, rep.Setup.P50, rep.Setup.P99)

	fmt.Fprintf(w, "%-22s %8s %9s %8s %8s %8s %8s %8s  %s\n", "operation", "count", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors", "statuses")
	row := func(name string, s Stats) {
		fmt.Fprintf(w, "%-22s %8d %9.1f %8.2f %8.2f %8.2f %8.2f %8d  %s\n", name, s.Count, s.Throughput, s.P50, s.P90, s.P99, s.MaxMS, s.Errors, statuses(s.Statuses))
	}
	if rep.Baseline != nil {
		row(opBaseline, *rep.Baseline)
	}
	for _, kind := range slices.Sorted(maps.Keys(rep.Load.ByKind)) {
		row(kind, rep.Load.ByKind[kind])
	}
	fmt.Fprintf(w, "%-22s %8d %9.1f\n\n", "all operations", rep.Load.Operations, rep.Load.Throughput)
	if a := rep.AddedMS; a != nil {
		fmt.Fprintf(w, "added by the functions over Google alone: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms\n", a.P50, a.P90, a.P99)
	}
	r := rep.Runner
	fmt.Fprintf(w, "runner:  RSS %.1f MiB after start, %.1f after logins, %.1f after load; peak (VmHWM) %.1f MiB\n",
		r.RSSAfterStartMiB, r.RSSAfterLoginsMiB, r.RSSAfterLoadMiB, r.PeakRSSMiB)
	fmt.Fprintf(w, "         CPU %.2f s in the load phase, %.3f ms per operation\n", r.CPUSeconds, r.CPUPerOpMS)
	if f := rep.Floor; f != nil {
		fmt.Fprintf(w, "\nfloor (a plain reverse proxy, same clients, %d requests at %.1f req/s, p50 %.2f ms, p99 %.2f ms, %d errors):\n", f.Count, f.Throughput, f.P50, f.P99, f.Errors)
		fmt.Fprintf(w, "         RSS %.1f MiB after start, %.1f after load; peak (VmHWM) %.1f MiB\n", f.RSSAfterStartMiB, f.RSSAfterLoadMiB, f.PeakRSSMiB)
		fmt.Fprintf(w, "         CPU %.2f s in its load phase, %.3f ms per request\n", f.CPUSeconds, f.CPUPerOpMS)
		fmt.Fprintf(w, "functions / floor: CPU per request %.2f×, peak RSS %.2f×\n", rep.CPURatio, rep.RSSRatio)
	}
	for _, kind := range slices.Sorted(maps.Keys(rep.Load.ByKind)) {
		if s := rep.Load.ByKind[kind]; s.FirstError != "" {
			fmt.Fprintf(w, "first %s error: %s\n", kind, s.FirstError)
		}
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

func statuses(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s:%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

func ms(d time.Duration) float64 { return round(float64(d)/float64(time.Millisecond), 3) }

func mib(b int64) float64 { return round(float64(b)/(1<<20), 1) }

func round(x float64, places int) float64 {
	p := math.Pow(10, float64(places))
	return math.Round(x*p) / p
}
