package messages_test

import (
	"context"
	"encoding/json"
	"net/url"
	"reflect"
	"slices"
	"testing"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/messages"
)

func TestList_PassesParametersExactly(t *testing.T) {
	const fields = "messages(id,threadId),nextPageToken,resultSizeEstimate"
	tests := []struct {
		name string
		q    messages.Query
		want url.Values
	}{
		{
			name: "every parameter",
			q: messages.Query{
				Q: "from:someone is:unread", LabelIDs: []string{"INBOX", "UNREAD"},
				MaxResults: 7, PageToken: "p3", IncludeSpamTrash: true,
			},
			want: url.Values{
				"q": {"from:someone is:unread"}, "labelIds": {"INBOX", "UNREAD"},
				"maxResults": {"7"}, "pageToken": {"p3"}, "includeSpamTrash": {"true"},
			},
		},
		{name: "defaults are left to Gmail", q: messages.Query{}, want: url.Values{}},
		{name: "maxResults clamped to 500", q: messages.Query{MaxResults: 501}, want: url.Values{"maxResults": {"500"}}},
		{name: "negative maxResults is Gmail's default", q: messages.Query{MaxResults: -1}, want: url.Values{}},
		{name: "maxResults with metadata clamped to 250", q: messages.Query{MaxResults: 400, Metadata: true}, want: url.Values{"maxResults": {"250"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fg, srv := newFakeGmail(t, 10)
			c := testClient(srv, newSleeper(), nil)
			if _, err := c.List(context.Background(), srv.Client(), "u", tt.q); err != nil {
				t.Fatal(err)
			}
			if len(fg.listQuery) != 1 {
				t.Fatalf("list calls = %d, want 1", len(fg.listQuery))
			}
			got := fg.listQuery[0]
			want := url.Values{"alt": {"json"}, "prettyPrint": {"false"}, "fields": {fields}}
			for k, v := range tt.want {
				want[k] = v
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("query = %v\nwant    %v", got, want)
			}
		})
	}
}

func TestList_OnePage(t *testing.T) {
	_, srv := newFakeGmail(t, 1234)
	c := testClient(srv, newSleeper(), nil)
	page, err := c.List(context.Background(), srv.Client(), "u", messages.Query{MaxResults: 3, PageToken: "p10"})
	if err != nil {
		t.Fatal(err)
	}
	want := &messages.Page{
		Messages: []messages.Message{
			{ID: "m0010", ThreadID: "tm0010"}, {ID: "m0011", ThreadID: "tm0011"}, {ID: "m0012", ThreadID: "tm0012"},
		},
		NextPageToken:      "p13",
		ResultSizeEstimate: 1224,
	}
	if !reflect.DeepEqual(page, want) {
		t.Errorf("page = %+v, want %+v", page, want)
	}
}

func TestList_EmptyMailboxEncodesEmptyArray(t *testing.T) {
	for _, all := range []bool{false, true} {
		_, srv := newFakeGmail(t, 0)
		c := testClient(srv, newSleeper(), nil)
		page, err := c.List(context.Background(), srv.Client(), "u", messages.Query{All: all})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(page)
		if got, want := string(b), `{"messages":[],"resultSizeEstimate":0}`; got != want {
			t.Errorf("All=%v: JSON = %s, want %s", all, got, want)
		}
	}
}

func TestList_AllPages(t *testing.T) {
	tests := []struct {
		name      string
		n         int    // messages in the mailbox
		limit     int    // Query.Limit
		start     string // Query.PageToken
		wantCalls []string
		wantFirst int // index of the first message listed
		wantCount int
		wantNext  string
		wantEstim int64
	}{
		{name: "empty mailbox: one call", n: 0, wantCalls: []string{"500"}, wantCount: 0},
		{name: "1 message", n: 1, wantCalls: []string{"500"}, wantCount: 1, wantEstim: 1},
		{name: "500 messages: one call", n: 500, wantCalls: []string{"500"}, wantCount: 500, wantEstim: 500},
		{name: "501 messages: two calls", n: 501, wantCalls: []string{"500", "500"}, wantCount: 501, wantEstim: 501},
		{name: "1234 messages: three calls", n: 1234, wantCalls: []string{"500", "500", "500"}, wantCount: 1234, wantEstim: 1234},
		{name: "limit equal to mailbox", n: 1234, limit: 1234, wantCalls: []string{"500", "500", "234"}, wantCount: 1234, wantEstim: 1234},
		{name: "limit 600 stops after two calls", n: 1234, limit: 600, wantCalls: []string{"500", "100"}, wantCount: 600, wantNext: "p600", wantEstim: 1234},
		{name: "continuing from 600 lists the rest", n: 1234, limit: 5000, start: "p600", wantCalls: []string{"500", "500"}, wantFirst: 600, wantCount: 634, wantEstim: 634},
		{name: "limit 500 stops after one call", n: 1234, limit: 500, wantCalls: []string{"500"}, wantCount: 500, wantNext: "p500", wantEstim: 1234},
		{name: "limit 1", n: 1234, limit: 1, wantCalls: []string{"1"}, wantCount: 1, wantNext: "p1", wantEstim: 1234},
		{name: "limit clamped to MaxLimit", n: 10001, limit: 20000, wantCalls: slices.Repeat([]string{"500"}, 20), wantCount: messages.MaxLimit, wantNext: "p10000", wantEstim: 10001},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fg, srv := newFakeGmail(t, tt.n)
			c := testClient(srv, newSleeper(), nil)
			q := messages.Query{All: true, Limit: tt.limit, PageToken: tt.start, MaxResults: 10}
			page, err := c.List(context.Background(), srv.Client(), "u", q)
			if err != nil {
				t.Fatal(err)
			}
			var calls []string
			for _, q := range fg.listQuery {
				calls = append(calls, q.Get("maxResults"))
			}
			if !slices.Equal(calls, tt.wantCalls) {
				t.Errorf("maxResults of the list calls = %v, want %v", calls, tt.wantCalls)
			}
			if len(page.Messages) != tt.wantCount {
				t.Fatalf("got %d messages, want %d", len(page.Messages), tt.wantCount)
			}
			for i, m := range page.Messages {
				if want := id(tt.wantFirst + i); m.ID != want {
					t.Fatalf("message %d = %s, want %s (each once, in order)", i, m.ID, want)
				}
			}
			if page.NextPageToken != tt.wantNext {
				t.Errorf("nextPageToken = %q, want %q", page.NextPageToken, tt.wantNext)
			}
			if page.ResultSizeEstimate != tt.wantEstim {
				t.Errorf("resultSizeEstimate = %d, want %d (from the first page)", page.ResultSizeEstimate, tt.wantEstim)
			}
		})
	}
}

