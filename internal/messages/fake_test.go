package messages_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/messages"
)

// fault is one error answer of the fake Gmail.
type fault struct {
	status     int
	reason     string // Google's error reason, e.g. "rateLimitExceeded"
	retryAfter string // Retry-After header, if any
	onGet      bool   // answered to a get instead of a list
}

// fakeGmail is a small Gmail users.messages.list/get server that records
// what it is asked. Message i (0-based) has id "m%04d" and its page tokens
// are "p<offset>".
type fakeGmail struct {
	n       int             // messages in the mailbox
	deleted map[string]bool // answer 404 on get
	delay   time.Duration   // slept in each get, to let gets overlap

	mu         sync.Mutex
	faults     []fault // answered first, one per request, list or get
	listQuery  []url.Values
	getQuery   []url.Values
	units      int // quota units spent, as Gmail counts them
	inFlight   int
	maxFlight  int
	lists      atomic.Int64
	gets       atomic.Int64
	alwaysFail *fault // answered to every request after faults
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
		if f.fail(w, false) {
			return
		}
		f.list(w, r.URL.Query())
	case strings.HasPrefix(path, prefix+"/"):
		f.gets.Add(1)
		f.record(&f.getQuery, r, 20)
		f.mu.Lock()
		f.inFlight++
		f.maxFlight = max(f.maxFlight, f.inFlight)
		f.mu.Unlock()
		defer func() {
			f.mu.Lock()
			f.inFlight--
			f.mu.Unlock()
		}()
		time.Sleep(f.delay)
		if f.fail(w, true) {
			return
		}
		f.get(w, strings.TrimPrefix(path, prefix+"/"))
	default:
		writeGoogleError(w, fault{status: 404, reason: "notFound"}, "Not Found")
	}
}

// spent returns the quota units Gmail charged.
func (f *fakeGmail) spent() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.units
}

// mostInFlight returns the largest number of gets that were in flight at once.
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

// fail answers the next fault injected for a get or a list, if any.
func (f *fakeGmail) fail(w http.ResponseWriter, get bool) bool {
	f.mu.Lock()
	var ft *fault
	if i := slices.IndexFunc(f.faults, func(ft fault) bool { return ft.onGet == get }); i >= 0 {
		next := f.faults[i]
		ft = &next
		f.faults = slices.Delete(f.faults, i, i+1)
	} else if f.alwaysFail != nil {
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
