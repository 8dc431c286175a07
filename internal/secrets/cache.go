package secrets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Defaults for the Cache fields left zero.
const (
	DefaultRetryInterval    = 2 * time.Second
	DefaultMaxRetryInterval = time.Minute
	DefaultStaleGrace       = 30 * time.Second
	// DefaultFetchTimeout bounds one fetch. A request on a cold instance
	// waits for it (for both secrets at once), so it is what that request
	// waits at most when Secret Manager does not answer: the answer is a
	// 503 within about five seconds.
	DefaultFetchTimeout = 4 * time.Second
)

// Cache holds one parsed secret for an instance, and re-reads it after a
// TTL so that a rotation takes effect without a redeploy.
//
// Only the first Get waits for Secret Manager. Once a value is held, Get
// returns it at once, also after the TTL: then it starts one background
// fetch that replaces the value when it succeeds (stale-while-revalidate).
// While fetches fail, the held value keeps being served and one fetch is
// tried again after a wait that doubles from RetryInterval up to
// MaxRetryInterval, jittered.
//
// One exception bounds how old a served value can be: when a value fell
// due more than StaleGrace ago and no fetch was tried since (the instance
// sat idle), the next Get waits for the fetch, at most FetchTimeout, and
// returns the held value if it fails. Without it, an instance idle for an
// hour would answer with an hour-old key set, one that may lack a key
// every other instance already seals with.
//
// When no value was ever loaded, concurrent Gets share one fetch, and fail
// with an *Error when it fails; during the RetryInterval after that (not
// doubled: nothing else can be served) Get fails at once with the same
// error, so a broken source is not hammered, and a later Get recovers once
// the secret is readable again.
//
// The exported fields may be set after NewCache and before the first Get.
type Cache[T any] struct {
	// RetryInterval is the wait after a failed fetch before the next one.
	// Zero means DefaultRetryInterval.
	RetryInterval time.Duration
	// MaxRetryInterval bounds the wait as it doubles with each failure in a
	// row while a value is held. Zero means DefaultMaxRetryInterval.
	MaxRetryInterval time.Duration
	// FetchTimeout bounds one fetch and parse. Zero means
	// DefaultFetchTimeout.
	FetchTimeout time.Duration
	// StaleGrace is how long after it fell due a held value is still served
	// without waiting when no fetch was tried since. Zero means
	// DefaultStaleGrace.
	StaleGrace time.Duration
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
	// OnError, if set, is called with every failed attempt, including those
	// hidden by serving a held value; use it to log. The error holds no
	// secret content.
	OnError func(error)

	src    Fetcher
	name   string
	parse  func([]byte) (T, error)
	ttl    time.Duration
	group  singleflight.Group
	jitter func(time.Duration) time.Duration // the wait drawn for a backoff
	bg     sync.WaitGroup                    // background fetches in flight

	mu          sync.Mutex
	val         T
	have        bool      // val holds a good value
	expires     time.Time // when val is due to be fetched again
	stale       bool      // val is due now: a fetch after Invalidate failed
	invalidated bool      // the next Get fetches and waits (Invalidate)
	refreshing  bool      // a background fetch is running
	tried       time.Time // when the last fetch started
	err         error     // the last attempt's error, nil after a success
	failures    int       // failed attempts in a row
	retryAt     time.Time // no attempt before then, after a failure
	gen         uint64    // bumped by Invalidate
}

// NewCache returns a cache of the secret read from src and parsed by parse.
// A value is re-read ttl after it was loaded; ttl <= 0 keeps it until
// Invalidate. Errors from parse must not quote the secret.
func NewCache[T any](src Fetcher, parse func([]byte) (T, error), ttl time.Duration) *Cache[T] {
	return &Cache[T]{src: src, name: sourceName(src), parse: parse, ttl: ttl, jitter: halfJitter}
}

// Get returns the secret. A held value is returned at once, even past its
// TTL (a background fetch then renews it). Without one, Get fetches the
// secret, sharing the fetch with concurrent Gets; if ctx ends first, Get
// returns ctx's error, and the fetch goes on for the others. After
// Invalidate, or when the held value is older than its TTL plus
// StaleGrace with no fetch tried since, Get waits for the fetch too, and
// returns the held value if that fetch fails.
func (c *Cache[T]) Get(ctx context.Context) (T, error) {
	v, ch, err := c.start(ctx)
	if ch == nil {
		return v, err
	}
	select {
	case r := <-ch:
		if r.Err != nil {
			var zero T
			return zero, r.Err
		}
		v, _ := r.Val.(T) // a nil interface value fails the assertion
		return v, nil
	case <-ctx.Done():
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.have {
			return c.val, nil
		}
		var zero T
		return zero, &Error{Name: c.name, Err: ctx.Err()}
	}
}

// Prefetch starts what Get would start (the first fetch, or a renewal) and
// returns without waiting: a Get soon after shares that fetch. It lets a
// cold instance fetch several secrets at once.
func (c *Cache[T]) Prefetch(ctx context.Context) { c.start(ctx) }

// Wait waits until the background fetches started so far have finished.
// Tests use it to see a renewal take effect.
func (c *Cache[T]) Wait() { c.bg.Wait() }

