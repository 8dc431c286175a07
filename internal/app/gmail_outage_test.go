package app

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/config"
)

// TestGmailNotAnswering_503WithRetryAfterWithinBudget: every HTTP call to
// Gmail has a deadline of its own (GMAIL_ATTEMPT_TIMEOUT), so a Gmail that
// stops answering, for the list or for the gets of format=metadata, is
// answered 503 unavailable with Retry-After within GMAIL_RETRY_BUDGET (plus
// a margin for a busy machine), after one retry; and the next request after
// Gmail answers again gets its 200.
func TestGmailNotAnswering_503WithRetryAfterWithinBudget(t *testing.T) {
	const (
		budget  = 4 * time.Second // GMAIL_RETRY_BUDGET
		attempt = time.Second     // GMAIL_ATTEMPT_TIMEOUT
		margin  = time.Second     // scheduling, a busy machine
	)
	for _, target := range []string{
		"/ListMessages?maxResults=5",
		"/ListMessages?maxResults=5&format=metadata",
	} {
		t.Run(target, func(t *testing.T) {
			h := loggedIn(t, func(c *config.Config, _ *Deps) {
				c.GmailRetryBudget, c.GmailAttemptTimeout = budget, attempt
			})
			h.fake.SetGmailLatency(time.Hour)
			begin := time.Now()
			resp := h.get(target, "Accept", jsonAccept)
			took := time.Since(begin)
			b := wantStatus(t, resp, http.StatusServiceUnavailable)
			if !strings.Contains(b, `"error":"unavailable"`) || resp.Header.Get("Retry-After") == "" {
				t.Errorf("answer %s with Retry-After %q, want unavailable with Retry-After", b, resp.Header.Get("Retry-After"))
			}
			// An attempt, a backoff of 0.5 to 1 s and a second attempt;
			// then the budget holds no further backoff and whole attempt.
			switch {
			case took > budget+margin:
				t.Errorf("answered after %v, want within the budget %v", took, budget)
			case took < 2*attempt+budget/8:
				t.Errorf("answered after %v: no retry within the budget", took)
			default:
				t.Logf("503 after %v", took.Round(time.Millisecond))
			}
			h.fake.SetGmailLatency(0)
			wantStatus(t, h.get(target, "Accept", jsonAccept), http.StatusOK)
		})
	}
}
