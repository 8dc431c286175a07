package secrets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Defaults for the Cache fields left zero.
const (
	DefaultRetryInterval = 5 * time.Second
	DefaultFetchTimeout  = 10 * time.Second
)

// Cache holds one parsed secret for an instance. The first Get fetches and
// parses it; after the TTL the next Get fetches it again, so that a
// rotation takes effect without a redeploy. Concurrent Gets share one fetch.
//
// When a fetch or parse fails while a good value is held, Get keeps serving
// that value and tries again later. When no good value was ever loaded, Get
// returns an *Error. Either way a failed attempt is not repeated before
// RetryInterval has passed, so a broken source is not hammered, and a
// later Get recovers once the secret is readable again.
//
// The exported fields may be set after NewCache and before the first Get.
type Cache[T any] struct {
	// RetryInterval is the least time between a failed attempt and the next
	// one. Zero means DefaultRetryInterval.
	RetryInterval time.Duration
	// FetchTimeout bounds one fetch and parse. Zero means DefaultFetchTimeout.
	FetchTimeout time.Duration
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
	// OnError, if set, is called with every failed attempt, including those
	// hidden by serving a stale value; use it to log. The error holds no
	// secret content.
	OnError func(error)

	src   Fetcher
	name  string
	parse func([]byte) (T, error)
	ttl   time.Duration
	group singleflight.Group

	mu       sync.Mutex
	val      T
	have     bool      // val holds a good value
	expires  time.Time // when val must be fetched again
	stale    bool      // set by Invalidate
	err      error     // the last attempt's error, nil after a success
	failedAt time.Time // when the last attempt failed
	gen      uint64    // bumped by Invalidate
}

// NewCache returns a cache of the secret read from src and parsed by parse.
// A value is re-read ttl after it was loaded; ttl <= 0 keeps it until
// Invalidate. Errors from parse must not quote the secret.
func NewCache[T any](src Fetcher, parse func([]byte) (T, error), ttl time.Duration) *Cache[T] {
	return &Cache[T]{src: src, name: sourceName(src), parse: parse, ttl: ttl}
}

// Get returns the secret, fetching it if it was never loaded, its TTL has
// passed, or Invalidate was called. If ctx ends before a shared fetch
// completes, Get returns the held value if there is one, and ctx's error
// otherwise; the fetch itself goes on for the other callers.
func (c *Cache[T]) Get(ctx context.Context) (T, error) {
	now := c.now()
	c.mu.Lock()
	switch {
	case c.have && !c.stale && (c.ttl <= 0 || now.Before(c.expires)):
		v := c.val
		c.mu.Unlock()
		return v, nil
	case c.err != nil && now.Sub(c.failedAt) < c.retryInterval():
		v, have, err := c.val, c.have, c.err
		c.mu.Unlock()
		if have {
			return v, nil
		}
		return v, err
	}
	gen := c.gen
	c.mu.Unlock()

	ch := c.group.DoChan(strconv.FormatUint(gen, 10), func() (any, error) {
		return c.load(ctx, gen)
	})
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

// Invalidate makes the next Get fetch the secret again, even during the
// retry interval after a failure. The held value is still served if that
// fetch fails.
func (c *Cache[T]) Invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.stale = true
	c.err = nil
}

// load fetches and parses the secret once on behalf of every waiting Get.
// It is detached from the caller's cancellation, bounded by FetchTimeout.
func (c *Cache[T]) load(ctx context.Context, gen uint64) (T, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.fetchTimeout())
	defer cancel()
	v, err := c.fetchAndParse(ctx)
	now := c.now()

	c.mu.Lock()
	if gen != c.gen {
		// Invalidated meanwhile: the result may predate the change, so
		// keep it only when nothing better is held, and still stale.
		if err == nil && !c.have {
			c.val, c.have = v, true
		}
	} else if err == nil {
		c.val, c.have, c.stale, c.err = v, true, false, nil
		c.expires = now.Add(c.ttl)
	} else {
		c.err, c.failedAt = err, now
	}
	held, have := c.val, c.have
	c.mu.Unlock()

	if err != nil {
		if c.OnError != nil {
			c.OnError(err)
		}
		if have {
			return held, nil
		}
	}
	return v, err
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
