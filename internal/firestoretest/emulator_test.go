package firestoretest_test

import (
	"context"
	"net"
	"os"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/firestoretest"
)

func TestMain(m *testing.M) { firestoretest.Main(m) }

func TestNewClientSetsEmulatorHost(t *testing.T) {
	firestoretest.NewClient(context.Background(), t)
	if os.Getenv(firestoretest.EnvHost) == "" {
		t.Fatalf("%s is not set after the emulator started", firestoretest.EnvHost)
	}
}

func TestRPCCounterCountsByMethod(t *testing.T) {
	ctx := context.Background()
	client, rpcs := firestoretest.NewClient(ctx, t)
	doc := client.Collection("c").Doc("d")
	if _, err := doc.Set(ctx, map[string]any{"n": 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := doc.Get(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := rpcs.Calls(), []string{"Commit", "BatchGetDocuments"}; !slices.Equal(got, want) {
		t.Errorf("RPCs = %v, want %v", got, want)
	}
	if n := rpcs.Count("Commit"); n != 1 {
		t.Errorf("Count(Commit) = %d, want 1", n)
	}
	rpcs.Reset()
	if n := rpcs.Total(); n != 0 {
		t.Errorf("Total after Reset = %d, want 0", n)
	}
}

func TestClientsAreIsolated(t *testing.T) {
	ctx := context.Background()
	a, _ := firestoretest.NewClient(ctx, t)
	b, _ := firestoretest.NewClient(ctx, t)
	if _, err := a.Collection("c").Doc("d").Set(ctx, map[string]any{"n": 1}); err != nil {
		t.Fatal(err)
	}
	snap, err := b.Collection("c").Doc("d").Get(ctx)
	if snap == nil || snap.Exists() {
		t.Fatalf("a document written by one test's client is visible to another's (err %v)", err)
	}
}

func TestProjectClientsShareData(t *testing.T) {
	ctx := context.Background()
	project := firestoretest.ProjectID(t)
	a, _ := firestoretest.NewProjectClient(ctx, t, project)
	b, _ := firestoretest.NewProjectClient(ctx, t, project)
	if _, err := a.Collection("c").Doc("d").Set(ctx, map[string]any{"n": 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Collection("c").Doc("d").Get(ctx); err != nil {
		t.Fatalf("a document written by one client of a project is not visible to another: %v", err)
	}
}

func TestStopRestart_SameAddressDocumentsLost(t *testing.T) {
	ctx := context.Background()
	client, _ := firestoretest.NewClient(ctx, t)
	doc := client.Collection("c").Doc("d")
	if _, err := doc.Set(ctx, map[string]any{"n": 1}); err != nil {
		t.Fatal(err)
	}
	host, _ := firestoretest.Host()

	firestoretest.Stop(t)
	if c, err := net.DialTimeout("tcp", host, time.Second); err == nil {
		c.Close()
		t.Fatal("the emulator's port still accepts connections after Stop")
	}
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if _, err := doc.Get(short); err == nil {
		t.Fatal("a read succeeded while the emulator was stopped")
	}

	firestoretest.Restart(t)
	if h, _ := firestoretest.Host(); h != host {
		t.Fatalf("restarted on %s, want %s", h, host)
	}
	// The same client connects again; the document went with the emulator.
	ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := doc.Get(ctx); status.Code(err) != codes.NotFound {
		t.Fatalf("read after the restart: %v, want NotFound", err)
	}
}

func TestProxy_CutResetsAndRefusesThenRestoreAnswersOnSameAddress(t *testing.T) {
	ctx := context.Background()
	p := firestoretest.NewProxy(t)
	client, _ := firestoretest.NewProjectClientAt(ctx, t, firestoretest.ProjectID(t), p.Addr())
	doc := client.Collection("c").Doc("d")
	if _, err := doc.Set(ctx, map[string]any{"n": 1}); err != nil {
		t.Fatal(err)
	}

	p.Cut()
	if c, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		c.Close()
		t.Fatal("the proxy's address still accepts connections after Cut")
	}
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if _, err := doc.Get(short); err == nil {
		t.Fatal("a read succeeded through a cut proxy")
	}
	if c, err := net.DialTimeout("tcp", firestoretest.Require(t), time.Second); err != nil {
		t.Fatalf("the emulator itself stopped answering: %v", err)
	} else {
		c.Close()
	}

	p.Restore(t)
	// The same client connects again, on the same address, and the
	// document is still there.
	ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	begin := time.Now()
	snap, err := doc.Get(ctx)
	if err != nil {
		t.Fatalf("read after Restore: %v", err)
	}
	if n, _ := snap.DataAt("n"); n != int64(1) {
		t.Fatalf("read after Restore: n = %v, want 1", n)
	}
	t.Logf("first read after Restore took %v", time.Since(begin).Round(time.Millisecond))
}
