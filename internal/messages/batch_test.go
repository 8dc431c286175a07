package messages

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"google.golang.org/api/googleapi"
)

func TestEncodeBatch_PathOnlyRequestsWithContentIDs(t *testing.T) {
	c := New(Options{Endpoint: "https://gmail.example/"})
	body, contentType, err := encodeBatch(c.partRequests([]Message{{ID: "18c0ffee"}, {ID: "a/b?c"}}, []int{0, 1}))
	if err != nil {
		t.Fatal(err)
	}
	if c.batchURL != "https://gmail.example/batch/gmail/v1" {
		t.Errorf("batch URL %q", c.batchURL)
	}
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil || mediaType != "multipart/mixed" {
		t.Fatalf("Content-Type %q", contentType)
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	wantLines := []string{
		"GET /gmail/v1/users/me/messages/18c0ffee?alt=json&fields=id%2CthreadId%2Csnippet%2Cpayload%2Fheaders&format=metadata&metadataHeaders=From&metadataHeaders=To&metadataHeaders=Subject&metadataHeaders=Date&prettyPrint=false HTTP/1.1",
		"GET /gmail/v1/users/me/messages/a%2Fb%3Fc?alt=json&fields=id%2CthreadId%2Csnippet%2Cpayload%2Fheaders&format=metadata&metadataHeaders=From&metadataHeaders=To&metadataHeaders=Subject&metadataHeaders=Date&prettyPrint=false HTTP/1.1",
	}
	for i, want := range wantLines {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatal(err)
		}
		if ct, cid := p.Header.Get("Content-Type"), p.Header.Get("Content-ID"); ct != "application/http" || cid != "<item-"+string(rune('0'+i))+">" {
			t.Errorf("part %d: Content-Type %q, Content-ID %q", i, ct, cid)
		}
		b, _ := io.ReadAll(p)
		lines := strings.Split(string(b), "\r\n")
		if lines[0] != want {
			t.Errorf("part %d request line\n %s\nwant\n %s", i, lines[0], want)
		}
		// Only Host: Authorization and the rest come from the batch request.
		if len(lines) != 4 || lines[1] != "Host: gmail.example" || lines[2] != "" || lines[3] != "" {
			t.Errorf("part %d is %q, want the request line, Host and no other header", i, b)
		}
	}
	if _, err := mr.NextPart(); err != io.EOF {
		t.Errorf("after 2 parts: %v, want EOF", err)
	}
}

// batchAnswer is a batch answer in Gmail's form, with parts as given (each
// the Content-ID and the HTTP response), and its Content-Type.
func batchAnswer(parts ...string) (body, contentType string) {
	const boundary = "batch_Zm9vYmFy"
	var b strings.Builder
	for i := 0; i+1 < len(parts); i += 2 {
		b.WriteString("--" + boundary + "\r\nContent-Type: application/http\r\nContent-ID: " + parts[i] + "\r\n\r\n" + parts[i+1] + "\r\n")
	}
	b.WriteString("--" + boundary + "--\r\n")
	return b.String(), "multipart/mixed; boundary=" + boundary
}

const (
	okAnswer       = "HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=UTF-8\r\nContent-Length: 15\r\n\r\n{\"id\":\"18c0ff\"}"
	notFoundAnswer = "HTTP/1.1 404 Not Found\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{\"error\":{\"code\":404,\"message\":\"Requested entity was not found.\",\"errors\":[{\"message\":\"Requested entity was not found.\",\"domain\":\"global\",\"reason\":\"notFound\"}],\"status\":\"NOT_FOUND\"}}"
	rateAnswer     = "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\nContent-Type: application/json\r\n\r\n{\"error\":{\"code\":429,\"message\":\"Too many concurrent requests for user.\",\"errors\":[{\"message\":\"Too many concurrent requests for user.\",\"domain\":\"global\",\"reason\":\"rateLimitExceeded\"}]}}"
)

