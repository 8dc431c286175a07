package messages_test

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/fakegoogle"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/messages"
)

// e2e is the fake Google with a user's authorized client.
type e2e struct {
	fake *fakegoogle.Server
	ts   *httptest.Server
	hc   *http.Client // authorizes as fakegoogle.DemoEmail
	sub  string
}

// newE2E starts the fake Google and authorizes fakegoogle.DemoEmail for
// scopes through its authorization and token endpoints.
func newE2E(t *testing.T, opts fakegoogle.Options, scopes ...string) *e2e {
	t.Helper()
	if scopes == nil {
		scopes = []string{"openid", "email", fakegoogle.GmailReadonlyScope}
	}
	opts.AutoApprove = true
	fake, ts := fakegoogle.NewTestServer(t, opts)
	conf, err := google.ConfigFromJSON(fake.ClientSecretJSON(ts.URL, "http://localhost:8080/callback"), scopes...)
	if err != nil {
		t.Fatal(err)
	}
	browser := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := browser.Get(conf.AuthCodeURL("state", oauth2.AccessTypeOffline, oauth2.SetAuthURLParam("login_hint", fakegoogle.DemoEmail)))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	loc, err := url.Parse(res.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("authorization: status %d, Location %q", res.StatusCode, res.Header.Get("Location"))
	}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, ts.Client())
	tok, err := conf.Exchange(ctx, loc.Query().Get("code"))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	return &e2e{fake: fake, ts: ts, hc: conf.Client(ctx, tok), sub: fake.UserSub(fakegoogle.DemoEmail)}
}

func (e *e2e) client(tweak func(*messages.Options)) *messages.Client {
	opts := messages.Options{
		Endpoint:    fakegoogle.Endpoints(e.ts.URL).GmailEndpoint,
		RetryBase:   time.Millisecond,
		RetryBudget: 5 * time.Second, // the calls that failed count too, and take long on a busy machine
		Sleep:       func(context.Context, time.Duration) error { return nil },
	}
	if tweak != nil {
		tweak(&opts)
	}
	return messages.New(opts)
}

