package fakegoogle

import (
	"bytes"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"strings"
	"testing"
)

// gmailBenchFake returns a fake without a Gmail quota, its demo user, and
// an access token of the user for the Gmail read-only scope.
func gmailBenchFake() (*Server, *user, string) {
	fake := New(Options{GmailQuotaPerMinute: -1})
	fake.mu.Lock()
	defer fake.mu.Unlock()
	u := fake.userLocked(DemoEmail)
	return fake, u, fake.issueAccessLocked(u, []string{GmailReadonlyScope}).value
}

// BenchmarkGmailList measures one users.messages.list of 500 messages
// through the handler, without the network.
func BenchmarkGmailList(b *testing.B) {
	fake, _, token := gmailBenchFake()
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

// BenchmarkGmailBatch measures one batch of 50 users.messages.get calls in
// format=metadata, as ListMessages sends them, through the handler,
// without the network: reading the batch, serving each part, writing the
// answer.
func BenchmarkGmailBatch(b *testing.B) {
	fake, u, token := gmailBenchFake()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for i, m := range fake.mailboxOf(u).msgs[:50] {
		pw, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/http"}, "Content-Id": {fmt.Sprintf("<item-%d>", i)}})
		fmt.Fprintf(pw, "GET /gmail/v1/users/me/messages/%s?fields=id%%2CthreadId%%2Csnippet%%2Cpayload%%2Fheaders&format=metadata&metadataHeaders=From&metadataHeaders=To&metadataHeaders=Subject&metadataHeaders=Date HTTP/1.1\r\nHost: gmail.googleapis.com\r\n\r\n", m.ID)
	}
	mw.Close()
	contentType := "multipart/mixed; boundary=" + mw.Boundary()
	b.ReportAllocs()
	b.SetBytes(int64(body.Len()))
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/batch/gmail/v1", bytes.NewReader(body.Bytes()))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", contentType)
		rec := httptest.NewRecorder()
		fake.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || strings.Count(rec.Body.String(), "HTTP/1.1 200 OK") != 50 {
			b.Fatalf("status %d: %.500s", rec.Code, rec.Body)
		}
	}
}
