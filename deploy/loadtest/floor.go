package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/runnerproc"
)

// floorPackage is the import path of the floor target (deploy/loadtest/floor).
const floorPackage = "github.com/gmail-oauth-functions/gmail-oauth-functions/deploy/loadtest/floor"

// floorProc is the running floor target: a plain reverse proxy to the fake
// Gmail list with a fixed token, in a process of its own.
type floorProc struct {
	URL  string // http://localhost:PORT/ListMessages
	proc *runnerproc.Process
	log  *os.File
}

// startFloor builds the floor target into dir, starts it with an access
// token of its own at the fake Google, and waits until it has served a
// list.
func startFloor(ctx context.Context, cfg Config, st *stack, tr *http.Transport) (*floorProc, error) {
	bin := filepath.Join(st.Dir, "floor")
	if err := runnerproc.BuildProgram(ctx, floorPackage, bin); err != nil { // as the runner is built
		return nil, err
	}
	token, err := directToken(ctx, st, tr, "floor@loadtest.example")
	if err != nil {
		return nil, err
	}
	port, err := runnerproc.FreePort()
	if err != nil {
		return nil, err
	}
	f := &floorProc{URL: "http://localhost:" + strconv.Itoa(port) + "/ListMessages"}
	if f.log, err = os.Create(filepath.Join(st.Dir, "floor.log")); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-port", strconv.Itoa(port))
	cmd.Env = append(runnerproc.MinimalEnv(), "FLOOR_GMAIL_LIST="+st.FakeURL+"/gmail/v1/users/me/messages", "FLOOR_TOKEN="+token)
	if cfg.GOMAXPROCS > 0 {
		cmd.Env = append(cmd.Env, "GOMAXPROCS="+strconv.Itoa(cfg.GOMAXPROCS))
	}
	cmd.Stdout, cmd.Stderr = f.log, f.log
	if f.proc, err = runnerproc.Start(cmd); err != nil {
		f.stop()
		return nil, err
	}
	c := &http.Client{Transport: tr, Timeout: requestTimeout}
	u := &simUser{email: "floor@loadtest.example", c: c}
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, err := u.list(ctx, f.URL)
		if err == nil && status == http.StatusOK {
			return f, nil
		}
		select {
		case <-f.proc.Exited():
			f.stop()
			return nil, fmt.Errorf("the floor exited (%v): %s", f.proc.Err(), f.output(st))
		case <-ctx.Done():
			f.stop()
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			f.stop()
			return nil, fmt.Errorf("the floor did not serve a list within 30 s (last: status %d, %v)", status, err)
		}
	}
}

func (f *floorProc) output(st *stack) string {
	b, _ := os.ReadFile(filepath.Join(st.Dir, "floor.log"))
	return string(b)
}

func (f *floorProc) stop() {
	if f.proc != nil {
		f.proc.Stop(5 * time.Second)
	}
	if f.log != nil {
		f.log.Close()
		f.log = nil
	}
}

// runFloor drives the floor as the load phase drove ListMessages: the same
// clients, for the same time, and records its CPU and memory.
func runFloor(ctx context.Context, cfg Config, f *floorProc, tr *http.Transport) (*Floor, error) {
	pid := f.proc.Cmd.Process.Pid
	before, err := readProc(pid)
	if err != nil {
		return nil, err
	}
	c := &http.Client{Transport: tr, Timeout: requestTimeout}
	u := &simUser{email: "floor@loadtest.example", c: c}
	res := drive(ctx, cfg.Concurrency, cfg.Duration, cfg.Requests, func(ctx context.Context, _ int) (string, int, error) {
		status, err := u.list(ctx, f.URL)
		return opFloor, status, err
	})
	after, err := readProc(pid)
	if err != nil {
		return nil, err
	}
	s := res.stats(opFloor)
	s.Throughput = round(float64(s.Count)/res.elapsed.Seconds(), 1)
	fl := &Floor{Stats: s, RSSAfterStartMiB: mib(before.RSS), RSSAfterLoadMiB: mib(after.RSS), PeakRSSMiB: mib(after.HWM),
		CPUSeconds: round((after.CPU - before.CPU).Seconds(), 2)}
	if s.Count > 0 {
		fl.CPUPerOpMS = round(1000*fl.CPUSeconds/float64(s.Count), 3)
	}
	return fl, nil
}
