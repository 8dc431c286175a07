// Package localstore is the embedded token store for local runs and unit
// tests: every record in memory, and optionally in one JSON file that each
// write replaces atomically, so that data survives restarts and a crash in
// the middle of a write never corrupts it.
//
// A Store is safe for concurrent use within one process. Two processes must
// not share a file.
package localstore

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/tokenstore"
)

// Store keeps token records in memory and, when it has a path, in a file.
type Store struct {
	path string // "" for memory only

	mu      sync.Mutex
	recs    map[string]*tokenstore.Record // by sub; never handed out
	version time.Time                     // the newest Version issued
	changed chan struct{}                 // closed, and replaced, by every write
	ops     Ops
}

// Ops counts a store's operations, for tests that check round trips.
type Ops struct {
	Reads        int // Get and FindByEmail calls
	Writes       int // writes that changed the store: by Update, SaveAccess, SetLease or Delete
	Transactions int // Update calls
	Leases       int // SetLease calls, whether or not the version matched
	Watches      int // Watch calls
}

// Open returns a store kept in the JSON file at path, creating the file
// (mode 0600, its directory 0700) when it does not exist. An empty path
// gives a store kept in memory only. A file that cannot be parsed is an
// error and is left as it is. The temporary files of writes that a killed
// process left unfinished are removed.
func Open(path string) (*Store, error) {
	s := &Store{path: path, recs: make(map[string]*tokenstore.Record), changed: make(chan struct{})}
	if path == "" {
		return s, nil
	}
	if err := removeTemps(path); err != nil {
		return nil, err
	}
	recs, err := load(path)
	if err != nil {
		return nil, err
	}
	if recs == nil {
		if err := save(path, s.recs); err != nil {
			return nil, err
		}
		return s, nil
	}
	s.recs = recs
	for _, r := range recs {
		if r.Version.After(s.version) {
			s.version = r.Version
		}
	}
	return s, nil
}

// Ops returns the operations counted since Open or the last ResetOps.
func (s *Store) Ops() Ops {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ops
}

// ResetOps sets the operation counters to zero.
func (s *Store) ResetOps() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ops = Ops{}
}

// Get returns the user's record, or tokenstore.ErrNotFound.
func (s *Store) Get(ctx context.Context, sub string) (*tokenstore.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ops.Reads++
	r, ok := s.recs[sub]
	if !ok {
		return nil, tokenstore.ErrNotFound
	}
	return clone(r), nil
}

// FindByEmail returns the record with the given email, or
// tokenstore.ErrNotFound. When several records share the email, it returns
// the most recently updated usable one, else the most recently updated.
func (s *Store) FindByEmail(ctx context.Context, email string) (*tokenstore.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ops.Reads++
	var best *tokenstore.Record
	for _, sub := range slices.Sorted(maps.Keys(s.recs)) {
		if r := s.recs[sub]; r.Email == email && tokenstore.Preferred(r, best) {
			best = r
		}
	}
	if best == nil {
		return nil, tokenstore.ErrNotFound
	}
	return clone(best), nil
}

// Update runs fn on the user's record (nil when there is none) while holding
// the store's lock, and writes the record fn returns, unless it returns nil.
// It returns the record as stored after the call: nil when there is none.
func (s *Store) Update(ctx context.Context, sub string, fn func(cur *tokenstore.Record) (*tokenstore.Record, error)) (*tokenstore.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ops.Transactions++
	var cur *tokenstore.Record
	if r, ok := s.recs[sub]; ok {
		cur = clone(r)
	}
	next, err := fn(cur)
	if err != nil {
		return nil, fmt.Errorf("localstore: update %s: %w", sub, err)
	}
	if next == nil {
		if cur == nil {
			return nil, nil
		}
		return clone(s.recs[sub]), nil
	}
	r := clone(next)
	r.Sub = sub
	if err := s.put(sub, r); err != nil {
		return nil, fmt.Errorf("localstore: update %s: %w", sub, err)
	}
	return clone(r), nil
}