func TestDecodeBatch(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(`{"id":"zipped"}`))
	zw.Close()
	gzipped := "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Type: application/json\r\n\r\n" + gz.String()

	tests := []struct {
		name    string
		parts   []string
		n       int
		want    []string // each part's status and body; "" for none
		wantErr bool
	}{
		{
			name:  "answers matched by Content-ID, in any order",
			parts: []string{"<response-item-2>", rateAnswer, "<response-item-0>", okAnswer, "<response-item-1>", notFoundAnswer},
			n:     3,
			want:  []string{"200 {\"id\":\"18c0ff\"}", "404 " + notFoundAnswer[strings.Index(notFoundAnswer, "{"):], "429 " + rateAnswer[strings.Index(rateAnswer, "{"):]},
		},
		{
			name:  "missing and unknown parts: none",
			parts: []string{"<response-item-1>", okAnswer, "<response-item-7>", okAnswer, "<item-0>", okAnswer, "<response-item-01>", okAnswer},
			n:     2,
			want:  []string{"", "200 {\"id\":\"18c0ff\"}"},
		},
		{
			name:  "a repeated answer: the first counts",
			parts: []string{"<response-item-0>", rateAnswer, "<response-item-0>", okAnswer},
			n:     1,
			want:  []string{"429 " + rateAnswer[strings.Index(rateAnswer, "{"):]},
		},
		{
			name:  "Content-ID without angle brackets",
			parts: []string{"response-item-0", okAnswer},
			n:     1,
			want:  []string{"200 {\"id\":\"18c0ff\"}"},
		},
		{
			name:  "gzipped body",
			parts: []string{"<response-item-0>", gzipped},
			n:     1,
			want:  []string{"200 {\"id\":\"zipped\"}"},
		},
		{
			name:    "a part that is not HTTP: none, and said why",
			parts:   []string{"<response-item-0>", "nonsense", "<response-item-1>", okAnswer},
			n:       2,
			want:    []string{"", "200 {\"id\":\"18c0ff\"}"},
			wantErr: true,
		},
		{
			name:    "a body cut short: none",
			parts:   []string{"<response-item-0>", strings.Replace(okAnswer, "15", "99", 1)},
			n:       1,
			want:    []string{""},
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, contentType := batchAnswer(tt.parts...)
			parts, err := decodeBatch(contentType, strings.NewReader(body), tt.n)
			if (err != nil) != tt.wantErr {
				t.Errorf("err = %v, want an error: %v", err, tt.wantErr)
			}
			if len(parts) != tt.n {
				t.Fatalf("%d parts, want %d", len(parts), tt.n)
			}
			for i, p := range parts {
				got := ""
				if p != nil {
					b, _ := io.ReadAll(p.Body)
					got = p.Status[:3] + " " + string(b)
				}
				if got != tt.want[i] {
					t.Errorf("part %d = %q, want %q", i, got, tt.want[i])
				}
			}
		})
	}
}

func TestDecodeBatch_AnswerCutShortKeepsThePartsBefore(t *testing.T) {
	body, contentType := batchAnswer("<response-item-0>", okAnswer, "<response-item-1>", okAnswer)
	cut := body[:strings.LastIndex(body, "HTTP/1.1")+20]
	parts, err := decodeBatch(contentType, strings.NewReader(cut), 2)
	if err == nil || parts[0] == nil || parts[1] != nil {
		t.Errorf("parts %v, err %v; want the first part and an error", parts, err)
	}
}

func TestDecodeBatch_NotMultipart(t *testing.T) {
	for _, ct := range []string{"application/json", "multipart/mixed", "multipart/mixed; boundary=\"\"", "text/html; boundary=x", ""} {
		parts, err := decodeBatch(ct, strings.NewReader(`{"error":{}}`), 2)
		if err == nil || len(parts) != 2 || parts[0] != nil || parts[1] != nil {
			t.Errorf("Content-Type %q: parts %v, err %v; want none and an error", ct, parts, err)
		}
	}
}

func TestDecodeAnswer_GooglesErrorAsTheClientLibraryGivesIt(t *testing.T) {
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(rateAnswer)), nil)
	if err != nil {
		t.Fatal(err)
	}
	a := decodeAnswer(resp)
	status, asked, ok := retryable(a.err, time.Time{})
	if !ok || status != http.StatusTooManyRequests || asked.Seconds() != 3 {
		t.Errorf("retryable(%v) = %d, %v, %v; want 429 after 3 s", a.err, status, asked, ok)
	}
}

