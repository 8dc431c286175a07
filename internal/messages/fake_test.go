package messages_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/messages"
)

// Kinds of request a fault is answered to.
const (
	onList  = ""      // users.messages.list
	onGet   = "get"   // users.messages.get, direct or a part of a batch
	onBatch = "batch" // the batch request itself
)

// fault is one error answer of the fake Gmail.
type fault struct {
	status     int
	reason     string // Google's error reason, e.g. "rateLimitExceeded"
	retryAfter string // Retry-After header, if any
	on         string // the kind of request it answers: onList, onGet or onBatch
}

// fakeGmail is a small Gmail users.messages.list/get server with Gmail's
// batch endpoint that records what it is asked. Message i (0-based) has id
// "m%04d" and its page tokens are "p<offset>".
type fakeGmail struct {
	n       int             // messages in the mailbox
	deleted map[string]bool // answer 404 on get
	delay   time.Duration   // slept in each batch request, to let batches overlap
	reverse bool            // answer a batch's parts in reverse order

	mu         sync.Mutex
	faults     []fault // answered first, one per request of their kind
	listQuery  []url.Values
	getQuery   []url.Values
	batchIDs   [][]string    // the message ids of each batch request, in order
	partHeader []http.Header // the headers of each batched request
	batchAuth  []string      // the Authorization of each batch request
	units      int           // quota units spent, as Gmail counts them
	inFlight   int           // batch requests
	maxFlight  int
	lists      atomic.Int64
	gets       atomic.Int64 // users.messages.get calls, direct or batched
	batches    atomic.Int64
	alwaysFail *fault // answered to every list after faults
}

func newFakeGmail(t testing.TB, n int) (*fakeGmail, *httptest.Server) {
	f := &fakeGmail{n: n, deleted: map[string]bool{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeGmail) inject(ft fault, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for range n {
		f.faults = append(f.faults, ft)
	}
}

func (f *fakeGmail) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	const prefix = "/gmail/v1/users/me/messages"
	path := r.URL.Path
	switch {
	case path == prefix:
		f.lists.Add(1)
		f.record(&f.listQuery, r, 5)
		if f.fail(w, onList) {
			return
		}
		f.list(w, r.URL.Query())
	case strings.HasPrefix(path, prefix+"/"):
		f.gets.Add(1)
		f.record(&f.getQuery, r, 20)
		if f.fail(w, onGet) {
			return
		}
		f.get(w, strings.TrimPrefix(path, prefix+"/"))
	case path == "/batch/gmail/v1" && r.Method == http.MethodPost:
		f.batches.Add(1)
		f.mu.Lock()
		f.inFlight++
		f.maxFlight = max(f.maxFlight, f.inFlight)
		f.batchAuth = append(f.batchAuth, r.Header.Get("Authorization"))
		f.mu.Unlock()
		defer func() {
			f.mu.Lock()
			f.inFlight--
			f.mu.Unlock()
		}()
		time.Sleep(f.delay)
		if f.fail(w, onBatch) {
			return
		}
		f.batch(w, r)
	default:
		writeGoogleError(w, fault{status: 404, reason: "notFound"}, "Not Found")
	}
}

// batch serves a batch request: each part by ServeHTTP, as a direct call,
// answered under Content-ID "response-" + the part's.
func (f *fakeGmail) batch(w http.ResponseWriter, r *http.Request) {
	_, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		writeGoogleError(w, fault{status: 400}, err.Error())
		return
	}
	type answer struct {
		contentID string
		rec       *httptest.ResponseRecorder
	}
	var answers []answer
	var ids []string
	mr := multipart.NewReader(r.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		var req *http.Request
		if err == nil {
			req, err = http.ReadRequest(bufio.NewReader(p))
		}
		if err != nil {
			writeGoogleError(w, fault{status: 400}, err.Error())
			return
		}
		f.mu.Lock()
		f.partHeader = append(f.partHeader, req.Header)
		f.mu.Unlock()
		ids = append(ids, path.Base(req.URL.Path))
		rec := httptest.NewRecorder()
		f.ServeHTTP(rec, req)
		answers = append(answers, answer{p.Header.Get("Content-ID"), rec})
	}
	f.mu.Lock()
	f.batchIDs = append(f.batchIDs, ids)
	f.mu.Unlock()
	if f.reverse {
		slices.Reverse(answers)
	}
	mw := multipart.NewWriter(w)
	w.Header().Set("Content-Type", "multipart/mixed; boundary="+mw.Boundary())
	for _, a := range answers {
		pw, _ := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type": {"application/http"},
			"Content-Id":   {"<response-" + strings.Trim(a.contentID, "<>") + ">"},
		})
		resp := a.rec.Result()
		resp.ContentLength = int64(a.rec.Body.Len())
		resp.Write(pw)
	}
	mw.Close()
}

