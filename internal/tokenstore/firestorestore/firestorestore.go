// Package firestorestore keeps token records in Cloud Firestore: one
// document per user, named by the user's sub, in one collection.
//
// The store handles sealed tokens only (see package keyring): no plaintext
// token ever reaches Firestore.
package firestorestore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/tokenstore"
)

// DefaultCollection is the collection New uses when given none.
const DefaultCollection = "gmail_tokens"

// txAttempts bounds the attempts of one Update's transaction. Firestore
// aborts transactions that contend for a document; the client library then
// retries them with a jittered exponential backoff, naming the aborted
// transaction so that the server favours the retry.
const txAttempts = 12

// DefaultTimeout is a Store's time budget per call when its Timeout is
// zero. A healthy Firestore answers a read or a commit in tens of
// milliseconds; three seconds leave room for the client library's retries
// of a brief failure (it backs off from 100 ms) and still answer a client
// long before it gives up.
const DefaultTimeout = 3 * time.Second

// Store is a token store on Firestore. It is safe for concurrent use.
type Store struct {
	// Timeout bounds each call of a method, every Firestore call it makes
	// included: a transaction's attempts and the wait for the document's
	// lock, a query's stream, a commit. Past it the method returns an error
	// wrapping the context's. Zero means DefaultTimeout. Set it before the
	// first call.
	Timeout time.Duration

	client     *firestore.Client
	collection string
	locks      keyLocks // one Update at a time per document, in this process
}

// New returns a store keeping records in client's collection
// (DefaultCollection when collection is "").
func New(client *firestore.Client, collection string) *Store {
	if collection == "" {
		collection = DefaultCollection
	}
	return &Store{client: client, collection: collection}
}

// bound returns ctx cut to the store's time budget. Every method calls it
// before anything else: the client library retries an unavailable Firestore
// for as long as the context lives, and a request's context may have no end.
func (s *Store) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout())
}

// timeout is the store's time budget per call.
func (s *Store) timeout() time.Duration {
	if s.Timeout <= 0 {
		return DefaultTimeout
	}
	return s.Timeout
}

func (s *Store) doc(sub string) *firestore.DocumentRef {
	return s.client.Collection(s.collection).Doc(sub)
}

// Get returns the user's record, or tokenstore.ErrNotFound. It makes one
// BatchGetDocuments call.
func (s *Store) Get(ctx context.Context, sub string) (*tokenstore.Record, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	snap, err := s.doc(sub).Get(ctx)
	if status.Code(err) == codes.NotFound {
		return nil, tokenstore.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("firestore get %s: %w", sub, err)
	}
	r, err := fromSnapshot(snap)
	if err != nil {
		return nil, fmt.Errorf("firestore get %s: %w", sub, err)
	}
	return r, nil
}

