package firestoretest

import (
	"context"
	"fmt"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"cloud.google.com/go/firestore"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/tokenstore/firestorestore"
)

var projectSeq atomic.Int64

// NewClient returns a Firestore client connected to the emulator, on a
// project of its own so that tests never see each other's documents, and a
// counter of the RPCs the client makes. The client is closed when t ends.
// When the emulator is unavailable, NewClient fails or skips t as Require
// does.
func NewClient(ctx context.Context, t testing.TB) (*firestore.Client, *RPCCounter) {
	t.Helper()
	return NewProjectClient(ctx, t, ProjectID(t))
}

// NewProjectClient is NewClient on the given project, for tests that need
// several clients on the same data (as several instances of a function
// would be).
func NewProjectClient(ctx context.Context, t testing.TB, project string) (*firestore.Client, *RPCCounter) {
	t.Helper()
	return NewProjectClientAt(ctx, t, project, Require(t))
}

// NewProjectClientAt is NewProjectClient through the emulator address h,
// such as a Proxy's.
func NewProjectClientAt(ctx context.Context, t testing.TB, project, h string) (*firestore.Client, *RPCCounter) {
	t.Helper()
	counter := new(RPCCounter)
	// With FIRESTORE_EMULATOR_HOST set, the client library dials a connection
	// of its own and ignores dial options, so the counting connection is
	// dialled here and passed whole, overriding the library's (which stays
	// open, idle, until the test binary exits). It reconnects as the
	// functions' connection to Firestore does.
	conn, err := grpc.NewClient("passthrough:///"+h,
		firestorestore.DialOption(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(ownerCreds{}),
		grpc.WithChainUnaryInterceptor(counter.unary),
		grpc.WithChainStreamInterceptor(counter.stream),
	)
	if err != nil {
		t.Fatalf("dial Firestore emulator %s: %v", h, err)
	}
	client, err := firestore.NewClient(ctx, project, option.WithGRPCConn(conn))
	if err != nil {
		conn.Close()
		t.Fatalf("firestore client for emulator project %s: %v", project, err)
	}
	t.Cleanup(func() {
		client.Close()
		conn.Close()
	})
	return client, counter
}

// ProjectID returns a project id unique within the test binary, derived
// from t's name so that the emulator's data is easy to attribute.
func ProjectID(t testing.TB) string {
	var b strings.Builder
	for _, r := range strings.ToLower(t.Name()) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	name := strings.Trim(b.String(), "-")
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	return fmt.Sprintf("test-%d-%s", projectSeq.Add(1), strings.Trim(name, "-"))
}

// ownerCreds authenticates to the emulator as its administrator, as the
// client library does for FIRESTORE_EMULATOR_HOST.
type ownerCreds struct{}

func (ownerCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer owner"}, nil
}

func (ownerCreds) RequireTransportSecurity() bool { return false }

// RPCCounter records the Firestore RPCs a client makes, by method name
// (for example "BatchGetDocuments", "Commit", "BeginTransaction", "RunQuery").
// It is safe for concurrent use.
type RPCCounter struct {
	mu     sync.Mutex
	calls  []string
	faults map[string]fault // by method, for its next call
}

// fault is a failure FailNext arranged.
type fault struct {
	err     error
	applied bool
}

// FailNext makes the next call of the unary method (such as "Commit")
// return err: after the emulator has carried it out when applied is true,
// as a server that fails a call it has applied does, and without sending
// it otherwise.
func (c *RPCCounter) FailNext(method string, err error, applied bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.faults == nil {
		c.faults = make(map[string]fault)
	}
	c.faults[method] = fault{err, applied}
}

// takeFault returns and forgets the failure arranged for method, if any.
func (c *RPCCounter) takeFault(method string) (fault, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.faults[method]
	delete(c.faults, method)
	return f, ok
}

// Calls returns the methods called since the last Reset, in order.
func (c *RPCCounter) Calls() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.calls...)
}

// Count returns how many times method was called since the last Reset.
func (c *RPCCounter) Count(method string) int {
	n := 0
	for _, m := range c.Calls() {
		if m == method {
			n++
		}
	}
	return n
}

// Total returns how many RPCs were made since the last Reset.
func (c *RPCCounter) Total() int { return len(c.Calls()) }

// Reset forgets the calls recorded so far.
func (c *RPCCounter) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = nil
}

func (c *RPCCounter) record(fullMethod string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, path.Base(fullMethod))
}

func (c *RPCCounter) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	c.record(method)
	f, ok := c.takeFault(path.Base(method))
	if !ok {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	if f.applied {
		if err := invoker(ctx, method, req, reply, cc, opts...); err != nil {
			return err
		}
	}
	return f.err
}

func (c *RPCCounter) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	c.record(method)
	return streamer(ctx, desc, cc, method, opts...)
}
