package messages

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		header string
		want   time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"2", 2 * time.Second},
		{" 120 ", 2 * time.Minute},
		{"-5", 0},
		{"99999999999999999", 24 * time.Hour},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"Wed, 21 Oct 2099 07:28:00 GMT", 24 * time.Hour},
		{"soon", 0},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.header != "" {
			h.Set("Retry-After", tt.header)
		}
		if got := parseRetryAfter(h, now); got != tt.want {
			t.Errorf("Retry-After %q = %v, want %v", tt.header, got, tt.want)
		}
	}
}

func TestTransient(t *testing.T) {
	timeout := &url.Error{Op: "Get", URL: "https://x", Err: &net.OpError{Op: "dial", Err: timeoutErr{}}}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"connection reset", &url.Error{Err: &net.OpError{Op: "read", Err: syscall.ECONNRESET}}, true},
		{"connection refused", fmt.Errorf("x: %w", syscall.ECONNREFUSED), true},
		{"cut short", &url.Error{Err: io.ErrUnexpectedEOF}, true},
		{"closed", &url.Error{Err: io.EOF}, true},
		{"timeout", timeout, true},
		{"DNS timeout", &net.DNSError{IsTimeout: true}, true},
		{"no such host", &url.Error{Err: &net.OpError{Op: "dial", Err: &net.DNSError{IsNotFound: true}}}, false},
		{"token refresh failed", &url.Error{Err: errors.New("oauth2: \"invalid_grant\"")}, false},
		{"canceled", &url.Error{Err: context.Canceled}, false},
	}
	for _, tt := range tests {
		if got := transient(tt.err); got != tt.want {
			t.Errorf("%s: transient(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestRedactURLDropsTheQuery(t *testing.T) {
	// http.Client.Do returns the *url.Error as is, and gensupport passes it on.
	err := redactURL(&url.Error{
		Op: "Get", URL: "https://gmail.example/gmail/v1/users/me/messages?q=secret&pageToken=abc", Err: io.EOF,
	})
	if s := err.Error(); strings.Contains(s, "secret") || strings.Contains(s, "abc") || !strings.Contains(s, "/gmail/v1/users/me/messages") {
		t.Errorf("error = %q, want the URL without its query", s)
	}
}

func TestQuotaDropsIdleUsers(t *testing.T) {
	q := newQuota(100)
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	q.reserve("idle", 5, t0)
	q.reserve("drained", 100, t0)
	q.reserve("drained", 50, t0) // waits 30 s: full again only at t0+90s
	q.reserve("active", 5, t0.Add(50*time.Second))
	q.reserve("new", 5, t0.Add(70*time.Second))
	for user, want := range map[string]bool{"idle": false, "drained": true, "active": true, "new": true} {
		if _, got := q.users[user]; got != want {
			t.Errorf("user %q kept = %v, want %v", user, got, want)
		}
	}
	q.reserve("later", 5, t0.Add(10*time.Minute))
	if len(q.users) != 1 {
		t.Errorf("%d users kept after 10 minutes, want 1", len(q.users))
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct {
		in, want Query
	}{
		{Query{}, Query{Limit: DefaultLimit}},
		{Query{MaxResults: 9999, Limit: 99999}, Query{MaxResults: MaxPageSize, Limit: MaxLimit}},
		{Query{MaxResults: -3, Limit: -1}, Query{Limit: DefaultLimit}},
		{Query{Metadata: true, MaxResults: 300, Limit: 1000}, Query{Metadata: true, MaxResults: MaxMetadataResults, Limit: MaxMetadataResults}},
		{Query{Metadata: true, MaxResults: 20, Limit: 30}, Query{Metadata: true, MaxResults: 20, Limit: 30}},
	}
	for _, tt := range tests {
		if got := normalize(tt.in); fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("normalize(%+v) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}
