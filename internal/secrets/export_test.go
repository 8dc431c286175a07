package secrets

import "time"

// NoJitter makes c wait exactly its backoff after a failure, for tests on a
// settable clock.
func NoJitter[T any](c *Cache[T]) { c.jitter = func(d time.Duration) time.Duration { return d } }
