package messages

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/go-json-experiment/json"
)

// run is the state of one List call.
type run struct {
	c      *Client
	hc     *http.Client
	user   string
	budget budget
}

// attemptContext bounds one HTTP call to Gmail, whatever the call, by the
// attempt timeout, body included. A deadline on the context rather than
// http.Client.Timeout: the client would start a goroutine and a timer per
// call to enforce its own.
func (r *run) attemptContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.c.attempt)
}

// listPage lists the one page q asks for.
func (r *run) listPage(ctx context.Context, q Query) (*Page, error) {
	resp, err := r.list(ctx, q, q.MaxResults, q.PageToken)
	if err != nil {
		return nil, err
	}
	if resp.Messages == nil {
		resp.Messages = []Message{} // encoded as [], not null
	}
	page := &Page{
		Messages:           resp.Messages,
		NextPageToken:      resp.NextPageToken,
		ResultSizeEstimate: resp.ResultSizeEstimate,
	}
	return page, nil
}

// listAll lists page after page, from q.PageToken, until Gmail has no more
// or q.Limit messages are listed. Each page asks for no more than the limit
// leaves, so the returned NextPageToken continues exactly where it stopped.
func (r *run) listAll(ctx context.Context, q Query) (*Page, error) {
	page := &Page{Messages: []Message{}}
	token := q.PageToken
	for first := true; ; first = false {
		size := min(MaxPageSize, q.Limit-len(page.Messages))
		resp, err := r.list(ctx, q, int64(size), token)
		if err != nil {
			return nil, err
		}
		if first {
			page.ResultSizeEstimate = resp.ResultSizeEstimate
		}
		page.Messages = append(page.Messages, resp.Messages...)
		token = resp.NextPageToken
		if token == "" || len(page.Messages) >= q.Limit {
			page.NextPageToken = token
			return page, nil
		}
	}
}

// listResponse is users.messages.list's answer, with listFields: each
// message has only its id and threadId.
type listResponse struct {
	Messages           []Message `json:"messages"`
	NextPageToken      string    `json:"nextPageToken"`
	ResultSizeEstimate int64     `json:"resultSizeEstimate"`
}

// maxListBytes bounds the answer read: a page of 500 ids is about 30 KB.
const maxListBytes = 4 << 20

// list makes one users.messages.list call, retried as needed.
//
// It is a plain GET decoded straight into the messages it answers, not the
// Gmail client library's call: decoding into the library's
// gmail.ListMessagesResponse with encoding/json was most of the CPU of a
// warm ListMessages (see BENCHMARKS.md). The request is the one the library
// sends: the same URL, parameters and partial-response fields.
func (r *run) list(ctx context.Context, q Query, maxResults int64, pageToken string) (*listResponse, error) {
	v := url.Values{"alt": {"json"}, "prettyPrint": {"false"}, "fields": {listFields}}
	if q.Q != "" {
		v.Set("q", q.Q)
	}
	if len(q.LabelIDs) > 0 {
		v["labelIds"] = q.LabelIDs
	}
	if maxResults > 0 {
		v.Set("maxResults", strconv.FormatInt(maxResults, 10))
	}
	if pageToken != "" {
		v.Set("pageToken", pageToken)
	}
	if q.IncludeSpamTrash {
		v.Set("includeSpamTrash", "true")
	}
	target := r.c.listURL + "?" + v.Encode()
	var resp *listResponse
	err := r.do(ctx, "users.messages.list", listCost, func() error {
		var err error
		resp, err = r.get(ctx, target, maxResults)
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// gmailDefaultPageSize is the page size Gmail uses without maxResults.
const gmailDefaultPageSize = 100

// get sends one users.messages.list request for up to maxResults messages
// (0: Gmail's default) and decodes its answer.
func (r *run) get(ctx context.Context, target string, maxResults int64) (*listResponse, error) {
	ctx, cancel := r.attemptContext(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, err
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if err := googleError(resp); err != nil {
		return nil, err
	}
	// Decoded as it is read: no copy of the whole answer is kept.
	// The page's messages decode into room made for them at once, not into
	// a slice grown by doubling.
	if maxResults <= 0 {
		maxResults = gmailDefaultPageSize
	}
	lr := listResponse{Messages: make([]Message, 0, maxResults)}
	if err := json.UnmarshalRead(io.LimitReader(resp.Body, maxListBytes), &lr); err != nil {
		return nil, fmt.Errorf("gmail users.messages.list: decoding the answer (at most %d bytes): %w", maxListBytes, err)
	}
	return &lr, nil
}
