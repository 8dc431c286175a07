package runnerproc

import (
	"context"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

func TestStartWaitReadyStop(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the local runner")
	}
	bin, err := Build(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	port, _ := FreePort()
	fakePort, _ := FreePort()
	cmd := exec.Command(bin, "-port", strconv.Itoa(port), "-fake-google-port", strconv.Itoa(fakePort), "-data", t.TempDir())
	cmd.Env = MinimalEnv()
	p, err := Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(5 * time.Second)
	ready, took, err := p.WaitReady(t.Context(), "http://localhost:"+strconv.Itoa(port), "http://localhost:"+strconv.Itoa(fakePort), time.Minute) // a start is CPU-bound: slow on a saturated machine
	if err != nil || ready.Before(p.Started) || took <= 0 {
		t.Fatalf("ready %v took %v: %v", ready, took, err)
	}
	if forced := p.Stop(5 * time.Second); forced {
		t.Error("the runner ignored SIGTERM")
	}
	select {
	case <-p.Exited():
	default:
		t.Fatal("Stop returned before the runner exited")
	}
}

func TestWaitReady_ExitedProcessIsAnError(t *testing.T) {
	p, err := Start(exec.Command("true"))
	if err != nil {
		t.Fatal(err)
	}
	<-p.Exited()
	if _, _, err := p.WaitReady(context.Background(), "http://127.0.0.1:1", "http://127.0.0.1:2", time.Second); err == nil {
		t.Fatal("WaitReady succeeded for a process that exited")
	}
}
