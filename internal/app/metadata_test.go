package app

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/config"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/fakegoogle"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/messages"
)

// rfc5322Date is how the Date header of a message reads (and how the fake
// Google writes it).
const rfc5322Date = "Mon, 2 Jan 2006 15:04:05 -0700"

// knownMailbox is n messages with distinct headers and snippets, newest
// first: message i is i hours older than the newest.
func knownMailbox(n int) []fakegoogle.Message {
	newest := time.Date(2025, time.March, 14, 15, 9, 26, 0, time.UTC)
	msgs := make([]fakegoogle.Message, n)
	for i := range msgs {
		msgs[i] = fakegoogle.Message{
			ID:       fmt.Sprintf("m%04d", n-i), // sorts with the date, like Gmail's IDs
			ThreadID: fmt.Sprintf("t%04d", (n-i+1)/2),
			From:     fmt.Sprintf("Sender %d <sender%d@example.org>", i, i),
			To:       fmt.Sprintf("Demo <%s>", demo),
			Subject:  fmt.Sprintf("Subject %d: ünïcode ✓ & <angles>", i),
			Snippet:  fmt.Sprintf("The start of message %d's body", i),
			Date:     newest.Add(-time.Duration(i) * time.Hour),
			LabelIDs: []string{"INBOX"},
		}
	}
	return msgs
}

// metadataHarness is a harness whose demo user has mailbox and is logged in.
func metadataHarness(t testing.TB, mailbox []fakegoogle.Message, opts ...harnessOpt) *harness {
	t.Helper()
	h := newHarness(t, opts...)
	h.fake.SetMailbox(demo, mailbox)
	wantStatus(t, h.login(demo), http.StatusOK)
	h.fake.ResetCounts()
	h.store.ResetOps()
	return h
}

func TestListMessages_Metadata_FieldsFromTheMailboxInPageOrder(t *testing.T) {
	mailbox := knownMailbox(12)
	h := metadataHarness(t, mailbox, func(c *config.Config, _ *Deps) { c.GmailBatchSize = 5 })
	// Answer the batch of the first messages last, so that completion
	// order is not page order.
	h.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/batch/gmail/v1" {
			b, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(b))
			if bytes.Contains(b, []byte("/messages/"+mailbox[0].ID+"?")) {
				time.Sleep(30 * time.Millisecond)
			}
		}
		return false
	})

	resp := h.get("/ListMessages?format=metadata&maxResults=10", "Accept", jsonAccept)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body(resp))
	}
	p := decode[messages.Page](t, resp)
	if len(p.Messages) != 10 || p.NextPageToken == "" || p.ResultSizeEstimate != 12 {
		t.Fatalf("%d messages, nextPageToken %q, estimate %d; want 10, a token, 12", len(p.Messages), p.NextPageToken, p.ResultSizeEstimate)
	}
	for i, got := range p.Messages {
		m := mailbox[i] // the mailbox is newest first, as Gmail lists it
		want := messages.Message{ID: m.ID, ThreadID: m.ThreadID, Metadata: &messages.Metadata{From: m.From, To: m.To, Subject: m.Subject,
			Date: m.Date.Format(rfc5322Date), Snippet: m.Snippet}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("message %d:\n got %+v\nwant %+v", i, got, want)
		}
	}
	wantCalls(t, h, map[string]int{fakegoogle.CountGmailList: 1, fakegoogle.CountGmailBatch: 2, fakegoogle.CountGmailBatchPart: 10})

	// The same page without metadata: same IDs in the same order, and no
	// metadata fields at all.
	h.setIntercept(nil)
	h.fake.ResetCounts()
	plain := decode[messages.Page](t, h.get("/ListMessages?maxResults=10", "Accept", jsonAccept))
	for i, m := range plain.Messages {
		if m != (messages.Message{ID: p.Messages[i].ID, ThreadID: p.Messages[i].ThreadID}) {
			t.Errorf("plain message %d is %+v, want only the id and threadId of %+v", i, m, p.Messages[i])
		}
	}
	wantCalls(t, h, map[string]int{fakegoogle.CountGmailList: 1})

	// The second page continues where the first stopped.
	rest := decode[messages.Page](t, h.get("/ListMessages?format=metadata&maxResults=10&pageToken="+p.NextPageToken, "Accept", jsonAccept))
	if len(rest.Messages) != 2 || rest.NextPageToken != "" || rest.Messages[0].Subject != mailbox[10].Subject || rest.Messages[1].Subject != mailbox[11].Subject {
		t.Fatalf("second page %+v", rest)
	}
}

