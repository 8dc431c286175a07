package firestorestore_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/firestoretest"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/tokenstore"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/tokenstore/firestorestore"
)

// unreachable returns a store whose Firestore is at addr, as the functions
// connect to it.
func unreachable(t *testing.T, addr string, timeout time.Duration) *firestorestore.Store {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///"+addr, firestorestore.DialOption(),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	client, err := firestore.NewClient(context.Background(), "down-project", option.WithGRPCConn(conn))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); conn.Close() })
	s := firestorestore.New(client, "")
	s.Timeout = timeout
	return s
}

// refusing returns an address where nothing listens.
func refusing(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// silent returns an address that accepts connections and never answers.
func silent(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	return l.Addr().String()
}

// TestStore_FirestoreUnreachable_EveryCallEndsWithinTimeout: whether
// Firestore refuses connections (the client library then retries until the
// context ends) or accepts them and never answers, every method returns an
// error once Timeout has passed, even under a context with no deadline.
func TestStore_FirestoreUnreachable_EveryCallEndsWithinTimeout(t *testing.T) {
	const timeout = 400 * time.Millisecond
	const margin = 600 * time.Millisecond // scheduling on a busy machine
	ops := []struct {
		name string
		call func(*firestorestore.Store) error
	}{
		{"Get", func(s *firestorestore.Store) error { _, err := s.Get(context.Background(), "alice"); return err }},
		{"FindByEmail", func(s *firestorestore.Store) error {
			_, err := s.FindByEmail(context.Background(), "alice@example.com")
			return err
		}},
		{"Update", func(s *firestorestore.Store) error {
			_, err := s.Update(context.Background(), "alice", func(cur *tokenstore.Record) (*tokenstore.Record, error) {
				return testGrant("alice", "rt1", t0).Apply(cur, t0), nil
			})
			return err
		}},
		{"SaveAccess", func(s *firestorestore.Store) error {
			return s.SaveAccess(context.Background(), "alice", t0, tokenstore.AccessUpdate{RefreshedAt: t0})
		}},
		{"Delete", func(s *firestorestore.Store) error { return s.Delete(context.Background(), "alice") }},
		{"SetLease", func(s *firestorestore.Store) error {
			_, err := s.SetLease(context.Background(), "alice", t0, tokenstore.Lease{Holder: "a", Until: t0})
			return err
		}},
		{"Watch, for its first snapshot", func(s *firestorestore.Store) error {
			return s.Watch(context.Background(), "alice", func(*tokenstore.Record) bool { return false })
		}},
	}
	for _, down := range []struct {
		name string
		addr func(*testing.T) string
	}{{"refusing", refusing}, {"silent", silent}} {
		t.Run(down.name, func(t *testing.T) {
			s := unreachable(t, down.addr(t), timeout)
			var wg sync.WaitGroup
			for _, op := range ops {
				wg.Go(func() {
					begin := time.Now()
					err := op.call(s)
					took := time.Since(begin)
					switch {
					case err == nil || errors.Is(err, tokenstore.ErrNotFound) || errors.Is(err, tokenstore.ErrConflict):
						t.Errorf("%s: %v, want a failure", op.name, err)
					case took > timeout+margin:
						t.Errorf("%s returned after %v; the budget is %v", op.name, took, timeout)
					}
				})
			}
			wg.Wait()
		})
	}
}

// TestStore_Update_LockWaitCountsAgainstTimeout: an Update queued behind
// another one on the same record gives up when its own budget is spent, not
// when the other one lets go of the record.
func TestStore_Update_LockWaitCountsAgainstTimeout(t *testing.T) {
	const timeout, hold = time.Second, 10 * time.Second
	ctx := context.Background()
	client, _ := firestoretest.NewClient(ctx, t)
	s := firestorestore.New(client, "")
	s.Timeout = timeout

	holding, release := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		_, err := s.Update(ctx, "alice", func(cur *tokenstore.Record) (*tokenstore.Record, error) {
			close(holding)
			<-release
			return nil, nil
		})
		first <- err
	}()
	select {
	case <-holding:
	case err := <-first:
		t.Fatalf("the first Update ended before it held the record: %v", err)
	}
	letGo := time.AfterFunc(hold, func() { close(release) })

	begin := time.Now()
	_, err := s.Update(ctx, "alice", func(cur *tokenstore.Record) (*tokenstore.Record, error) { return nil, nil })
	took := time.Since(begin)
	if letGo.Stop() {
		close(release)
	}
	<-first
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("queued Update: %v, want one wrapping context.DeadlineExceeded", err)
	}
	if took >= hold {
		t.Errorf("queued Update returned after %v, when the record was let go: it waited past its %v budget", took, timeout)
	}
}