// FindByEmail returns the records whose email equals email without regard
// to case (tokenstore.EmailKey), at most tokenstore.EmailMatchLimit, in the
// order of their sub, or tokenstore.ErrNotFound. It makes one RunQuery call
// on the single-field index of email_key.
func (s *Store) FindByEmail(ctx context.Context, email string) ([]*tokenstore.Record, error) {
	key := tokenstore.EmailKey(email)
	if key == "" {
		return nil, tokenstore.ErrNotFound
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	snaps, err := s.client.Collection(s.collection).Where("email_key", "==", key).
		Limit(tokenstore.EmailMatchLimit).Documents(ctx).GetAll()
	if err != nil {
		return nil, fmt.Errorf("firestore query by email: %w", err)
	}
	if len(snaps) == 0 {
		return nil, tokenstore.ErrNotFound
	}
	recs := make([]*tokenstore.Record, 0, len(snaps))
	for _, snap := range snaps { // ordered by document id, the sub
		r, err := fromSnapshot(snap)
		if err != nil {
			return nil, fmt.Errorf("firestore query by email: %w", err)
		}
		recs = append(recs, r)
	}
	return recs, nil
}

// Update runs fn in a transaction on the user's record (nil when there is
// none) and writes the record fn returns, unless it returns nil. fn may run
// more than once. Update returns the record as stored after the call: nil
// when there is none. An error from fn is returned wrapped.
//
// Concurrent Updates of one user's record through the same Store queue for
// it rather than contend in Firestore; the wait counts against Timeout, as
// do all the transaction's attempts.
//
// Uncontended, it makes BeginTransaction, BatchGetDocuments and Commit calls
// (Rollback instead of Commit when fn fails).
func (s *Store) Update(ctx context.Context, sub string, fn func(cur *tokenstore.Record) (*tokenstore.Record, error)) (*tokenstore.Record, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	ref := s.doc(sub)
	var (
		out   *tokenstore.Record
		wrote bool
		resp  firestore.CommitResponse
	)
	body := func(ctx context.Context, tx *firestore.Transaction) error {
		out, wrote = nil, false
		var cur *tokenstore.Record
		snap, err := tx.Get(ref)
		switch {
		case status.Code(err) == codes.NotFound:
		case err != nil:
			return err
		default:
			if cur, err = fromSnapshot(snap); err != nil {
				return err
			}
		}
		next, err := fn(cur)
		if err != nil {
			return err // not retried: RunTransaction retries only aborts
		}
		if next == nil {
			out = cur
			return nil
		}
		d := toDoc(next)
		out, wrote = fromDoc(sub, d), true
		return tx.Set(ref, d)
	}
	unlock, err := s.locks.lock(ctx, sub)
	if err != nil {
		return nil, fmt.Errorf("firestore update %s: %w", sub, err)
	}
	err = s.client.RunTransaction(ctx, body, firestore.MaxAttempts(txAttempts), firestore.WithCommitResponseTo(&resp))
	unlock()
	if err != nil {
		return nil, fmt.Errorf("firestore update %s: %w", sub, err)
	}
	if wrote {
		results, err := resp.WriteResults()
		if err != nil || len(results) != 1 {
			return nil, fmt.Errorf("firestore update %s: commit returned %d write results: %v", sub, len(results), err)
		}
		out.Version = results[0].UpdateTime
	}
	return out, nil
}

// SaveAccess applies u to the user's record in one conditional write, if the
// stored record's Version still equals version, ending any refresh lease.
// Otherwise (the record changed, or was deleted) it returns
// tokenstore.ErrConflict and changes nothing. It makes one Commit call.
func (s *Store) SaveAccess(ctx context.Context, sub string, version time.Time, u tokenstore.AccessUpdate) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	updates := []firestore.Update{
		{Path: "access_token", Value: sealedValue(u.AccessToken)},
		{Path: "access_token_expiry", Value: timeValue(u.AccessTokenExpiry)},
		{Path: "refreshed_at", Value: timeValue(u.RefreshedAt)},
		{Path: "updated_at", Value: timeValue(u.RefreshedAt)},
		{Path: "refresh_lease", Value: firestore.Delete},
	}
	if u.RefreshToken != nil {
		updates = append(updates, firestore.Update{Path: "refresh_token", Value: sealedValue(*u.RefreshToken)})
		if !u.RefreshTokenIssuedAt.IsZero() {
			updates = append(updates, firestore.Update{Path: "refresh_token_issued_at", Value: timeValue(u.RefreshTokenIssuedAt)})
		}
	}
	if u.EmailBinding != nil {
		updates = append(updates, firestore.Update{Path: "email_binding", Value: tagValue(*u.EmailBinding)})
	}
	_, err := s.conditional(ctx, sub, version, updates)
	if err != nil && !errors.Is(err, tokenstore.ErrConflict) {
		return fmt.Errorf("firestore save access %s: %w", sub, err)
	}
	return err
}

