package fakegoogle

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"
	"testing"
)

// batchCall is one part of a test batch request.
type batchCall struct {
	path  string // path and query
	token string // the part's own Authorization, if any
}

// batchAnswer is one part of a batch answer.
type batchAnswer struct {
	contentID string
	status    int
	header    http.Header
	body      map[string]any
}

// postBatch sends calls to the batch endpoint with token as the batch
// request's bearer token. Part i has Content-ID <p-i>. It returns the
// status of the batch request and, if it is 200, the parts of its answer.
func (h *harness) postBatch(t *testing.T, token string, calls ...batchCall) (int, []batchAnswer) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for i, c := range calls {
		pw, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/http"}, "Content-Id": {fmt.Sprintf("<p-%d>", i)}})
		fmt.Fprintf(pw, "GET %s HTTP/1.1\r\nHost: gmail.googleapis.com\r\n", c.path)
		if c.token != "" {
			fmt.Fprintf(pw, "Authorization: Bearer %s\r\n", c.token)
		}
		fmt.Fprint(pw, "\r\n")
	}
	mw.Close()
	return h.postBatchBody(t, token, "multipart/mixed; boundary="+mw.Boundary(), body.Bytes())
}

// postBatchBody posts body to the batch endpoint and reads the answer.
func (h *harness) postBatchBody(t *testing.T, token, contentType string, body []byte) (int, []batchAnswer) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.ts.URL+"/batch/gmail/v1", bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return res.StatusCode, nil
	}
	mediaType, params, err := mime.ParseMediaType(res.Header.Get("Content-Type"))
	if err != nil || mediaType != "multipart/mixed" {
		t.Fatalf("batch answer Content-Type %q", res.Header.Get("Content-Type"))
	}
	var answers []batchAnswer
	mr := multipart.NewReader(res.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return res.StatusCode, answers
		}
		if err != nil {
			t.Fatal(err)
		}
		if ct := p.Header.Get("Content-Type"); ct != "application/http" {
			t.Fatalf("part Content-Type %q", ct)
		}
		resp, err := http.ReadResponse(bufio.NewReader(p), nil)
		if err != nil {
			t.Fatal(err)
		}
		a := batchAnswer{contentID: p.Header.Get("Content-ID"), status: resp.StatusCode, header: resp.Header}
		if err := json.NewDecoder(resp.Body).Decode(&a.body); err != nil {
			t.Fatalf("part %s: %v", a.contentID, err)
		}
		answers = append(answers, a)
	}
}

// statuses returns each answer's status.
func statuses(answers []batchAnswer) []int {
	var out []int
	for _, a := range answers {
		out = append(out, a.status)
	}
	return out
}

// reason returns the first error reason of an error answer.
func reason(a batchAnswer) string {
	e, _ := a.body["error"].(map[string]any)
	items, _ := e["errors"].([]any)
	if len(items) == 0 {
		return ""
	}
	r, _ := items[0].(map[string]any)["reason"].(string)
	return r
}

func TestBatch_EachPartServedAsADirectCallAndAnsweredUnderItsContentID(t *testing.T) {
	h, _ := craftedHarness(t)
	tok := h.tokenFor(t, "me@example.com").AccessToken
	h.fake.ResetCounts()
	status, answers := h.postBatch(t, tok,
		batchCall{path: "/gmail/v1/users/me/messages/a1?format=metadata&metadataHeaders=Subject"},
		batchCall{path: "/gmail/v1/users/me/messages/gone?format=metadata"},
		batchCall{path: "/gmail/v1/users/me/messages?maxResults=2"},
		batchCall{path: "/gmail/v1/users/me/messages/a2?format=bogus"},
	)
	if status != http.StatusOK || len(answers) != 4 {
		t.Fatalf("status %d, %d answers; want 200 and 4", status, len(answers))
	}
	for i, want := range []int{200, 404, 200, 400} {
		if a := answers[i]; a.status != want || a.contentID != fmt.Sprintf("<response-p-%d>", i) {
			t.Errorf("answer %d: %s %d, want <response-p-%d> %d: %v", i, a.contentID, a.status, i, want, a.body)
		}
	}
	payload, _ := answers[0].body["payload"].(map[string]any)
	if headers, _ := payload["headers"].([]any); answers[0].body["id"] != "a1" || len(headers) != 1 {
		t.Errorf("metadata answer %v, want a1 with its Subject alone", answers[0].body)
	}
	if msgs, _ := answers[2].body["messages"].([]any); len(msgs) != 2 {
		t.Errorf("list answer %v, want 2 messages", answers[2].body)
	}
	want := map[string]int{CountGmailBatch: 1, CountGmailBatchPart: 4}
	if got := h.fake.Counts(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("counts %v, want %v: the parts are not direct calls", got, want)
	}
}