func TestListMessages_Metadata_AllPagesUpToLimit(t *testing.T) {
	mailbox := knownMailbox(30)
	h := metadataHarness(t, mailbox)
	p := decode[messages.Page](t, h.get("/ListMessages?format=metadata&all=true&limit=25", "Accept", jsonAccept))
	if len(p.Messages) != 25 || p.NextPageToken == "" {
		t.Fatalf("%d messages, nextPageToken %q; want 25 and a token", len(p.Messages), p.NextPageToken)
	}
	for i, m := range p.Messages {
		if m.ID != mailbox[i].ID || m.Subject != mailbox[i].Subject {
			t.Fatalf("message %d is %+v, want %s %q", i, m, mailbox[i].ID, mailbox[i].Subject)
		}
	}
	wantCalls(t, h, map[string]int{fakegoogle.CountGmailList: 1, fakegoogle.CountGmailBatch: 1, fakegoogle.CountGmailBatchPart: 25})
}

// wantCalls fails unless the fake Google's counters since the last reset
// are want exactly, then resets them.
func wantCalls(t *testing.T, h *harness, want map[string]int) {
	t.Helper()
	if got := h.fake.Counts(); !maps.Equal(got, want) {
		t.Errorf("calls to Google %v, want %v", got, want)
	}
	h.fake.ResetCounts()
}

// TestListMessages_Metadata_QuotaBudget: with metadata one request may list
// at most 250 messages, so that it fits one minute of Gmail's per-user
// quota (5 + 250×20 = 5005 ≤ 6000 units). More is refused before Google
// is called; exactly 250 is served without a rate limit.
func TestListMessages_Metadata_QuotaBudget(t *testing.T) {
	h := loggedIn(t) // the seeded demo mailbox: 1234 messages
	for _, q := range []string{
		"format=metadata&maxResults=251",
		"format=metadata&maxResults=500",
		"format=metadata&all=true&limit=251",
		"format=metadata&all=true", // the default limit is 5000
	} {
		resp := h.get("/ListMessages?"+q, "Accept", jsonAccept)
		if e := decode[apiError](t, resp); resp.StatusCode != http.StatusBadRequest || e.Code != "invalid_request" || !strings.Contains(e.Description, "250") {
			t.Errorf("%s: %d %+v; want 400 invalid_request naming the limit of 250", q, resp.StatusCode, e)
		}
	}
	if n := len(h.fake.Counts()); n != 0 {
		t.Fatalf("refused requests reached Google: %v", h.fake.Counts())
	}

	resp := h.get("/ListMessages?format=metadata&maxResults=250&includeSpamTrash=true", "Accept", jsonAccept)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("250 messages with metadata: status %d: %s", resp.StatusCode, body(resp))
	}
	p := decode[messages.Page](t, resp)
	if len(p.Messages) != 250 || p.NextPageToken == "" {
		t.Fatalf("%d messages, nextPageToken %q", len(p.Messages), p.NextPageToken)
	}
	for i, m := range p.Messages {
		if m.Metadata == nil || m.From == "" || m.Subject == "" || m.Date == "" {
			t.Fatalf("message %d lacks metadata: %+v", i, m)
		}
	}
	// 5005 quota units: 1 list and 250 gets, in 5 batches of 50.
	wantCalls(t, h, map[string]int{fakegoogle.CountGmailList: 1, fakegoogle.CountGmailBatch: 5, fakegoogle.CountGmailBatchPart: 250})
}

// TestListMessages_Metadata_ConcurrencyBounded: with batches of 5
// (GMAIL_BATCH_SIZE) and GMAIL_METADATA_CONCURRENCY=3, 30 messages go in 6
// batches, never more than 3 in flight at once.
func TestListMessages_Metadata_ConcurrencyBounded(t *testing.T) {
	const limit = 3
	h := metadataHarness(t, knownMailbox(30), func(c *config.Config, _ *Deps) {
		c.MetadataConcurrency, c.GmailBatchSize = limit, 5
	})
	var inFlight, peak atomic.Int32
	h.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/batch/gmail/v1" {
			return false
		}
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(5 * time.Millisecond) // let the batches overlap
		h.fake.ServeHTTP(w, r)
		return true
	})
	p := decode[messages.Page](t, h.get("/ListMessages?format=metadata&maxResults=30", "Accept", jsonAccept))
	if len(p.Messages) != 30 || p.Messages[29].Metadata == nil || p.Messages[29].Subject == "" {
		t.Fatalf("%d messages, want 30 with metadata", len(p.Messages))
	}
	wantCalls(t, h, map[string]int{fakegoogle.CountGmailList: 1, fakegoogle.CountGmailBatch: 6, fakegoogle.CountGmailBatchPart: 30})
	if got := peak.Load(); got > limit || got < 2 {
		t.Fatalf("at most %d batch requests were in flight at once; want 2..%d (concurrent, but bounded)", got, limit)
	}
}