func TestList_MetadataFillsHeadersInOrder(t *testing.T) {
	const n, concurrency = 40, 3
	fg, srv := newFakeGmail(t, n)
	fg.deleted["m0005"], fg.deleted["m0017"] = true, true
	fg.delay = 200_000 // 0.2 ms, so that gets overlap
	c := testClient(srv, newSleeper(), func(o *messages.Options) { o.MetadataConcurrency = concurrency })

	page, err := c.List(context.Background(), srv.Client(), "u", messages.Query{MaxResults: n, Metadata: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := fg.gets.Load(); got != n {
		t.Errorf("get calls = %d, want %d", got, n)
	}
	if fg.mostInFlight() > concurrency {
		t.Errorf("at most %d gets in flight, want ≤ %d", fg.mostInFlight(), concurrency)
	}
	var want []messages.Message
	for i := range n {
		mid := id(i)
		if fg.deleted[mid] {
			continue
		}
		want = append(want, messages.Message{
			ID: mid, ThreadID: "t" + mid,
			From: "sender" + mid + "@example.com", To: "demo@example.com",
			Subject: "subject " + mid, Date: "Mon, 2 Jan 2006 15:04:05 -0700",
			Snippet: "snippet " + mid,
		})
	}
	if !reflect.DeepEqual(page.Messages, want) {
		t.Errorf("messages =\n%+v\nwant\n%+v", page.Messages, want)
	}
	wantGet := url.Values{
		"alt": {"json"}, "prettyPrint": {"false"}, "format": {"metadata"},
		"metadataHeaders": {"From", "To", "Subject", "Date"},
		"fields":          {"id,threadId,snippet,payload/headers"},
	}
	if got := fg.getQuery[0]; !reflect.DeepEqual(got, wantGet) {
		t.Errorf("get query = %v, want %v", got, wantGet)
	}
}

func TestList_MetadataLimitsAllToOneMinuteOfQuota(t *testing.T) {
	fg, srv := newFakeGmail(t, 1234)
	c := testClient(srv, newSleeper(), nil)
	page, err := c.List(context.Background(), srv.Client(), "u", messages.Query{All: true, Metadata: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) != messages.MaxMetadataResults || page.NextPageToken != "p250" {
		t.Errorf("got %d messages and token %q, want %d and p250", len(page.Messages), page.NextPageToken, messages.MaxMetadataResults)
	}
	if got := fg.spent(); got > messages.DefaultQuotaPerMinute {
		t.Errorf("spent %d units, want ≤ %d", got, messages.DefaultQuotaPerMinute)
	}
}
