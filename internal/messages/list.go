package messages

import (
	"context"
	"net/http"

	"google.golang.org/api/gmail/v1"
)

// run is the state of one List call.
type run struct {
	c      *Client
	svc    *gmail.Service
	hc     *http.Client
	user   string
	budget budget
}

// listPage lists the one page q asks for.
func (r *run) listPage(ctx context.Context, q Query) (*Page, error) {
	resp, err := r.list(ctx, q, q.MaxResults, q.PageToken)
	if err != nil {
		return nil, err
	}
	page := &Page{
		Messages:           appendMessages(make([]Message, 0, len(resp.Messages)), resp.Messages),
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
		page.Messages = appendMessages(page.Messages, resp.Messages)
		token = resp.NextPageToken
		if token == "" || len(page.Messages) >= q.Limit {
			page.NextPageToken = token
			return page, nil
		}
	}
}

// list makes one users.messages.list call, retried as needed.
func (r *run) list(ctx context.Context, q Query, maxResults int64, pageToken string) (*gmail.ListMessagesResponse, error) {
	call := r.svc.Users.Messages.List("me").Context(ctx).Fields(listFields)
	if q.Q != "" {
		call.Q(q.Q)
	}
	if len(q.LabelIDs) > 0 {
		call.LabelIds(q.LabelIDs...)
	}
	if maxResults > 0 {
		call.MaxResults(maxResults)
	}
	if pageToken != "" {
		call.PageToken(pageToken)
	}
	if q.IncludeSpamTrash {
		call.IncludeSpamTrash(true)
	}
	var resp *gmail.ListMessagesResponse
	err := r.do(ctx, "users.messages.list", listCost, func() error {
		var err error
		resp, err = call.Do()
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// appendMessages appends Gmail's listed messages to dst.
func appendMessages(dst []Message, src []*gmail.Message) []Message {
	for _, m := range src {
		if m != nil {
			dst = append(dst, Message{ID: m.Id, ThreadID: m.ThreadId})
		}
	}
	return dst
}