// TestListMessages_Metadata_FailedPartsAloneSentAgain: of 250 messages in
// 5 batches, the three whose calls Gmail fails (429, 500, 503) are sent
// again, alone, in a sixth batch; the request succeeds within the quota.
func TestListMessages_Metadata_FailedPartsAloneSentAgain(t *testing.T) {
	mailbox := knownMailbox(250)
	h := metadataHarness(t, mailbox)
	fastRetries(h, time.Millisecond)
	h.fake.FailMessage(mailbox[3].ID, fakegoogle.Fault{Status: http.StatusTooManyRequests}, 1)
	h.fake.FailMessage(mailbox[120].ID, fakegoogle.Fault{Status: http.StatusInternalServerError}, 1)
	h.fake.FailMessage(mailbox[249].ID, fakegoogle.Fault{Status: http.StatusServiceUnavailable}, 1)
	resp := h.get("/ListMessages?format=metadata&maxResults=250", "Accept", jsonAccept)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body(resp))
	}
	p := decode[messages.Page](t, resp)
	for i, m := range p.Messages {
		if m.ID != mailbox[i].ID || m.Subject != mailbox[i].Subject {
			t.Fatalf("message %d is %+v, want %s with its metadata", i, m, mailbox[i].ID)
		}
	}
	wantCalls(t, h, map[string]int{fakegoogle.CountGmailList: 1, fakegoogle.CountGmailBatch: 6, fakegoogle.CountGmailBatchPart: 253})
}

// TestListMessages_Metadata_DeletedMessageWithoutMetadata: a message
// deleted between the list and its get (404) is listed without metadata,
// and the request succeeds.
func TestListMessages_Metadata_DeletedMessageWithoutMetadata(t *testing.T) {
	mailbox := knownMailbox(10)
	h := metadataHarness(t, mailbox)
	h.fake.FailMessage(mailbox[4].ID, fakegoogle.Fault{Status: http.StatusNotFound}, 1)
	resp := h.get("/ListMessages?format=metadata", "Accept", jsonAccept)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body(resp))
	}
	p := decode[messages.Page](t, resp)
	if len(p.Messages) != 10 {
		t.Fatalf("%d messages, want 10", len(p.Messages))
	}
	for i, m := range p.Messages {
		if (m.Metadata == nil) != (i == 4) || m.ID != mailbox[i].ID || (m.Metadata != nil && m.Subject == "") {
			t.Errorf("message %d: %+v; want metadata on all but message 4", i, m)
		}
	}
	if m := p.Messages[4]; m != (messages.Message{ID: mailbox[4].ID, ThreadID: mailbox[4].ThreadID}) {
		t.Errorf("deleted message listed as %+v, want its id and threadId alone", m)
	}
	wantCalls(t, h, map[string]int{fakegoogle.CountGmailList: 1, fakegoogle.CountGmailBatch: 1, fakegoogle.CountGmailBatchPart: 10})
}

// TestListMessages_Metadata_TokenRefusedInTheBatch: Gmail answers the batch
// request 200 and refuses the access token in each part (401). The token
// is refreshed once and the parts sent once more; if Gmail refuses the new
// token too, the user must authorize again.
func TestListMessages_Metadata_TokenRefusedInTheBatch(t *testing.T) {
	for _, again := range []bool{false, true} {
		t.Run(fmt.Sprintf("refused again %v", again), func(t *testing.T) {
			h := metadataHarness(t, knownMailbox(10))
			var batches atomic.Int32
			h.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
				if r.URL.Path == "/batch/gmail/v1" && (batches.Add(1) == 1 || again) {
					h.fake.ExpireAccessTokens(demo) // after the list, before the parts
				}
				return false
			})
			resp := h.get("/ListMessages?format=metadata", "Accept", jsonAccept)
			if again {
				if e := decode[apiError](t, resp); resp.StatusCode != http.StatusUnauthorized || e.Code != "reauthorization_required" {
					t.Fatalf("status %d %+v, want 401 reauthorization_required", resp.StatusCode, e)
				}
			} else if p := decode[messages.Page](t, resp); resp.StatusCode != http.StatusOK || len(p.Messages) != 10 || p.Messages[9].Metadata == nil || p.Messages[9].Subject == "" {
				t.Fatalf("status %d, page %+v; want 10 messages with metadata", resp.StatusCode, p)
			}
			wantCalls(t, h, map[string]int{fakegoogle.CountGmailList: 1, fakegoogle.CountTokenRefresh: 1,
				fakegoogle.CountGmailBatch: 2, fakegoogle.CountGmailBatchPart: 20})
		})
	}
}