func TestBatch_PartsAuthorizedByTheBatchRequest(t *testing.T) {
	h, _ := craftedHarness(t)
	tok := h.tokenFor(t, "me@example.com").AccessToken
	noGmail := h.tokenFor(t, "me@example.com", OpenIDScope, "email").AccessToken
	get := "/gmail/v1/users/me/messages/a1?format=metadata"
	tests := []struct {
		name       string
		token      string
		calls      []batchCall
		want       []int
		wantReason string
	}{
		{name: "no token: each part 401", calls: []batchCall{{path: get}, {path: get}}, want: []int{401, 401}, wantReason: "authError"},
		{name: "unknown token: each part 401", token: "ya29.nope", calls: []batchCall{{path: get}}, want: []int{401}, wantReason: "authError"},
		{name: "no Gmail scope: 403", token: noGmail, calls: []batchCall{{path: get}}, want: []int{403}, wantReason: "insufficientPermissions"},
		{name: "a part's own token counts for it alone", token: "ya29.nope", calls: []batchCall{{path: get, token: tok}, {path: get}}, want: []int{200, 401}},
		{name: "another user's mailbox: 403", token: tok, calls: []batchCall{{path: "/gmail/v1/users/other@example.com/messages/a1"}}, want: []int{403}, wantReason: "forbidden"},
		{name: "a call to another API: 404", token: tok, calls: []batchCall{{path: "/oauth2/v3/userinfo"}, {path: "/batch/gmail/v1"}}, want: []int{404, 404}, wantReason: "notFound"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, answers := h.postBatch(t, tt.token, tt.calls...)
			if got := statuses(answers); status != http.StatusOK || fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("status %d, parts %v; want 200 and %v", status, got, tt.want)
			}
			if r := reason(answers[len(answers)-1]); tt.wantReason != "" && r != tt.wantReason {
				t.Errorf("reason %q, want %q: %v", r, tt.wantReason, answers[len(answers)-1].body)
			}
		})
	}
}

func TestBatch_AtMost100Parts(t *testing.T) {
	h, _ := craftedHarness(t)
	tok := h.tokenFor(t, "me@example.com").AccessToken
	calls := make([]batchCall, MaxBatchParts+1)
	for i := range calls {
		calls[i] = batchCall{path: "/gmail/v1/users/me/messages/a1?format=minimal"}
	}
	h.fake.ResetCounts()
	if status, _ := h.postBatch(t, tok, calls...); status != http.StatusBadRequest {
		t.Errorf("101 parts: status %d, want 400", status)
	}
	if p := h.fake.Count(CountGmailBatchPart); p != 101 {
		t.Errorf("%d parts counted, want 101", p)
	}
	status, answers := h.postBatch(t, tok, calls[:MaxBatchParts]...)
	if status != http.StatusOK || len(answers) != MaxBatchParts || answers[99].status != 200 {
		t.Errorf("100 parts: status %d, %d answers", status, len(answers))
	}
}

func TestBatch_MalformedRequestIs400(t *testing.T) {
	h, _ := craftedHarness(t)
	tok := h.tokenFor(t, "me@example.com").AccessToken
	part := func(contentType, body string) string {
		return "--b\r\nContent-Type: " + contentType + "\r\n\r\n" + body + "\r\n--b--\r\n"
	}
	tests := []struct {
		name, contentType, body string
	}{
		{"not multipart", "application/json", "{}"},
		{"no boundary", "multipart/mixed", part("application/http", "GET /gmail/v1/users/me/messages HTTP/1.1\r\n\r\n")},
		{"no parts", "multipart/mixed; boundary=b", "--b--\r\n"},
		{"a part not application/http", "multipart/mixed; boundary=b", part("text/plain", "GET /gmail/v1/users/me/messages HTTP/1.1\r\n\r\n")},
		{"a part not a request", "multipart/mixed; boundary=b", part("application/http", "hello")},
		{"cut short", "multipart/mixed; boundary=b", "--b\r\nContent-Type: application/http\r\n\r\nGET /gmail/v1/users/me/messages HTTP/1.1\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if status, _ := h.postBatchBody(t, tok, tt.contentType, []byte(tt.body)); status != http.StatusBadRequest {
				t.Errorf("status %d, want 400", status)
			}
		})
	}
}