// batched returns the message ids of each batch request so far.
func (f *fakeGmail) batched() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.batchIDs)
}

// spent returns the quota units Gmail charged.
func (f *fakeGmail) spent() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.units
}

// mostInFlight returns the largest number of batch requests that were in
// flight at once.
func (f *fakeGmail) mostInFlight() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.maxFlight
}

func (f *fakeGmail) record(dst *[]url.Values, r *http.Request, units int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	*dst = append(*dst, r.URL.Query())
	f.units += units
}

// fail answers the next fault injected for the kind of request on, if any.
func (f *fakeGmail) fail(w http.ResponseWriter, on string) bool {
	f.mu.Lock()
	var ft *fault
	if i := slices.IndexFunc(f.faults, func(ft fault) bool { return ft.on == on }); i >= 0 {
		next := f.faults[i]
		ft = &next
		f.faults = slices.Delete(f.faults, i, i+1)
	} else if f.alwaysFail != nil && on == onList {
		ft = f.alwaysFail
	}
	f.mu.Unlock()
	if ft == nil {
		return false
	}
	writeGoogleError(w, *ft, http.StatusText(ft.status))
	return true
}

func (f *fakeGmail) list(w http.ResponseWriter, q url.Values) {
	size := 100
	if v := q.Get("maxResults"); v != "" {
		size, _ = strconv.Atoi(v)
	}
	offset := 0
	if tok := q.Get("pageToken"); tok != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(tok, "p"))
		if !strings.HasPrefix(tok, "p") || err != nil || n > f.n {
			writeGoogleError(w, fault{status: 400, reason: "invalidArgument"}, "Invalid pageToken")
			return
		}
		offset = n
	}
	end := min(f.n, offset+size)
	type msg struct {
		ID       string `json:"id"`
		ThreadID string `json:"threadId"`
	}
	resp := struct {
		Messages           []msg  `json:"messages,omitempty"`
		NextPageToken      string `json:"nextPageToken,omitempty"`
		ResultSizeEstimate int    `json:"resultSizeEstimate"`
	}{ResultSizeEstimate: f.n - offset}
	for i := offset; i < end; i++ {
		resp.Messages = append(resp.Messages, msg{ID: id(i), ThreadID: "t" + id(i)})
	}
	if end < f.n {
		resp.NextPageToken = fmt.Sprintf("p%d", end)
	}
	writeJSON(w, http.StatusOK, resp)
}

func (f *fakeGmail) get(w http.ResponseWriter, msgID string) {
	i, err := strconv.Atoi(strings.TrimPrefix(msgID, "m"))
	if err != nil || i >= f.n || f.deleted[msgID] {
		writeGoogleError(w, fault{status: 404, reason: "notFound"}, "Requested entity was not found.")
		return
	}
	from := "From"
	if i%2 == 1 {
		from = "from" // header names keep the message's own case
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id":       msgID,
		"threadId": "t" + msgID,
		"snippet":  "snippet " + msgID,
		"payload": map[string]any{"headers": []map[string]string{
			{"name": "Subject", "value": "subject " + msgID},
			{"name": from, "value": "sender" + msgID + "@example.com"},
			{"name": "To", "value": "demo@example.com"},
			{"name": "To", "value": "second@example.com"},
			{"name": "Date", "value": "Mon, 2 Jan 2006 15:04:05 -0700"},
		}},
	})
}

func id(i int) string { return fmt.Sprintf("m%04d", i) }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeGoogleError answers as Google APIs do.
func writeGoogleError(w http.ResponseWriter, ft fault, message string) {
	if ft.retryAfter != "" {
		w.Header().Set("Retry-After", ft.retryAfter)
	}
	body := map[string]any{"error": map[string]any{
		"code":    ft.status,
		"message": message,
		"errors":  []map[string]string{{"message": message, "domain": "global", "reason": ft.reason}},
	}}
	writeJSON(w, ft.status, body)
}

// sleeper records the waits asked for instead of sleeping, and advances
// its clock by them.
type sleeper struct {
	mu    sync.Mutex
	now   time.Time
	waits []time.Duration
}

func newSleeper() *sleeper {
	return &sleeper{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (s *sleeper) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now
}

func (s *sleeper) Sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.waits = append(s.waits, d)
	s.now = s.now.Add(d)
	return ctx.Err()
}

func (s *sleeper) Waits() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.waits...)
}

// testClient is a Client for srv with fast retries and a fake sleeper.
func testClient(srv *httptest.Server, sl *sleeper, tweak func(*messages.Options)) *messages.Client {
	opts := messages.Options{
		Endpoint:    srv.URL + "/",
		RetryBase:   time.Millisecond,
		RetryBudget: 50 * time.Millisecond,
		Now:         sl.Now,
		Sleep:       sl.Sleep,
	}
	if tweak != nil {
		tweak(&opts)
	}
	return messages.New(opts)
}