// fastRetries replaces the App's Gmail client with one whose first backoff
// is d instead of Google's 1 s. The retry base is not a setting (see
// messages.Options.RetryBase), so tests reach into the App for it.
func fastRetries(h *harness, d time.Duration) {
	h.app.mail = messages.New(messages.Options{
		Endpoint:            h.cfg.Endpoints.Gmail,
		MetadataConcurrency: h.cfg.MetadataConcurrency,
		BatchSize:           h.cfg.GmailBatchSize,
		RetryBudget:         5 * time.Second, // the failed calls count too, and take long on a busy machine
		RetryBase:           d,
	})
}

// TestListMessages_TransientGmailFault_RetriedAndSucceeds: one rate limit
// or server error is retried, and the caller gets the page.
func TestListMessages_TransientGmailFault_RetriedAndSucceeds(t *testing.T) {
	faults := []fakegoogle.Fault{
		{Status: http.StatusTooManyRequests},
		{Status: http.StatusForbidden, Reason: "rateLimitExceeded"},
		{Status: http.StatusForbidden, Reason: "userRateLimitExceeded"},
		{Status: http.StatusInternalServerError},
		{Status: http.StatusServiceUnavailable},
	}
	for _, f := range faults {
		t.Run(fmt.Sprintf("%d%s", f.Status, f.Reason), func(t *testing.T) {
			t.Run("list", func(t *testing.T) {
				h := loggedIn(t)
				fastRetries(h, time.Millisecond)
				h.fake.InjectGmailFault(f, 1)
				resp := h.get("/ListMessages?maxResults=5", "Accept", jsonAccept)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %d: %s", resp.StatusCode, body(resp))
				}
				if p := decode[messages.Page](t, resp); len(p.Messages) != 5 {
					t.Fatalf("%d messages, want 5", len(p.Messages))
				}
				if n := h.fake.Count(fakegoogle.CountGmailList); n != 2 {
					t.Fatalf("%d list calls, want 2 (the fault, then the retry)", n)
				}
			})
			t.Run("metadata get", func(t *testing.T) {
				h := metadataHarness(t, knownMailbox(5))
				fastRetries(h, time.Millisecond)
				h.fake.FailMessage("m0003", f, 1)
				p := decode[messages.Page](t, h.get("/ListMessages?format=metadata", "Accept", jsonAccept))
				if len(p.Messages) != 5 || p.Messages[2].ID != "m0003" || p.Messages[2].Metadata == nil || p.Messages[2].Subject == "" {
					t.Fatalf("page %+v", p)
				}
				// 5 parts, then the failed one again.
				wantCalls(t, h, map[string]int{fakegoogle.CountGmailList: 1, fakegoogle.CountGmailBatch: 2, fakegoogle.CountGmailBatchPart: 6})
			})
		})
	}
}

// TestListMessages_RateLimited_WaitsRetryAfterWithGooglesBackoff runs the
// App's own Gmail client (first backoff 1 s, not shortened): a 429 asking
// for Retry-After: 1 is waited out within GMAIL_RETRY_BUDGET and the
// request succeeds. It is the one test that sleeps a real second.
func TestListMessages_RateLimited_WaitsRetryAfterWithGooglesBackoff(t *testing.T) {
	h := loggedIn(t, func(c *config.Config, _ *Deps) { c.GmailRetryBudget = 2 * time.Second })
	h.fake.InjectGmailFault(fakegoogle.Fault{Status: http.StatusTooManyRequests, RetryAfter: "1"}, 1)
	start := time.Now()
	resp := h.get("/ListMessages?maxResults=5", "Accept", jsonAccept)
	took := time.Since(start)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body(resp))
	}
	if n := h.fake.Count(fakegoogle.CountGmailList); n != 2 {
		t.Fatalf("%d list calls, want 2", n)
	}
	if took < time.Second {
		t.Fatalf("answered after %v: Retry-After: 1 was not waited out", took)
	}
}
