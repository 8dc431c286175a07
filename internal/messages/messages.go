// Package messages lists a user's Gmail messages through Gmail's REST API:
// users.messages.list as a plain GET, metadata through the batch endpoint,
// with the Gmail API client's types and errors
// (google.golang.org/api/gmail/v1, googleapi).
//
// A Client lists one page, or every page up to a limit (the old guide's
// loop), optionally adding each message's From, To, Subject, Date and
// snippet, got through Gmail's batch endpoint. It retries rate limits and
// transient failures with exponential backoff within a time budget, and
// keeps each user's calls within this instance's share of Gmail's per-user
// quota.
package messages

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	"google.golang.org/api/googleapi"
)

// Limits and defaults.
const (
	// DefaultEndpoint is the Gmail API base URL.
	DefaultEndpoint = "https://gmail.googleapis.com/"
	// MaxPageSize is the largest maxResults Gmail accepts for one page.
	MaxPageSize = 500
	// MaxMetadataResults is the largest number of messages listed with
	// metadata in one request, so that one request fits one minute of the
	// per-user quota: 5 + 250×20 = 5005 ≤ 6000 units.
	MaxMetadataResults = 250
	// DefaultLimit is Query.Limit when it is zero.
	DefaultLimit = 5000
	// MaxLimit is the largest Query.Limit honoured.
	MaxLimit = 10000
	// DefaultMetadataConcurrency is Options.MetadataConcurrency when zero:
	// two batches of DefaultBatchSize, 100 messages.get calls in flight.
	DefaultMetadataConcurrency = 2
	// DefaultRetryBase is the first backoff, as Google advises.
	DefaultRetryBase = time.Second
	// DefaultRetryBudget is Options.RetryBudget when zero: well under a
	// function's 60 s timeout.
	DefaultRetryBudget = 20 * time.Second
	// DefaultAttemptTimeout is Options.AttemptTimeout when zero: many times
	// what Gmail's slowest ordinary answers take (a search over a large
	// mailbox, a batch of gets), and half the default budget.
	DefaultAttemptTimeout = 10 * time.Second
	// DefaultQuotaPerMinute is Gmail's per-user quota in units per minute.
	DefaultQuotaPerMinute = 6000
)

// Quota cost of each call, in Gmail quota units.
const (
	listCost = 5
	getCost  = 20
)

// Partial responses: only the fields used here.
const (
	listFields = "messages(id,threadId),nextPageToken,resultSizeEstimate"
	getFields  = "id,threadId,snippet,payload/headers"
)

// metadataHeaders are the headers asked for with Query.Metadata.
var metadataHeaders = []string{"From", "To", "Subject", "Date"}

// Query is what List asks for.
type Query struct {
	// Q is a Gmail search query, e.g. "from:someone is:unread".
	Q string
	// LabelIDs restricts the listing to messages with all these labels.
	LabelIDs []string
	// MaxResults is the page size: 1..MaxPageSize, or 1..MaxMetadataResults
	// with Metadata; 0 means Gmail's default, 100. Larger values are
	// clamped. Ignored with All.
	MaxResults int64
	// PageToken continues a previous listing.
	PageToken string
	// IncludeSpamTrash includes messages from SPAM and TRASH.
	IncludeSpamTrash bool
	// All lists every page, up to Limit messages.
	All bool
	// Limit stops an All listing after this many messages; 0 means
	// DefaultLimit. It is clamped to MaxLimit, and to MaxMetadataResults
	// with Metadata.
	Limit int
	// Metadata adds From, To, Subject, Date and the snippet to each
	// message; a message deleted since it was listed comes without them.
	Metadata bool
}

// Message is one listed message. Its Metadata is set only with
// Query.Metadata, and its fields then encode beside the ids.
//
// Metadata is a pointer so that a plain listing, the common case, holds
// 40 bytes per message rather than 112: a page of 100 is one 4 KB
// allocation, not 12 KB, for each request (see BENCHMARKS.md).
type Message struct {
	ID       string `json:"id"`
	ThreadID string `json:"threadId"`
	*Metadata
}

// Metadata is what Query.Metadata adds to a Message: some of its headers
// and its snippet.
type Metadata struct {
	From    string `json:"from,omitempty"`
	To      string `json:"to,omitempty"`
	Subject string `json:"subject,omitempty"`
	Date    string `json:"date,omitempty"`
	Snippet string `json:"snippet,omitempty"`
}

// Page is the answer to List, shaped as the ListMessages response JSON.
type Page struct {
	// Messages is never nil, so that it encodes as [] when empty.
	Messages []Message `json:"messages"`
	// NextPageToken continues the listing where it stopped, if there is more.
	NextPageToken string `json:"nextPageToken,omitempty"`
	// ResultSizeEstimate is Gmail's estimate, from the first page.
	ResultSizeEstimate int64 `json:"resultSizeEstimate"`
}