func TestFakeGoogle_AllPagesOfTheSeededMailbox(t *testing.T) {
	e := newE2E(t, fakegoogle.Options{})
	c := e.client(nil)
	ctx := context.Background()

	all, err := c.List(ctx, e.hc, e.sub, messages.Query{All: true, IncludeSpamTrash: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := e.fake.Count(fakegoogle.CountGmailList); got != 3 {
		t.Errorf("list calls = %d, want 3", got)
	}
	if len(all.Messages) != fakegoogle.DefaultMessagesPerUser || all.NextPageToken != "" {
		t.Fatalf("got %d messages, token %q; want %d, none", len(all.Messages), all.NextPageToken, fakegoogle.DefaultMessagesPerUser)
	}
	if all.ResultSizeEstimate != fakegoogle.DefaultMessagesPerUser {
		t.Errorf("resultSizeEstimate = %d", all.ResultSizeEstimate)
	}

	// Stopping at 600 and continuing gives the same messages, once each.
	e.fake.ResetCounts()
	first, err := c.List(ctx, e.hc, e.sub, messages.Query{All: true, Limit: 600, IncludeSpamTrash: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Messages) != 600 || first.NextPageToken == "" {
		t.Fatalf("limit 600: got %d messages, token %q", len(first.Messages), first.NextPageToken)
	}
	rest, err := c.List(ctx, e.hc, e.sub, messages.Query{All: true, PageToken: first.NextPageToken, IncludeSpamTrash: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := e.fake.Count(fakegoogle.CountGmailList); got != 4 {
		t.Errorf("list calls = %d, want 2 + 2", got)
	}
	joined := append(first.Messages, rest.Messages...)
	if len(joined) != len(all.Messages) {
		t.Fatalf("600 + %d messages, want %d", len(rest.Messages), len(all.Messages))
	}
	for i := range joined {
		if joined[i].ID != all.Messages[i].ID {
			t.Fatalf("message %d = %s, want %s", i, joined[i].ID, all.Messages[i].ID)
		}
	}
}

func TestFakeGoogle_Metadata(t *testing.T) {
	e := newE2E(t, fakegoogle.Options{})
	e.fake.ResetCounts() // the authorization
	page, err := e.client(nil).List(context.Background(), e.hc, e.sub, messages.Query{MaxResults: 25, Metadata: true})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{fakegoogle.CountGmailList: 1, fakegoogle.CountGmailBatch: 1, fakegoogle.CountGmailBatchPart: 25}
	if got := e.fake.Counts(); len(page.Messages) != 25 || !maps.Equal(got, want) {
		t.Fatalf("got %d messages after %v, want 25 after %v", len(page.Messages), got, want)
	}
	for _, m := range page.Messages {
		if m.Metadata == nil || m.From == "" || m.To == "" || m.Subject == "" || m.Date == "" || m.Snippet == "" {
			t.Errorf("message %+v lacks metadata", m)
		}
	}
}

// TestFakeGoogle_Metadata_PartsFailingAreSentAgain: the parts the fake
// Google fails (a chosen message, or the user's concurrent-request limit)
// are sent again, alone, and a message deleted between list and get is
// listed without metadata.
func TestFakeGoogle_Metadata_PartsFailingAreSentAgain(t *testing.T) {
	tests := []struct {
		name       string
		opts       fakegoogle.Options
		fail       map[int]fakegoogle.Fault // by message index
		wantParts  int
		wantBatch  int
		noMetadata []int // message indexes listed without metadata
	}{
		{
			name:      "three parts fail",
			fail:      map[int]fakegoogle.Fault{3: {Status: 429}, 17: {Status: 500}, 40: {Status: 503, Reason: "backendError"}},
			wantParts: 50 + 3, wantBatch: 2,
		},
		{
			name:      "20 concurrent requests at most: 30, then 10, sent again",
			opts:      fakegoogle.Options{GmailConcurrentRequests: 20},
			wantParts: 50 + 30 + 10, wantBatch: 3,
		},
		{
			name:      "a message deleted: no metadata, not sent again",
			fail:      map[int]fakegoogle.Fault{7: {Status: 404}},
			wantParts: 50, wantBatch: 1,
			noMetadata: []int{7},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newE2E(t, tt.opts)
			c := e.client(func(o *messages.Options) { o.MetadataConcurrency = 1 })
			ctx := context.Background()
			plain, err := c.List(ctx, e.hc, e.sub, messages.Query{MaxResults: 50})
			if err != nil {
				t.Fatal(err)
			}
			for i, f := range tt.fail {
				e.fake.FailMessage(plain.Messages[i].ID, f, 1)
			}
			e.fake.ResetCounts()
			page, err := c.List(ctx, e.hc, e.sub, messages.Query{MaxResults: 50, Metadata: true})
			if err != nil {
				t.Fatal(err)
			}
			if p, b := e.fake.Count(fakegoogle.CountGmailBatchPart), e.fake.Count(fakegoogle.CountGmailBatch); p != tt.wantParts || b != tt.wantBatch {
				t.Errorf("%d parts in %d batches, want %d in %d", p, b, tt.wantParts, tt.wantBatch)
			}
			for i, m := range page.Messages {
				if m.ID != plain.Messages[i].ID {
					t.Fatalf("message %d is %s, want %s", i, m.ID, plain.Messages[i].ID)
				}
				if got, want := m.Metadata != nil && m.Subject != "", !slices.Contains(tt.noMetadata, i); got != want {
					t.Errorf("message %d has metadata: %v, want %v", i, got, want)
				}
			}
		})
	}
}

func TestFakeGoogle_FaultsAreRetried(t *testing.T) {
	tests := []struct {
		name  string
		fault fakegoogle.Fault
	}{
		{"429", fakegoogle.Fault{Status: 429}},
		{"403 rateLimitExceeded", fakegoogle.Fault{Status: 403, Reason: "rateLimitExceeded"}},
		{"403 userRateLimitExceeded", fakegoogle.Fault{Status: 403, Reason: "userRateLimitExceeded"}},
		{"500", fakegoogle.Fault{Status: 500}},
		{"503 with Retry-After", fakegoogle.Fault{Status: 503, RetryAfter: "1"}},
		{"connection dropped", fakegoogle.Fault{Status: 0}},
	}
	const faults = 2
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newE2E(t, fakegoogle.Options{})
			var mu sync.Mutex
			var waits []time.Duration
			c := e.client(func(o *messages.Options) {
				o.RetryBudget = 10 * time.Second // the sleeper does not sleep
				o.Sleep = func(_ context.Context, d time.Duration) error {
					mu.Lock()
					defer mu.Unlock()
					waits = append(waits, d)
					return nil
				}
			})
			e.fake.InjectGmailFault(tt.fault, faults)
			page, err := c.List(context.Background(), e.hc, e.sub, messages.Query{MaxResults: 10})
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Messages) != 10 {
				t.Errorf("got %d messages, want 10", len(page.Messages))
			}
			calls := e.fake.Count(fakegoogle.CountGmailList)
			// A dropped connection that was reused may also be retried
			// once by net/http itself.
			if calls != faults+1 && (tt.fault.Status != 0 || calls < faults+1) {
				t.Errorf("list calls = %d, want %d", calls, faults+1)
			}
			if tt.fault.RetryAfter == "1" && (len(waits) == 0 || waits[0] < time.Second) {
				t.Errorf("waits = %v, want the first ≥ 1 s", waits)
			}
		})
	}
}

