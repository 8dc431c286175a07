package firestoretest

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
)

// Proxy is a TCP proxy in front of the emulator, for one test: a client
// dialled to Addr reaches the emulator through it until Cut, which does to
// the client what a server killed on that port does (every connection is
// reset, new ones are refused), and Restore makes the same address answer
// again.
//
// Unlike Stop and Restart, which kill and restart the emulator's JVM (20
// to 40 s on a busy machine), Cut and Restore take milliseconds, affect only
// the clients of this proxy, and keep the documents, as a real Firestore
// outage does. They exercise what the client does about an outage: its
// deadlines while nothing answers and its reconnection once the address
// answers again.
type Proxy struct {
	addr, target string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// NewProxy starts a proxy to the emulator on a free loopback port. It is
// closed when t ends.
func NewProxy(t testing.TB) *Proxy {
	t.Helper()
	p := &Proxy{target: Require(t), conns: map[net.Conn]struct{}{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy: %v", err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(func() { p.Cut(); p.wg.Wait() })
	return p
}

// Addr is the proxy's host:port, for NewProjectClientAt.
func (p *Proxy) Addr() string { return p.addr }

// Held returns the goroutines and file descriptors the proxy holds in this
// process (its listener, and both ends it keeps of each connection), so
// that a test counting the process's own can leave them out.
func (p *Proxy) Held() (goroutines, fds int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pairs := len(p.conns) / 2
	goroutines, fds = 3*pairs, 2*pairs // a pipe and its two copies; the two ends
	if p.ln != nil {
		goroutines, fds = goroutines+1, fds+1
	}
	return goroutines, fds
}

// Cut closes the listener, so that new connections are refused, and
// resets every open connection on both sides.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0) // close with a reset, as the kernel does for a killed process
		}
		c.Close()
		delete(p.conns, c)
	}
}

// Restore listens on the same address again.
func (p *Proxy) Restore(t testing.TB) {
	t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatalf("proxy: listen on %s again: %v", p.addr, err)
	}
	p.serve(ln)
}

func (p *Proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed by Cut
			}
			p.wg.Go(func() { p.pipe(c) })
		}
	})
}

// pipe copies between the client's connection c and a new one to the
// emulator until either ends or Cut closes both.
func (p *Proxy) pipe(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	if !p.track(c, up) {
		return
	}
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		if _, err := io.Copy(dst, src); err != nil && !errors.Is(err, net.ErrClosed) {
			dst.Close()
		}
		done <- struct{}{}
	}
	go cp(up, c)
	go cp(c, up)
	<-done
	c.Close()
	up.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

// track records the pair of connections, or closes them if Cut came first.
func (p *Proxy) track(c, up net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		c.Close()
		up.Close()
		return false
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	return true
}