// SetLease sets the user's refresh lease to l (the zero Lease releases it)
// in one conditional write, if the stored record's Version still equals
// version, and returns the record's new Version. Otherwise (the record
// changed, or was deleted) it returns tokenstore.ErrConflict and changes
// nothing: of several instances that read one version, exactly one gets the
// lease. l must differ from the stored lease (Lease.Holder sees to it): a
// write that changes nothing leaves the version as it was. It makes one
// Commit call, and when that fails with time left, one BatchGetDocuments
// call to see whether it was applied all the same.
//
// A conditional Commit on the version already read costs one round trip,
// where a transaction would cost three (BeginTransaction, BatchGetDocuments,
// Commit) and, on the emulator, lock the document against the others.
func (s *Store) SetLease(ctx context.Context, sub string, version time.Time, l tokenstore.Lease) (time.Time, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	v, err := s.conditional(ctx, sub, version, []firestore.Update{{Path: "refresh_lease", Value: leaseValue(l)}})
	if err != nil && !errors.Is(err, tokenstore.ErrConflict) {
		if v, ok := s.leaseApplied(ctx, sub, l); ok {
			return v, nil
		}
		return time.Time{}, fmt.Errorf("firestore set lease %s: %w", sub, err)
	}
	return v, err
}

// leaseApplied reads the user's document after a lease write that failed
// with time left, and returns its version if it holds l all the same. A
// failed Commit may have been applied: the server can fail it after
// writing (the emulator does when the commit races the cancellation of a
// listener on the document, answering CANCELLED). Taken for failed, a lease
// that was in fact written would make the other instances wait it out and
// then refresh a second time. One BatchGetDocuments call, within ctx.
func (s *Store) leaseApplied(ctx context.Context, sub string, l tokenstore.Lease) (time.Time, bool) {
	if ctx.Err() != nil {
		return time.Time{}, false
	}
	snap, err := s.doc(sub).Get(ctx)
	if err != nil {
		return time.Time{}, false
	}
	r, err := fromSnapshot(snap)
	// The holder names the claim (Firestore keeps Until to the
	// microsecond); a release leaves none.
	if err != nil || r.RefreshLease.Holder != l.Holder {
		return time.Time{}, false
	}
	return snap.UpdateTime, true
}

// conditional applies updates to the user's document if its update time is
// still version, and returns the new one; tokenstore.ErrConflict when it
// changed or is gone.
func (s *Store) conditional(ctx context.Context, sub string, version time.Time, updates []firestore.Update) (time.Time, error) {
	wr, err := s.doc(sub).Update(ctx, updates, firestore.LastUpdateTime(version))
	switch status.Code(err) {
	case codes.OK:
		return wr.UpdateTime, nil
	case codes.FailedPrecondition, codes.NotFound:
		return time.Time{}, tokenstore.ErrConflict
	default:
		return time.Time{}, err
	}
}

// Watch calls fn with the user's record (nil when there is none) as it is
// now, then again after each change, until fn returns false (Watch then
// returns nil), ctx ends (ctx's error) or the store fails. The first
// snapshot must come within Timeout; the wait for changes after it is
// bounded by ctx alone. It holds one snapshot listener, one Listen call, for
// the whole watch.
func (s *Store) Watch(ctx context.Context, sub string, fn func(cur *tokenstore.Record) bool) error {
	lctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	first := time.AfterFunc(s.timeout(), func() { cancel(errNoSnapshot) })
	defer first.Stop()
	it := s.doc(sub).Snapshots(lctx)
	defer it.Stop()
	for {
		snap, err := it.Next()
		first.Stop()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			return fmt.Errorf("firestore watch %s: %w", sub, cmp.Or(context.Cause(lctx), err))
		}
		var cur *tokenstore.Record
		if snap.Exists() {
			if cur, err = fromSnapshot(snap); err != nil {
				return fmt.Errorf("firestore watch %s: %w", sub, err)
			}
		}
		if !fn(cur) {
			return nil
		}
	}
}

// errNoSnapshot ends a Watch whose first snapshot did not come within the
// store's Timeout.
var errNoSnapshot = fmt.Errorf("no snapshot within the store's timeout: %w", context.DeadlineExceeded)

// Delete removes the user's record. Deleting an absent record is not an
// error. It makes one Commit call.
func (s *Store) Delete(ctx context.Context, sub string) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if _, err := s.doc(sub).Delete(ctx); err != nil {
		return fmt.Errorf("firestore delete %s: %w", sub, err)
	}
	return nil
}
