// Package fakesecretmanager is an in-process Secret Manager for tests.
//
// It implements the real secretmanagerpb.SecretManagerServiceServer over
// gRPC on a loopback port, so that code under test uses the real
// secretmanager.Client end to end: names, alias resolution, version states,
// CRC32C checksums and gRPC status codes behave as the service does.
// Test controls inject failures (FailNext, SetDown), make it stop answering
// (SetHanging) and count accesses.
package fakesecretmanager

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// Project is the project id under which AddVersion creates secrets.
// Secrets in other projects can be created through the client.
const Project = "test-project"

// Server is a running fake Secret Manager. Its methods are safe for
// concurrent use.
type Server struct {
	addr string

	mu       sync.Mutex
	secrets  map[string]*secret // by "projects/P/secrets/S"
	down     bool
	hang     chan struct{} // non-nil while hanging; closed when that ends
	failCode codes.Code
	failN    int
	accesses int
}

// Start starts a server on 127.0.0.1 and stops it when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("fakesecretmanager: listen: %v", err)
	}
	s := &Server{addr: lis.Addr().String(), secrets: make(map[string]*secret)}
	gs := grpc.NewServer(grpc.UnaryInterceptor(s.intercept))
	secretmanagerpb.RegisterSecretManagerServiceServer(gs, &service{s: s})
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	return s
}

// Addr returns the server's host:port.
func (s *Server) Addr() string { return s.addr }

// Client returns a real Secret Manager client connected to s over gRPC,
// without authentication. It is closed when the test ends.
func (s *Server) Client(ctx context.Context, t testing.TB) *secretmanager.Client {
	t.Helper()
	c, err := secretmanager.NewClient(ctx,
		option.WithEndpoint(s.addr),
		option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
	)
	if err != nil {
		t.Fatalf("fakesecretmanager: new client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// AddVersion adds an enabled version holding data to the secret named secret
// in Project, creating the secret if it does not exist, and returns the
// version's resource name, "projects/test-project/secrets/<secret>/versions/N".
func (s *Server) AddVersion(secret string, data []byte) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := "projects/" + Project + "/secrets/" + secret
	sec := s.secrets[name]
	if sec == nil {
		sec = newSecret(name, nil)
		s.secrets[name] = sec
	}
	return sec.add(data).name
}

// FailNext makes the next n RPCs, of any method, fail with code.
func (s *Server) FailNext(code codes.Code, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failCode, s.failN = code, n
}

// SetDown makes every RPC fail with codes.Unavailable while down is true.
// Note that the client retries AccessSecretVersion on Unavailable with
// backoff until its context ends.
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

// SetHanging makes every RPC wait, unanswered, while hanging is true: each
// one ends when its context does (the caller's deadline, or the server
// stopping) or when SetHanging(false) lets it through. It stands for a
// service that accepts connections but does not answer.
func (s *Server) SetHanging(hanging bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case hanging && s.hang == nil:
		s.hang = make(chan struct{})
	case !hanging && s.hang != nil:
		close(s.hang)
		s.hang = nil
	}
}

// AccessCount returns the number of AccessSecretVersion calls seen,
// including those that failed.
func (s *Server) AccessCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accesses
}

// intercept counts accesses and applies injected failures before any
// method runs.
func (s *Server) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	s.mu.Lock()
	if strings.HasSuffix(info.FullMethod, "/AccessSecretVersion") {
		s.accesses++
	}
	if hang := s.hang; hang != nil {
		s.mu.Unlock()
		select {
		case <-hang:
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		s.mu.Lock()
	}
	if s.down {
		s.mu.Unlock()
		return nil, status.Error(codes.Unavailable, "fakesecretmanager: service is down")
	}
	if s.failN > 0 {
		s.failN--
		code := s.failCode
		s.mu.Unlock()
		return nil, status.Errorf(code, "fakesecretmanager: injected failure")
	}
	s.mu.Unlock()
	return h(ctx, req)
}