func TestFakeGoogle_ErrorsMapped(t *testing.T) {
	t.Run("no Gmail scope", func(t *testing.T) {
		e := newE2E(t, fakegoogle.Options{}, "openid", "email")
		_, err := e.client(nil).List(context.Background(), e.hc, e.sub, messages.Query{})
		if !errors.Is(err, messages.ErrInsufficientScope) || e.fake.Count(fakegoogle.CountGmailList) != 1 {
			t.Errorf("err = %v after %d calls, want ErrInsufficientScope after 1", err, e.fake.Count(fakegoogle.CountGmailList))
		}
	})
	t.Run("access token no longer valid", func(t *testing.T) {
		e := newE2E(t, fakegoogle.Options{})
		e.fake.ExpireAccessTokens(fakegoogle.DemoEmail)
		_, err := e.client(nil).List(context.Background(), e.hc, e.sub, messages.Query{})
		if !errors.Is(err, messages.ErrUnauthorized) {
			t.Errorf("err = %v, want ErrUnauthorized", err)
		}
	})
	t.Run("invalid page token", func(t *testing.T) {
		e := newE2E(t, fakegoogle.Options{})
		_, err := e.client(nil).List(context.Background(), e.hc, e.sub, messages.Query{PageToken: "bogus"})
		var berr *messages.BadRequestError
		if !errors.As(err, &berr) || berr.Message != "Invalid pageToken" {
			t.Errorf("err = %v, want BadRequestError \"Invalid pageToken\"", err)
		}
	})
}

func TestFakeGoogle_QuotaKeptBelowGooglesLimit(t *testing.T) {
	tests := []struct {
		name  string
		quota int // Options.QuotaPerMinute
		own   bool
	}{
		{name: "client's own quota stops first", quota: 0, own: true},
		{name: "without it Google says 429", quota: -1, own: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// One clock for both, standing still: Google's quota window
			// does not move, nor does the client's token bucket refill.
			now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
			clock := func() time.Time { return now }
			e := newE2E(t, fakegoogle.Options{Now: clock})
			c := e.client(func(o *messages.Options) {
				o.Now = clock
				o.QuotaPerMinute = tt.quota
			})
			q := messages.Query{MaxResults: messages.MaxMetadataResults, Metadata: true}

			if _, err := c.List(context.Background(), e.hc, e.sub, q); err != nil {
				t.Fatalf("first listing, 5005 units: %v", err)
			}
			_, err := c.List(context.Background(), e.hc, e.sub, q)
			var rerr *messages.RetryError
			if !errors.As(err, &rerr) || rerr.Status != http.StatusTooManyRequests {
				t.Fatalf("second listing: err = %v, want RetryError 429", err)
			}
			if got := errors.Is(err, messages.ErrQuotaExceeded); got != tt.own {
				t.Errorf("errors.Is(err, ErrQuotaExceeded) = %v, want %v; err = %v", got, tt.own, err)
			}
		})
	}
}
