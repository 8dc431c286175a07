package app

import (
	"math/rand/v2"
	"sync"
	"time"
)

// Refresh backoff: the window after a failed refresh.
const (
	backoffMin = time.Second
	backoffMax = 30 * time.Second
	// backoffUsers bounds the users remembered at once; a failure of one
	// more is not remembered until old ones are forgotten.
	backoffUsers = 10000
)

// refreshBackoff holds back an instance's refreshes of a user's access
// token while Google's token endpoint fails. After a failure, the user's
// requests get 503 at once, without calling Google, for a window of about
// backoffMin that doubles with each failure in a row up to backoffMax,
// with ±20 % jitter so that instances spread out. A success ends it, and so
// does a quiet spell as long as backoffMax. So an outage costs about one
// token call per user and instance per window, one a second at most.
type refreshBackoff struct {
	mu    sync.Mutex
	m     map[string]*heldBack
	swept time.Time // when a full m was last swept of quiet users
}

type heldBack struct {
	fails int       // failures in a row
	until time.Time // no call to Google before this
}

// wait returns how long the user's refreshes are still held back at now.
func (b *refreshBackoff) wait(sub string, now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if h := b.m[sub]; h != nil && now.Before(h.until) {
		return h.until.Sub(now)
	}
	return 0
}

// fail records a failed refresh for the user at now and returns the window
// it opens.
func (b *refreshBackoff) fail(sub string, now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	h := b.m[sub]
	if h == nil || now.Sub(h.until) > backoffMax {
		if b.m == nil {
			b.m = make(map[string]*heldBack)
		}
		if len(b.m) >= backoffUsers && now.Sub(b.swept) >= backoffMin {
			// At most once a second: a sweep reads every user.
			b.swept = now
			for k, old := range b.m {
				if now.Sub(old.until) > backoffMax {
					delete(b.m, k)
				}
			}
		}
		h = &heldBack{}
		if len(b.m) < backoffUsers {
			b.m[sub] = h
		}
	}
	h.fails++
	d := min(backoffMax, backoffMin<<min(h.fails-1, 5))
	d = min(backoffMax, time.Duration(float64(d)*(0.8+0.4*rand.Float64())))
	h.until = now.Add(d)
	return d
}

// reset forgets the user's failures.
func (b *refreshBackoff) reset(sub string) {
	b.mu.Lock()
	delete(b.m, sub)
	b.mu.Unlock()
}
