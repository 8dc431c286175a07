package messages

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// quota is this instance's share of each user's Gmail quota: a token bucket
// per user that refills perMinute units a minute and holds a minute's worth.
//
// A bucket lets one request spend a whole minute's quota at once, but over
// any sliding minute it allows up to twice perMinute (a full bucket, then a
// minute of refill). If Google counts in a sliding window, the excess comes
// back as 429 and is retried like any rate limit.
type quota struct {
	perMinute int

	mu        sync.Mutex
	users     map[string]*userQuota
	lastSweep time.Time
}

// userQuota is one user's bucket.
type userQuota struct {
	lim *rate.Limiter
	// full is when the bucket will be full again if unused: after that
	// the entry can be dropped without losing anything.
	full time.Time
}

func newQuota(perMinute int) *quota {
	return &quota{perMinute: perMinute, users: make(map[string]*userQuota)}
}

// reserve takes cost units from user's bucket at now.
func (q *quota) reserve(user string, cost int, now time.Time) *rate.Reservation {
	q.mu.Lock()
	defer q.mu.Unlock()
	if now.Sub(q.lastSweep) >= time.Minute {
		q.sweep(now)
	}
	u := q.users[user]
	if u == nil {
		u = &userQuota{lim: rate.NewLimiter(rate.Limit(float64(q.perMinute)/60), q.perMinute)}
		q.users[user] = u
	}
	res := u.lim.ReserveN(now, cost)
	if res.OK() {
		u.full = now.Add(res.DelayFrom(now) + time.Minute)
	}
	return res
}

// sweep drops the users whose buckets are full again, so that the map
// holds only the users of about the last two minutes.
func (q *quota) sweep(now time.Time) {
	for user, u := range q.users {
		if !now.Before(u.full) {
			delete(q.users, user)
		}
	}
	q.lastSweep = now
}

// wait is how long user's bucket needs before it holds cost units, without
// taking them: to refuse at once a request that cannot be paid for in time.
func (q *quota) wait(user string, cost int, now time.Time) time.Duration {
	q.mu.Lock()
	defer q.mu.Unlock()
	have := float64(q.perMinute)
	if u := q.users[user]; u != nil {
		have = u.lim.TokensAt(now)
	}
	if need := float64(cost) - have; need > 0 {
		return time.Duration(need / (float64(q.perMinute) / 60) * float64(time.Second))
	}
	return 0
}
