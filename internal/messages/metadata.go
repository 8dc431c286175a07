package messages

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-json-experiment/json"
	"golang.org/x/sync/errgroup"
	"google.golang.org/api/googleapi"
)

// getMethod names the batched call in errors.
const getMethod = "users.messages.get"

// errNoAnswer means a batch answer had no readable answer for a part.
var errNoAnswer = errors.New("no answer for the part in Gmail's batch answer")

// TokenRefresher is implemented by the Transport of the *http.Client given
// to List when it can replace an access token Gmail refused. Gmail's batch
// endpoint refuses a token in each part's answer (401) while the batch
// request itself succeeds, so a transport that refreshes on a 401 does not
// see it: List then calls RefreshToken once and sends those parts again.
type TokenRefresher interface {
	// RefreshToken replaces the token the transport sends from now on.
	RefreshToken(ctx context.Context) error
}

// addMetadata fills in each message's headers and snippet with
// users.messages.get calls sent through Gmail's batch endpoint: batches of
// at most c.batchSize parts, c.concurrency batches at a time. Parts that
// fail with a rate limit, a 5xx or no answer are sent again in later
// batches, with backoff, while the budget lasts; a message deleted since it
// was listed (404) is left without metadata. msgs keep their order.
func (r *run) addMetadata(ctx context.Context, msgs []Message) ([]Message, error) {
	if err := r.affordable(ctx, getCost*len(msgs)); err != nil {
		return nil, err
	}
	pending := make([]int, len(msgs))
	for i := range pending {
		pending[i] = i
	}
	refreshed := false
	for attempt := 0; len(pending) > 0; {
		start := r.c.now()
		res, err := r.round(ctx, msgs, pending)
		if err != nil {
			return nil, err
		}
		if len(res.refused) > 0 {
			tr, ok := r.hc.Transport.(TokenRefresher)
			if refreshed || !ok {
				return nil, classify(getMethod, res.refusedErr)
			}
			if err := tr.RefreshToken(ctx); err != nil {
				return nil, fmt.Errorf("messages: gmail %s: refreshing the refused token: %w", getMethod, err)
			}
			refreshed = true
		}
		pending = append(res.refused, res.retry...)
		slices.Sort(pending)
		if len(res.retry) == 0 {
			continue // only refused parts: sent again at once with the new token
		}
		wait := max(res.asked, r.c.backoff(attempt))
		attempt++
		if !r.retryFits(ctx, r.c.now().Sub(start), wait) {
			return nil, &RetryError{Status: res.status, RetryAfter: wait, Err: fmt.Errorf("gmail %s: %w", getMethod, res.last)}
		}
		if err := r.c.sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("messages: waiting to retry gmail %s: %w", getMethod, err)
		}
	}
	return msgs, nil
}

// roundResult is what is left to do after one round of batches.
type roundResult struct {
	mu sync.Mutex
	// retry are the parts to send again after a backoff; status is the
	// answer to give if that runs out (429 if any was rate limited, else
	// 503), asked the longest Retry-After, last the last failure.
	retry  []int
	status int
	asked  time.Duration
	last   error
	// refused are the parts whose token Gmail refused (401).
	refused    []int
	refusedErr error
}

// round sends the parts pending (indexes into msgs) in batches of at most
// c.batchSize, c.concurrency batches at a time, fills in the messages
// answered, and returns the parts to send again. The error is a failure
// not worth retrying.
func (r *run) round(ctx context.Context, msgs []Message, pending []int) (*roundResult, error) {
	res := &roundResult{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.c.concurrency)
	for batch := range slices.Chunk(pending, r.c.batchSize) {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			errs, err := r.batch(gctx, msgs, batch)
			if err != nil {
				return err
			}
			for j, err := range errs {
				if err := res.add(batch[j], err, r.c.now()); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("messages: gmail %s: %w", getMethod, err)
	}
	return res, nil
}

// add files part i's outcome: nil when it is done (answered, or deleted
// since it was listed), else to be retried or sent with a new token, or a
// failure not worth retrying, which it returns.
func (res *roundResult) add(i int, err error, now time.Time) error {
	if err == nil {
		return nil
	}
	var gerr *googleapi.Error
	isGoogle := errors.As(err, &gerr)
	switch {
	case isGoogle && gerr.Code == http.StatusNotFound:
		return nil // deleted between list and get: no metadata
	case isGoogle && gerr.Code == http.StatusUnauthorized:
		res.mu.Lock()
		res.refused, res.refusedErr = append(res.refused, i), err
		res.mu.Unlock()
		return nil
	}
	status, asked, ok := retryable(err, now)
	if errors.Is(err, errNoAnswer) {
		status, ok = http.StatusServiceUnavailable, true
	}
	if !ok {
		return classify(getMethod, err)
	}
	res.mu.Lock()
	defer res.mu.Unlock()
	res.retry = append(res.retry, i)
	if res.status != http.StatusTooManyRequests {
		res.status = status
	}
	res.asked, res.last = max(res.asked, asked), err
	return nil
}

// batch sends one batch request getting the messages at indexes idx of
// msgs, fills in those answered, and returns each part's failure (nil when
// filled in). The error is a failure of the whole batch not worth retrying.
func (r *run) batch(ctx context.Context, msgs []Message, idx []int) ([]error, error) {
	if err := r.charge(ctx, getCost, len(idx)); err != nil {
		return nil, err
	}
	body, contentType, err := encodeBatch(r.c.partRequests(msgs, idx))
	if err != nil {
		return nil, fmt.Errorf("messages: encoding a gmail batch: %w", err)
	}
	errs := make([]error, len(idx))
	answers, err := r.post(ctx, body, contentType, len(idx))
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("messages: gmail batch: %w", ctx.Err())
		}
		var gerr *googleapi.Error
		if errors.As(err, &gerr) && gerr.Code == http.StatusUnauthorized {
			// The transport has already refreshed and tried again.
			return nil, classify(getMethod, err)
		}
		for j := range errs {
			errs[j] = err
		}
		return errs, nil
	}
	for j, a := range answers {
		errs[j] = a.err
		if a.err == nil {
			fillMetadata(&msgs[idx[j]], a.msg)
		}
	}
	return errs, nil
}

