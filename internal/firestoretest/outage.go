package firestoretest

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"
)

// stopped is true between Stop and Restart; mu guards it.
var stopped bool

// Stop takes the emulator away as a crash would: its whole process group is
// killed with SIGKILL, so that open connections break and the documents it
// held are lost. Its address stays the emulator's: Restart starts it there
// again. If t ends with the emulator still stopped, it is restarted then, so
// that later tests find it.
//
// Stop needs an emulator this test binary started. With
// FIRESTORE_EMULATOR_HOST set from outside, or no emulator at all, it fails
// t under CI=true and skips it otherwise.
func Stop(t testing.TB) {
	t.Helper()
	Require(t)
	mu.Lock()
	defer mu.Unlock()
	if emu == nil {
		unavailable(t, errors.New("the emulator was not started by this test binary ("+EnvHost+" was set), so it cannot be stopped"))
		return
	}
	if stopped {
		t.Fatal("firestoretest: Stop: the emulator is already stopped")
	}
	emu.stop(syscall.SIGKILL)
	stopped = true
	t.Cleanup(func() {
		mu.Lock()
		again := stopped
		mu.Unlock()
		if again {
			Restart(t)
		}
	})
}

// Restart starts the emulator stopped by Stop again, on the same address,
// and returns once it answers. It fails t if it cannot.
func Restart(t testing.TB) {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if !stopped {
		t.Fatal("firestoretest: Restart: the emulator is not stopped")
	}
	begin := time.Now()
	e, err := start(host, StartTimeout)
	if err != nil {
		// Later tests cannot use the emulator either.
		startErr = fmt.Errorf("restart after Stop: %w", err)
		t.Fatalf("firestoretest: %v", startErr)
	}
	emu, stopped = e, false
	t.Logf("firestoretest: emulator restarted on %s after %v", host, time.Since(begin).Round(time.Millisecond))
}

// unavailable fails t under CI=true and skips it, loudly, otherwise.
func unavailable(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("firestoretest: required under CI=true: %v", err)
	}
	t.Skipf("SKIPPED: %v", err)
}