func TestBatch_QuotaChargedPerPart(t *testing.T) {
	clock := newFakeClock()
	h := newHarness(t, Options{AutoApprove: true, Now: clock.Now, MessagesPerUser: 3, GmailQuotaPerMinute: 100})
	tok := h.tokenFor(t, "quota@example.com").AccessToken
	res, body := h.gmailGET(t, tok, "/gmail/v1/users/me/messages") // 5 units
	msgs, _ := body["messages"].([]any)
	if res.StatusCode != http.StatusOK || len(msgs) == 0 {
		t.Fatalf("list: %d %v", res.StatusCode, body)
	}
	get := batchCall{path: "/gmail/v1/users/me/messages/" + msgs[0].(map[string]any)["id"].(string) + "?format=metadata"}
	_, answers := h.postBatch(t, tok, get, get, get, get, get, get) // 20 units each
	if got := statuses(answers); fmt.Sprint(got) != "[200 200 200 200 429 429]" {
		t.Fatalf("parts %v, want four served and two over the quota of 100 units", got)
	}
	if r := reason(answers[4]); r != "rateLimitExceeded" {
		t.Errorf("reason %q", r)
	}
}

func TestBatch_PartsOverTheUsersConcurrentRequestsAre429(t *testing.T) {
	h := newHarness(t, Options{AutoApprove: true, MessagesPerUser: 3, GmailConcurrentRequests: 3})
	tok := h.tokenFor(t, "busy@example.com").AccessToken
	list := batchCall{path: "/gmail/v1/users/me/messages?maxResults=1"}
	calls := []batchCall{list, list, list, list, list}
	_, answers := h.postBatch(t, tok, calls...)
	if got := statuses(answers); fmt.Sprint(got) != "[200 200 200 429 429]" {
		t.Fatalf("parts %v, want three served and two over the limit of 3", got)
	}
	e, _ := answers[3].body["error"].(map[string]any)
	if reason(answers[3]) != "rateLimitExceeded" || e["message"] != "Too many concurrent requests for user." {
		t.Errorf("answer %v", answers[3].body)
	}
	// The parts are in flight only while their batch is served.
	_, answers = h.postBatch(t, tok, calls[:3]...)
	if got := statuses(answers); fmt.Sprint(got) != "[200 200 200]" {
		t.Errorf("the next batch: parts %v, want all served", got)
	}
	if res, body := h.gmailGET(t, tok, list.path); res.StatusCode != http.StatusOK {
		t.Errorf("a direct call after: %d %v", res.StatusCode, body)
	}
	h.fake.mu.Lock()
	defer h.fake.mu.Unlock()
	if len(h.fake.inFlight) != 0 {
		t.Errorf("in flight after every answer: %v", h.fake.inFlight)
	}
}

func TestFailMessage(t *testing.T) {
	h, _ := craftedHarness(t)
	tok := h.tokenFor(t, "me@example.com").AccessToken
	h.fake.FailMessage("a1", Fault{Status: 429}, 1)
	h.fake.FailMessage("a1", Fault{Status: 404}, 1)
	h.fake.FailMessage("a2", Fault{Status: 500}, 1)
	a1 := batchCall{path: "/gmail/v1/users/me/messages/a1?format=metadata"}
	a2 := batchCall{path: "/gmail/v1/users/me/messages/a2?format=metadata"}
	a3 := batchCall{path: "/gmail/v1/users/me/messages/a3?format=metadata"}
	_, answers := h.postBatch(t, tok, a1, a2, a3)
	if got := statuses(answers); fmt.Sprint(got) != "[429 500 200]" {
		t.Errorf("first batch: parts %v, want [429 500 200]", got)
	}
	if res, body := h.gmailGET(t, tok, a1.path); res.StatusCode != http.StatusNotFound {
		t.Errorf("direct get of a1: %d %v, want the second fault, 404", res.StatusCode, body)
	}
	_, answers = h.postBatch(t, tok, a1, a2, a3)
	if got := statuses(answers); fmt.Sprint(got) != "[200 200 200]" {
		t.Errorf("after the faults: parts %v, want all served", got)
	}
	h.fake.FailMessage("a3", Fault{Status: 503}, 5)
	h.fake.FailMessage("a3", Fault{}, 0)
	if res, body := h.gmailGET(t, tok, a3.path); res.StatusCode != http.StatusOK {
		t.Errorf("after emptying a3's faults: %d %v", res.StatusCode, body)
	}
}

// TestBatch_AnswerReadsAsGoogles checks the shape of an answer part as
// Gmail writes it: the status line, Content-Type and Content-Length.
func TestBatch_AnswerReadsAsGoogles(t *testing.T) {
	h, _ := craftedHarness(t)
	tok := h.tokenFor(t, "me@example.com").AccessToken
	_, answers := h.postBatch(t, tok, batchCall{path: "/gmail/v1/users/me/messages/a1?format=minimal"})
	if len(answers) != 1 || !strings.HasPrefix(answers[0].header.Get("Content-Type"), "application/json") || answers[0].header.Get("Content-Length") == "" {
		t.Errorf("answer %+v", answers)
	}
}
