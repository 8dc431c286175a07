package messages_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

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
	const n, batchSize, concurrency = 40, 7, 3
	fg, srv := newFakeGmail(t, n)
	fg.deleted["m0005"], fg.deleted["m0017"] = true, true
	fg.delay = 2 * time.Millisecond // so that batches overlap
	fg.reverse = true               // answers matched by Content-ID, not order
	c := testClient(srv, newSleeper(), func(o *messages.Options) {
		o.BatchSize = batchSize
		o.MetadataConcurrency = concurrency
	})

	page, err := c.List(context.Background(), srv.Client(), "u", messages.Query{MaxResults: n, Metadata: true})
	if err != nil {
		t.Fatal(err)
	}
	if b, g := fg.batches.Load(), fg.gets.Load(); b != (n+batchSize-1)/batchSize || g != n {
		t.Errorf("%d batches of %d gets in all, want %d of %d", b, g, (n+batchSize-1)/batchSize, n)
	}
	if most := fg.mostInFlight(); most > concurrency || most < 2 {
		t.Errorf("at most %d batches in flight, want 2..%d", most, concurrency)
	}
	var want []messages.Message
	for i := range n {
		mid := id(i)
		if fg.deleted[mid] {
			// Deleted since it was listed: kept, without metadata.
			want = append(want, messages.Message{ID: mid, ThreadID: "t" + mid})
			continue
		}
		want = append(want, messages.Message{
			ID: mid, ThreadID: "t" + mid,
			Metadata: &messages.Metadata{
				From: "sender" + mid + "@example.com", To: "demo@example.com",
				Subject: "subject " + mid, Date: "Mon, 2 Jan 2006 15:04:05 -0700",
				Snippet: "snippet " + mid,
			},
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

func TestList_MetadataBatchSizes(t *testing.T) {
	tests := []struct {
		name      string
		batchSize int // Options.BatchSize
		n         int
		want      []int // parts of each batch
	}{
		{name: "default 50: 250 in 5", n: 250, want: []int{50, 50, 50, 50, 50}},
		{name: "default 50: 50 in 1", n: 50, want: []int{50}},
		{name: "default 50: 51 in 2", n: 51, want: []int{50, 1}},
		{name: "100: 250 in 3", batchSize: 100, n: 250, want: []int{100, 100, 50}},
		{name: "over 100 is 100", batchSize: 500, n: 250, want: []int{100, 100, 50}},
		{name: "1: one a batch", batchSize: 1, n: 3, want: []int{1, 1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fg, srv := newFakeGmail(t, tt.n)
			c := testClient(srv, newSleeper(), func(o *messages.Options) {
				o.BatchSize = tt.batchSize
				o.MetadataConcurrency = 1 // batches in order
			})
			page, err := c.List(context.Background(), srv.Client(), "u", messages.Query{MaxResults: int64(tt.n), Metadata: true})
			if err != nil {
				t.Fatal(err)
			}
			var sizes []int
			var ids []string
			for _, b := range fg.batched() {
				sizes = append(sizes, len(b))
				ids = append(ids, b...)
			}
			if !slices.Equal(sizes, tt.want) || fg.lists.Load() != 1 {
				t.Errorf("1 list and batches of %v, want %d list and batches of %v", sizes, fg.lists.Load(), tt.want)
			}
			for i, m := range page.Messages {
				if m.ID != id(i) || ids[i] != id(i) || m.Metadata == nil || m.Subject != "subject "+id(i) {
					t.Fatalf("message %d: %+v, batched as %s; want %s with its metadata, once each, in order", i, m, ids[i], id(i))
				}
			}
		})
	}
}

// bearer authorizes every request with a fixed token, and replaces it when
// asked to (messages.TokenRefresher).
type bearer struct {
	next      http.RoundTripper
	mu        sync.Mutex
	token     string
	refreshes int
	fail      error // what RefreshToken returns
}

func (b *bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	b.mu.Lock()
	tok := b.token
	b.mu.Unlock()
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+tok)
	return b.next.RoundTrip(r)
}

func (b *bearer) RefreshToken(context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refreshes++
	b.token += "+"
	return b.fail
}

func TestList_MetadataBatchCarriesTheTokenItsPartsNone(t *testing.T) {
	fg, srv := newFakeGmail(t, 3)
	hc := &http.Client{Transport: &bearer{next: srv.Client().Transport, token: "tok"}}
	if _, err := testClient(srv, newSleeper(), nil).List(context.Background(), hc, "u", messages.Query{Metadata: true}); err != nil {
		t.Fatal(err)
	}
	if len(fg.batchAuth) != 1 || fg.batchAuth[0] != "Bearer tok" {
		t.Errorf("batch requests' Authorization = %q, want one \"Bearer tok\"", fg.batchAuth)
	}
	if len(fg.partHeader) != 3 {
		t.Fatalf("%d parts, want 3", len(fg.partHeader))
	}
	for _, h := range fg.partHeader {
		if h.Get("Authorization") != "" || h.Get("User-Agent") != "" {
			t.Errorf("a part has its own headers %v; want the batch request's to apply", h)
		}
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