// partRequests returns the users.messages.get requests of a batch, for
// the messages at indexes idx of msgs. They are only written into the
// batch, never sent: they share one header, and are built from the get URL
// parsed once per Client rather than from a URL string each.
func (c *Client) partRequests(msgs []Message, idx []int) []*http.Request {
	base := c.getURL
	header := http.Header{"User-Agent": {""}} // the batch request's applies
	escaped := base.EscapedPath()
	reqs := make([]*http.Request, len(idx))
	backing := make([]http.Request, len(idx))
	urls := make([]url.URL, len(idx))
	for j, i := range idx {
		u := &urls[j]
		*u = *base
		u.Path = base.Path + msgs[i].ID
		u.RawPath = escaped + url.PathEscape(msgs[i].ID)
		u.RawQuery = c.getQuery
		backing[j] = http.Request{Method: http.MethodGet, URL: u, Host: u.Host, Header: header,
			Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
		reqs[j] = &backing[j]
	}
	return reqs
}

// answer is one part's answer: the message or Gmail's error.
type answer struct {
	msg *metadataAnswer
	err error
}

// metadataAnswer is the part of a users.messages.get answer with getFields
// that is used: the snippet and the headers. It is decoded with the JSON
// package the list uses: decoding each part into the client library's
// gmail.Message with encoding/json was the largest cost of reading a batch
// answer (see BENCHMARKS.md).
type metadataAnswer struct {
	Snippet string           `json:"snippet"`
	Payload *metadataPayload `json:"payload"`
}

// metadataPayload is the part of a message's payload that is used.
type metadataPayload struct {
	Headers []header `json:"headers"`
}

// header is a gmail.MessagePartHeader, held by value.
type header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// post sends a batch request of n parts and reads each part's answer. The
// error is a failure of the whole request.
func (r *run) post(ctx context.Context, body []byte, contentType string, n int) ([]answer, error) {
	ctx, cancel := r.attemptContext(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.c.batchURL, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := r.hc.Do(req)
	if err != nil {
		return nil, redactURL(err)
	}
	defer resp.Body.Close()
	if err := googleError(resp); err != nil {
		return nil, err
	}
	parts, decodeErr := decodeBatch(resp.Header.Get("Content-Type"), resp.Body, n)
	answers := make([]answer, n)
	for j, p := range parts {
		switch {
		case p == nil && decodeErr != nil:
			answers[j].err = fmt.Errorf("%w: %w", errNoAnswer, decodeErr)
		case p == nil:
			answers[j].err = errNoAnswer
		default:
			answers[j] = decodeAnswer(p)
		}
	}
	return answers, nil
}

// decodeAnswer reads one part's answer.
func decodeAnswer(resp *http.Response) answer {
	if err := googleError(resp); err != nil {
		return answer{err: err}
	}
	// Room for the headers asked for, not grown one by one.
	m := metadataAnswer{Payload: &metadataPayload{Headers: make([]header, 0, len(metadataHeaders))}}
	if err := json.UnmarshalRead(resp.Body, &m); err != nil {
		return answer{err: fmt.Errorf("decoding a batched answer: %w", err)}
	}
	return answer{msg: &m}
}

// fillMetadata sets dst's Metadata to m's headers and snippet. For a
// repeated header the first one counts.
func fillMetadata(dst *Message, m *metadataAnswer) {
	md := &Metadata{Snippet: m.Snippet}
	dst.Metadata = md
	if m.Payload == nil {
		return
	}
	for _, h := range m.Payload.Headers {
		var field *string
		switch {
		case strings.EqualFold(h.Name, "From"):
			field = &md.From
		case strings.EqualFold(h.Name, "To"):
			field = &md.To
		case strings.EqualFold(h.Name, "Subject"):
			field = &md.Subject
		case strings.EqualFold(h.Name, "Date"):
			field = &md.Date
		default:
			continue
		}
		if *field == "" {
			*field = h.Value
		}
	}
}
