package firestorestore

import (
	"context"
	"sync"
)

// keyLocks serialises work per key within one process: Update holds the
// user's lock for its transaction, so that one instance's concurrent
// updates of a document queue here instead of aborting each other in
// Firestore (the emulator, for one, stalls every overlapping transaction on
// a document until a lock timeout of seconds). Transactions from other
// instances still contend in Firestore, and are retried there.
type keyLocks struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	ch   chan struct{} // holds a token while locked
	refs int           // holders and waiters; the entry goes at zero
}

// lock waits for key's lock or for ctx to end, and returns the function
// that releases it.
func (k *keyLocks) lock(ctx context.Context, key string) (unlock func(), err error) {
	k.mu.Lock()
	if k.m == nil {
		k.m = make(map[string]*keyLock)
	}
	l := k.m[key]
	if l == nil {
		l = &keyLock{ch: make(chan struct{}, 1)}
		k.m[key] = l
	}
	l.refs++
	k.mu.Unlock()

	release := func() {
		k.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
	select {
	case l.ch <- struct{}{}:
		return func() { <-l.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}