// SaveAccess applies u to the user's record if its Version still equals
// version, ending any refresh lease, and returns tokenstore.ErrConflict
// otherwise, changing nothing.
func (s *Store) SaveAccess(ctx context.Context, sub string, version time.Time, u tokenstore.AccessUpdate) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.recs[sub]
	if !ok || !cur.Version.Equal(version) {
		return tokenstore.ErrConflict
	}
	next := u.Apply(*cur)
	if err := s.put(sub, clone(&next)); err != nil {
		return fmt.Errorf("localstore: save access %s: %w", sub, err)
	}
	return nil
}

// SetLease sets the user's refresh lease to l (the zero Lease releases it)
// if the record's Version still equals version, and returns the new
// Version; otherwise it returns tokenstore.ErrConflict, changing nothing.
func (s *Store) SetLease(ctx context.Context, sub string, version time.Time, l tokenstore.Lease) (time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ops.Leases++
	cur, ok := s.recs[sub]
	if !ok || !cur.Version.Equal(version) {
		return time.Time{}, tokenstore.ErrConflict
	}
	next := clone(cur)
	next.RefreshLease = l
	if err := s.put(sub, next); err != nil {
		return time.Time{}, fmt.Errorf("localstore: set lease %s: %w", sub, err)
	}
	return next.Version, nil
}

// Watch calls fn with the user's record (nil when there is none) as it is
// now, then again after each change, until fn returns false (Watch then
// returns nil) or ctx ends (ctx's error).
func (s *Store) Watch(ctx context.Context, sub string, fn func(cur *tokenstore.Record) bool) error {
	s.mu.Lock()
	s.ops.Watches++
	s.mu.Unlock()
	var seen *tokenstore.Record
	for first := true; ; first = false {
		s.mu.Lock()
		cur, changed := s.recs[sub], s.changed
		if cur != nil {
			cur = clone(cur)
		}
		s.mu.Unlock()
		if first || (cur == nil) != (seen == nil) || cur != nil && !cur.Version.Equal(seen.Version) {
			if !fn(cur) {
				return nil
			}
			seen = cur
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Delete removes the user's record. Deleting an absent record is not an
// error.
func (s *Store) Delete(ctx context.Context, sub string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.recs[sub]
	if !ok {
		return nil
	}
	delete(s.recs, sub)
	if err := s.persist(); err != nil {
		s.recs[sub] = old
		return fmt.Errorf("localstore: delete %s: %w", sub, err)
	}
	s.ops.Writes++
	s.notify()
	return nil
}

// put stores r under sub with a new Version and persists the store, leaving
// memory as it was when persisting fails. s.mu must be held.
func (s *Store) put(sub string, r *tokenstore.Record) error {
	old, had := s.recs[sub]
	prevVersion := s.version
	r.Version = s.nextVersion()
	s.recs[sub] = r
	if err := s.persist(); err != nil {
		if had {
			s.recs[sub] = old
		} else {
			delete(s.recs, sub)
		}
		s.version = prevVersion
		return err
	}
	s.ops.Writes++
	s.notify()
	return nil
}

// notify wakes every Watch. s.mu must be held.
func (s *Store) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// nextVersion returns the current time, or just after the last version
// issued if the clock has not moved past it, so that versions strictly
// increase. s.mu must be held.
func (s *Store) nextVersion() time.Time {
	v := time.Now().UTC().Round(0)
	if !v.After(s.version) {
		v = s.version.Add(time.Nanosecond)
	}
	s.version = v
	return v
}

func (s *Store) persist() error {
	if s.path == "" {
		return nil
	}
	return save(s.path, s.recs)
}

// clone returns a deep copy of r, so that callers never share memory with
// the store.
func clone(r *tokenstore.Record) *tokenstore.Record {
	c := *r
	c.Scopes = slices.Clone(r.Scopes)
	c.RefreshToken.Ciphertext = bytes.Clone(r.RefreshToken.Ciphertext)
	c.AccessToken.Ciphertext = bytes.Clone(r.AccessToken.Ciphertext)
	return &c
}
