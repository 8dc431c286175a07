package localstore_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/keyring"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/tokenstore"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/tokenstore/localstore"
)

// crashChildEnv, when set to a store path, turns the test binary into the
// child of TestSIGKILL_FileStaysValidAndKeepsAcknowledgedWrites.
const crashChildEnv = "LOCALSTORE_CRASH_CHILD"

func TestMain(m *testing.M) {
	if path := os.Getenv(crashChildEnv); path != "" {
		crashChild(path)
		os.Exit(2) // not reached: the child runs until it is killed
	}
	os.Exit(m.Run())
}

// crashChild opens the store at path and logs users in from four
// goroutines at once, each user twice (the second login brings a newer
// refresh token), writing "SUB SEQ" to standard output once each Update
// has returned. It runs until it is killed.
func crashChild(path string) {
	s, err := localstore.Open(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	round := os.Getenv(crashChildEnv + "_ROUND")
	var mu sync.Mutex
	for w := range 4 {
		go func() {
			for i := 0; ; i++ {
				sub, seq := fmt.Sprintf("r%s-w%d-u%d", round, w, i/2), i%2
				g := crashGrant(sub, seq)
				if _, err := s.Update(context.Background(), sub, func(cur *tokenstore.Record) (*tokenstore.Record, error) {
					return g.Apply(cur, g.IssuedAt), nil
				}); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				mu.Lock()
				fmt.Fprintf(os.Stdout, "%s %d\n", sub, seq)
				mu.Unlock()
			}
		}()
	}
	select {}
}

// crashGrant is login seq of sub: its refresh token names both.
func crashGrant(sub string, seq int) tokenstore.Grant {
	issued := time.Date(2026, 1, 1, 0, 0, seq, 0, time.UTC)
	return tokenstore.Grant{
		Sub: sub, Email: sub + "@example.com", Scopes: []string{"openid", "email"},
		RefreshToken:      keyring.Sealed{KeyID: "k1", Ciphertext: fmt.Appendf(nil, "%s/%d", sub, seq)},
		AccessToken:       keyring.Sealed{KeyID: "k1", Ciphertext: []byte("access")},
		AccessTokenExpiry: issued.Add(time.Hour), IssuedAt: issued,
	}
}

// temps lists the temporary files beside the store file at path.
func temps(t *testing.T, path string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestSIGKILL_FileStaysValidAndKeepsAcknowledgedWrites runs a real child
// process doing concurrent logins on a store file and kills it with SIGKILL
// mid-way, four times over on the same file: every time the file is valid
// JSON of the store's format, every login the child acknowledged before it
// died is in it, and Open removes what the killed writes left behind.
func TestSIGKILL_FileStaysValidAndKeepsAcknowledgedWrites(t *testing.T) {
	const rounds = 4
	path := filepath.Join(t.TempDir(), "tokens.json")
	acked := map[string]int{} // sub → the newest login acknowledged
	leftovers := 0
	for round := range rounds {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+path, crashChildEnv+"_ROUND="+strconv.Itoa(round))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewScanner(out)
		ack := func() bool {
			if !lines.Scan() {
				return false
			}
			sub, seq, ok := strings.Cut(lines.Text(), " ")
			n, err := strconv.Atoi(seq)
			if !ok || err != nil {
				t.Fatalf("child wrote %q", lines.Text())
			}
			acked[sub] = max(acked[sub], n)
			return true
		}
		kill := 4 + rand.IntN(16) // acknowledged logins before the kill
		for range kill {
			if !ack() {
				cmd.Wait()
				t.Fatalf("round %d: the child stopped by itself: %s", round, stderr.String())
			}
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		for ack() { // acknowledged before the kill, still in the pipe
		}
		if err := cmd.Wait(); !isKilled(err) {
			t.Fatalf("round %d: the child ended with %v, not by SIGKILL: %s", round, err, stderr.String())
		}

		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var f struct {
			Format  int                        `json:"format"`
			Records map[string]json.RawMessage `json:"records"`
		}
		if err := json.Unmarshal(raw, &f); err != nil || f.Format != 1 {
			t.Fatalf("round %d: the store file is not valid (format %d, %v):\n%.300s", round, f.Format, err, raw)
		}
		leftovers += len(temps(t, path))
		s, err := localstore.Open(path)
		if err != nil {
			t.Fatalf("round %d: Open after the kill: %v", round, err)
		}
		if left := temps(t, path); len(left) > 0 {
			t.Errorf("round %d: Open left %v", round, left)
		}
		for sub, seq := range acked {
			r, err := s.Get(t.Context(), sub)
			if err != nil {
				t.Errorf("round %d: login %d of %s was acknowledged, yet: %v", round, seq, sub, err)
				continue
			}
			var stored int
			if _, n, _ := strings.Cut(string(r.RefreshToken.Ciphertext), "/"); n != "" {
				stored, _ = strconv.Atoi(n)
			}
			if stored < seq {
				t.Errorf("round %d: %s holds login %d, but login %d was acknowledged", round, sub, stored, seq)
			}
		}
	}
	t.Logf("%d users logged in over %d kills; %d temporary files the kills left behind were removed by Open", len(acked), rounds, leftovers)
}

func isKilled(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

func TestOpen_RemovesLeftoverTemporaryFilesOnly(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tokens.json")
	s := open(t, path)
	g := crashGrant("alice", 0)
	if _, err := s.Update(t.Context(), "alice", func(cur *tokenstore.Record) (*tokenstore.Record, error) {
		return g.Apply(cur, g.IssuedAt), nil
	}); err != nil {
		t.Fatal(err)
	}
	leftover := filepath.Join(dir, ".tokens.json.tmp-2718281828")
	kept := []string{filepath.Join(dir, ".other.json.tmp-1"), filepath.Join(dir, "tokens.json.bak"), filepath.Join(dir, "notes.txt")}
	for _, f := range append([]string{leftover}, kept...) {
		if err := os.WriteFile(f, []byte(`{"format":1,"reco`), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	s = open(t, path)
	if _, err := s.Get(t.Context(), "alice"); err != nil {
		t.Errorf("the record did not survive: %v", err)
	}
	if _, err := os.Stat(leftover); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the leftover temporary file is still there (%v)", err)
	}
	for _, f := range kept {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("%s, not the store's, was removed: %v", filepath.Base(f), err)
		}
	}
}