// FuzzDecodeBatch: whatever the answer, decodeBatch returns one slot per
// part, each nil or a response whose body is read into memory and bounded.
func FuzzDecodeBatch(f *testing.F) {
	body, contentType := batchAnswer("<response-item-2>", rateAnswer, "<response-item-0>", okAnswer, "<response-item-1>", notFoundAnswer)
	f.Add(contentType, body, 3)
	body, contentType = batchAnswer("<response-item-0>", "nonsense", "response-item-1", okAnswer)
	f.Add(contentType, body, 2)
	f.Add(contentType, body[:len(body)/2], 2)
	f.Add("multipart/mixed; boundary=b", "--b\r\nContent-Type: application/http\r\nContent-ID: <response-item-0>\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n\r\n--b--\r\n", 1)
	f.Add("multipart/mixed; boundary=b", "--b\r\nContent-Type: application/http\r\nContent-ID: <response-item-0>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n\x1f\x8b\x08\r\n--b--\r\n", 1)
	f.Add("application/json", `{"error":{"code":503}}`, 1)
	f.Fuzz(func(t *testing.T, contentType, body string, n int) {
		n = max(0, min(n, MaxBatchSize))
		parts, err := decodeBatch(contentType, strings.NewReader(body), n)
		if len(parts) != n {
			t.Fatalf("%d parts for %d (err %v)", len(parts), n, err)
		}
		for i, p := range parts {
			if p == nil {
				continue
			}
			b, err := io.ReadAll(p.Body)
			if err != nil || len(b) > maxPartBody || int64(len(b)) != p.ContentLength {
				t.Fatalf("part %d: %d bytes, ContentLength %d, err %v", i, len(b), p.ContentLength, err)
			}
			var gerr *googleapi.Error
			ok := p.StatusCode >= 200 && p.StatusCode <= 299
			if err := googleError(p); (err == nil) != ok || err != nil && (!errors.As(err, &gerr) || gerr.Code != p.StatusCode) {
				t.Fatalf("part %d: status %d gives error %v", i, p.StatusCode, err)
			}
		}
	})
}

// BenchmarkBatchCodec measures the functions' side of one batch of 50
// metadata gets: the part requests built and encoded, and an answer of 50
// parts as Gmail writes them decoded into the messages.
func BenchmarkBatchCodec(b *testing.B) {
	c := New(Options{Endpoint: "https://gmail.example/"})
	const n = 50
	msgs := make([]Message, n)
	idx := make([]int, n)
	var answer bytes.Buffer
	mw := multipart.NewWriter(&answer)
	for i := range msgs {
		msgs[i].ID = fmt.Sprintf("18c0ffee%08x", i)
		idx[i] = i
		pw, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/http"}, "Content-Id": {fmt.Sprintf("<response-item-%d>", i)}})
		body := fmt.Sprintf(`{"id":%q,"threadId":%q,"snippet":"Lunch on Thursday? I found a place near the office that does a good set menu, shall we","payload":{"headers":[{"name":"From","value":"Alice Example <alice@example.com>"},{"name":"To","value":"demo@example.com"},{"name":"Subject","value":"Lunch on Thursday"},{"name":"Date","value":"Tue, 1 Dec 2026 10:00:00 +0000"}]}}`, msgs[i].ID, msgs[i].ID)
		fmt.Fprintf(pw, "HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=UTF-8\r\nVary: Origin\r\nVary: X-Origin\r\nVary: Referer\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	}
	mw.Close()
	contentType := "multipart/mixed; boundary=" + mw.Boundary()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := encodeBatch(c.partRequests(msgs, idx)); err != nil {
			b.Fatal(err)
		}
		parts, err := decodeBatch(contentType, bytes.NewReader(answer.Bytes()), n)
		if err != nil {
			b.Fatal(err)
		}
		for j, p := range parts {
			a := decodeAnswer(p)
			if a.err != nil {
				b.Fatal(a.err)
			}
			fillMetadata(&msgs[j], a.msg)
		}
	}
	if msgs[n-1].Metadata == nil || msgs[n-1].Subject != "Lunch on Thursday" {
		b.Fatalf("message %+v", msgs[n-1])
	}
}