// start answers at once when it can (a held value, or the error of a
// recent failure with none held), starting a background renewal if one is
// due. Otherwise it starts or joins the shared fetch and returns its
// channel.
func (c *Cache[T]) start(ctx context.Context) (T, <-chan singleflight.Result, error) {
	now := c.now()
	c.mu.Lock()
	switch {
	case c.have && !c.invalidated && !c.tooStale(now):
		v := c.val
		if c.due(now) && !c.refreshing && !now.Before(c.retryAt) {
			c.refreshing, c.tried = true, now
			c.bg.Add(1)
			go c.refresh(context.WithoutCancel(ctx), c.gen)
		}
		c.mu.Unlock()
		return v, nil, nil
	case !c.have && !c.invalidated && c.err != nil && now.Before(c.retryAt):
		err := c.err
		c.mu.Unlock()
		var zero T
		return zero, nil, err
	}
	gen := c.gen
	c.tried = now
	c.mu.Unlock()
	var zero T
	return zero, c.shared(ctx, gen), nil
}

// shared starts the fetch of generation gen, or joins the one running.
func (c *Cache[T]) shared(ctx context.Context, gen uint64) <-chan singleflight.Result {
	return c.group.DoChan(strconv.FormatUint(gen, 10), func() (any, error) {
		return c.load(ctx, gen)
	})
}

// Invalidate makes the next Get fetch the secret again and wait for it,
// even during the wait after a failure. The held value is still served if
// that fetch fails.
func (c *Cache[T]) Invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.invalidated = true
	c.retryAt = time.Time{}
}

// due reports whether the held value should be fetched again; c.mu is held.
func (c *Cache[T]) due(now time.Time) bool {
	return c.stale || c.ttl > 0 && !now.Before(c.expires)
}

// tooStale reports whether the held value fell due more than StaleGrace
// ago with no fetch tried since; c.mu is held.
func (c *Cache[T]) tooStale(now time.Time) bool {
	return c.ttl > 0 && !c.stale && now.Sub(c.expires) > c.staleGrace() && c.tried.Before(c.expires)
}

// load fetches and parses the secret once on behalf of every waiting Get,
// and returns it, or the held value when the fetch fails and there is one.
// It is detached from the caller's cancellation, bounded by FetchTimeout.
func (c *Cache[T]) load(ctx context.Context, gen uint64) (T, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.fetchTimeout())
	defer cancel()
	v, err := c.fetchAndParse(ctx)
	if err != nil && c.OnError != nil {
		c.OnError(err)
	}
	held, have := c.keep(gen, v, err)
	if err != nil && have {
		return held, nil
	}
	return v, err
}

// refresh renews a held value that is due, in the background, sharing the
// fetch with any Get waiting for one.
func (c *Cache[T]) refresh(ctx context.Context, gen uint64) {
	defer c.bg.Done()
	<-c.shared(ctx, gen)
	c.mu.Lock()
	c.refreshing = false
	c.mu.Unlock()
}

// keep records the outcome of a fetch started at generation gen, and
// returns the value now held.
func (c *Cache[T]) keep(gen uint64, v T, err error) (held T, have bool) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case gen != c.gen:
		// Invalidated meanwhile: the result may predate the change, so
		// keep it only when nothing better is held, and still invalidated.
		if err == nil && !c.have {
			c.val, c.have = v, true
		}
	case err == nil:
		c.val, c.have, c.stale, c.invalidated = v, true, false, false
		c.expires = now.Add(c.ttl)
		c.err, c.failures, c.retryAt = nil, 0, time.Time{}
	default:
		// A failed fetch after Invalidate leaves the held value due, to
		// be renewed in the background like one past its TTL.
		c.stale, c.invalidated = c.have, false
		c.err = err
		c.failures++
		c.retryAt = now.Add(c.jitter(c.backoff()))
	}
	return c.val, c.have
}

// backoff is the wait after c.failures failures in a row: RetryInterval,
// doubled for each further failure while a value is held, up to
// MaxRetryInterval. c.mu is held.
func (c *Cache[T]) backoff() time.Duration {
	d := c.retryInterval()
	if !c.have {
		return d
	}
	limit := max(d, c.maxRetryInterval())
	for i := 1; i < c.failures && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// halfJitter draws a wait from [d/2, d], so that instances that failed
// together do not try again together.
func halfJitter(d time.Duration) time.Duration {
	if d < 2 {
		return d
	}
	return d - rand.N(d/2)
}

func (c *Cache[T]) fetchAndParse(ctx context.Context) (T, error) {
	var zero T
	b, err := c.src.Fetch(ctx)
	if err != nil {
		if _, ok := errors.AsType[*Error](err); !ok {
			err = &Error{Name: c.name, Err: err}
		}
		return zero, err
	}
	v, err := c.parse(b)
	if err != nil {
		return zero, &Error{Name: c.name, Err: fmt.Errorf("parse: %w", scrub(err))}
	}
	return v, nil
}

// scrub replaces a JSON syntax error, whose message quotes a character of
// the input, with one that gives only the offset.
func scrub(err error) error {
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return fmt.Errorf("invalid JSON at byte offset %d", se.Offset)
	}
	return err
}

func (c *Cache[T]) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Cache[T]) retryInterval() time.Duration {
	if c.RetryInterval > 0 {
		return c.RetryInterval
	}
	return DefaultRetryInterval
}

func (c *Cache[T]) maxRetryInterval() time.Duration {
	if c.MaxRetryInterval > 0 {
		return c.MaxRetryInterval
	}
	return DefaultMaxRetryInterval
}

func (c *Cache[T]) staleGrace() time.Duration {
	if c.StaleGrace > 0 {
		return c.StaleGrace
	}
	return DefaultStaleGrace
}

func (c *Cache[T]) fetchTimeout() time.Duration {
	if c.FetchTimeout > 0 {
		return c.FetchTimeout
	}
	return DefaultFetchTimeout
}

// sourceName names src in errors without revealing its content.
func sourceName(src Fetcher) string {
	if s, ok := src.(fmt.Stringer); ok {
		return s.String()
	}
	return fmt.Sprintf("%T", src)
}