// Options configure a Client. The zero value gives Google's defaults.
type Options struct {
	// Endpoint is the Gmail API base URL. Default DefaultEndpoint.
	Endpoint string
	// BatchSize is the most messages.get calls sent in one batch request:
	// 1..MaxBatchSize. Default DefaultBatchSize.
	BatchSize int
	// MetadataConcurrency is how many batch requests one List call has in
	// flight at once. Default DefaultMetadataConcurrency.
	MetadataConcurrency int
	// RetryBase is the first backoff; it doubles at each retry.
	// Default DefaultRetryBase.
	RetryBase time.Duration
	// RetryBudget bounds the total time one List call loses to Gmail
	// failing: the waits before retries and for the quota, and the calls
	// that failed. Concurrent waits and calls are all counted, so the
	// budget is conservative. No wait goes past the context's deadline
	// either. Default DefaultRetryBudget.
	RetryBudget time.Duration
	// AttemptTimeout is the deadline of one HTTP call to Gmail, whatever
	// the call. A call that times out is retried only if the budget still
	// holds the wait and another call of AttemptTimeout, so that a Gmail
	// that does not answer costs at most the budget (with an
	// AttemptTimeout no longer than it). Default DefaultAttemptTimeout.
	AttemptTimeout time.Duration
	// QuotaPerMinute is the number of Gmail quota units this instance may
	// spend per user and minute (list costs 5, get costs 20).
	// Default DefaultQuotaPerMinute; negative disables the accounting.
	QuotaPerMinute int
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Sleep waits for d or until ctx is done. Default a timer.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Client lists messages. The zero value is not usable; see New.
// A Client is safe for concurrent use.
type Client struct {
	endpoint    string
	listURL     string   // users.messages.list
	batchURL    string   // Gmail's batch endpoint
	getURL      *url.URL // users.messages.get, to which the message id is added
	getQuery    string   // the query of each users.messages.get
	batchSize   int
	concurrency int
	retryBase   time.Duration
	retryBudget time.Duration
	attempt     time.Duration // the deadline of one HTTP call
	now         func() time.Time
	sleep       func(context.Context, time.Duration) error
	quota       *quota // nil when disabled
}

// New returns a Client with opts, defaults filled in.
func New(opts Options) *Client {
	c := &Client{
		endpoint:    opts.Endpoint,
		batchSize:   opts.BatchSize,
		concurrency: opts.MetadataConcurrency,
		retryBase:   opts.RetryBase,
		retryBudget: opts.RetryBudget,
		attempt:     opts.AttemptTimeout,
		now:         opts.Now,
		sleep:       opts.Sleep,
	}
	if c.endpoint == "" {
		c.endpoint = DefaultEndpoint
	}
	c.listURL = googleapi.ResolveRelative(c.endpoint, "gmail/v1/users/me/messages")
	c.batchURL = googleapi.ResolveRelative(c.endpoint, "batch/gmail/v1")
	// ResolveRelative has parsed it already: it panics on a URL it cannot.
	c.getURL, _ = url.Parse(googleapi.ResolveRelative(c.endpoint, "gmail/v1/users/me/messages/"))
	c.getQuery = url.Values{
		"alt": {"json"}, "prettyPrint": {"false"}, "format": {"metadata"},
		"metadataHeaders": metadataHeaders, "fields": {getFields},
	}.Encode()
	if c.batchSize <= 0 {
		c.batchSize = DefaultBatchSize
	}
	c.batchSize = min(c.batchSize, MaxBatchSize)
	if c.concurrency <= 0 {
		c.concurrency = DefaultMetadataConcurrency
	}
	if c.retryBase <= 0 {
		c.retryBase = DefaultRetryBase
	}
	if c.retryBudget <= 0 {
		c.retryBudget = DefaultRetryBudget
	}
	if c.attempt <= 0 {
		c.attempt = DefaultAttemptTimeout
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.sleep == nil {
		c.sleep = sleep
	}
	perMinute := opts.QuotaPerMinute
	if perMinute == 0 {
		perMinute = DefaultQuotaPerMinute
	}
	if perMinute > 0 {
		c.quota = newQuota(perMinute)
	}
	return c
}

// List lists the messages of the user that hc acts for. hc must already
// authorize its requests as the user (and handle a refresh on 401). user is
// a stable key for that user, such as the OpenID sub, for quota accounting.
//
// Errors to look for with errors.Is and errors.As: ErrUnauthorized,
// ErrInsufficientScope, ErrBadRequest (a *BadRequestError) and *RetryError.
func (c *Client) List(ctx context.Context, hc *http.Client, user string, q Query) (*Page, error) {
	if hc == nil {
		return nil, errors.New("messages: nil *http.Client")
	}
	r := &run{c: c, hc: hc, user: user, budget: budget{left: c.retryBudget}}
	q = normalize(q)

	var (
		page *Page
		err  error
	)
	if q.All {
		page, err = r.listAll(ctx, q)
	} else {
		page, err = r.listPage(ctx, q)
	}
	if err != nil {
		return nil, err
	}
	if q.Metadata && len(page.Messages) > 0 {
		if page.Messages, err = r.addMetadata(ctx, page.Messages); err != nil {
			return nil, err
		}
	}
	return page, nil
}

// normalize clamps q's sizes defensively; callers validate them.
func normalize(q Query) Query {
	maxPage := int64(MaxPageSize)
	if q.Metadata {
		maxPage = MaxMetadataResults
	}
	q.MaxResults = max(0, min(q.MaxResults, maxPage))
	if q.Limit <= 0 {
		q.Limit = DefaultLimit
	}
	q.Limit = min(q.Limit, MaxLimit)
	if q.Metadata {
		q.Limit = min(q.Limit, MaxMetadataResults)
	}
	return q
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
