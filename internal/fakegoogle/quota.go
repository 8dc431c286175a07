package fakegoogle

import (
	"net/http"
	"time"
)

// Gmail quota units per method, as documented by Google.
const (
	listCost    = 5
	getCost     = 20
	quotaWindow = time.Minute
)

// quotaUse is units spent at a moment.
type quotaUse struct {
	at    time.Time
	units int
}

// chargeQuota spends units of u's per-minute Gmail quota. When that would
// exceed the limit it spends nothing and returns when enough units free up.
func (s *Server) chargeQuota(u *user, units int) (ok bool, retryAt time.Time) {
	limit := s.opts.GmailQuotaPerMinute
	if limit < 0 {
		return true, time.Time{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	cutoff := now.Add(-quotaWindow)
	keep := u.quota[:0]
	spent := 0
	for _, q := range u.quota {
		if q.at.After(cutoff) {
			keep = append(keep, q)
			spent += q.units
		}
	}
	u.quota = keep
	if spent+units <= limit {
		u.quota = append(u.quota, quotaUse{at: now, units: units})
		return true, time.Time{}
	}
	for _, q := range u.quota {
		spent -= q.units
		if spent+units <= limit {
			return false, q.at.Add(quotaWindow)
		}
	}
	return false, now.Add(quotaWindow) // units alone exceed the limit
}

// quotaExceeded is Gmail's answer when a user's per-minute quota is spent.
func quotaExceeded(retryAt time.Time) apiError {
	msg := "User-rate limit exceeded.  Retry after " + retryAt.UTC().Format("2006-01-02T15:04:05.000Z")
	return apiError{
		Code:    http.StatusTooManyRequests,
		Message: msg,
		Errors:  []apiErrorItem{{Message: msg, Domain: "usageLimits", Reason: "rateLimitExceeded"}},
		Status:  "RESOURCE_EXHAUSTED",
	}
}
