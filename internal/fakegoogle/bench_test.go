package fakegoogle

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkGmailList measures one users.messages.list of 500 messages
// through the handler, without the network.
func BenchmarkGmailList(b *testing.B) {
	fake := New(Options{GmailQuotaPerMinute: -1})
	fake.mu.Lock()
	u := fake.userLocked(DemoEmail)
	token := fake.issueAccessLocked(u, []string{GmailReadonlyScope}).value
	fake.mu.Unlock()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodGet, "/gmail/v1/users/me/messages?maxResults=500&q=is:unread", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			rec := httptest.NewRecorder()
			fake.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
		}
	})
}

// BenchmarkRefresh measures one refresh_token grant with an id_token.
func BenchmarkRefresh(b *testing.B) {
	fake := New(Options{})
	fake.mu.Lock()
	u := fake.userLocked(DemoEmail)
	refresh := fake.issueRefreshLocked(u, []string{EmailScope, OpenIDScope, GmailReadonlyScope}).value
	fake.mu.Unlock()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader("grant_type=refresh_token&refresh_token="+refresh+"&client_id="+fake.ClientID()+"&client_secret="+fake.ClientSecret()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			rec := httptest.NewRecorder()
			fake.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
		}
	})
}
