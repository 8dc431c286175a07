package fakegoogle

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
)

// Gmail's batch endpoint (https://developers.google.com/gmail/api/guides/batch).
const (
	// MaxBatchParts is the most calls Gmail takes in one batch request.
	MaxBatchParts = 100
	// DefaultGmailConcurrentRequests is Options.GmailConcurrentRequests
	// when zero. Google does not publish the number; this one lets a batch
	// of the most parts Gmail takes run alone.
	DefaultGmailConcurrentRequests = 100

	maxBatchRequest = 16 << 20 // bytes of a batch request read
)

// errTooManyConcurrent is Gmail's answer to a request over the user's
// concurrent-request limit.
var errTooManyConcurrent = apiError{
	Code:    http.StatusTooManyRequests,
	Message: "Too many concurrent requests for user.",
	Errors:  []apiErrorItem{{Message: "Too many concurrent requests for user.", Domain: "global", Reason: "rateLimitExceeded"}},
	Status:  "RESOURCE_EXHAUSTED",
}

// batchPartKey marks the context of a request served as a part of a batch.
type batchPartKey struct{}

// inBatch reports whether r is a part of a batch request.
func inBatch(r *http.Request) bool { return r.Context().Value(batchPartKey{}) != nil }

// batchPart is one request of a batch.
type batchPart struct {
	contentID string
	req       *http.Request
}

// handleBatch serves Gmail's batch endpoint: a multipart/mixed request of
// application/http parts, each answered, in order, by a part of a
// multipart/mixed answer named "response-" + its Content-ID. Each part is
// served by the handler of its path, as a direct call would be, with the
// batch request's headers other than Content-* (Authorization included)
// unless the part has its own. The batch's parts are in flight together:
// those beyond the user's concurrent-request limit answer 429.
func (s *Server) handleBatch(w http.ResponseWriter, r *http.Request) {
	s.count(CountGmailBatch)
	parts, err := readBatch(http.MaxBytesReader(w, r.Body, maxBatchRequest), r.Header.Get("Content-Type"))
	s.countN(CountGmailBatchPart, len(parts))
	switch {
	case err != nil:
		writeAPIError(w, invalidArgument("Invalid batch request: "+err.Error()))
		return
	case len(parts) == 0:
		writeAPIError(w, invalidArgument("Batch request has no parts"))
		return
	case len(parts) > MaxBatchParts:
		writeAPIError(w, invalidArgument(fmt.Sprintf("A batch request may contain at most %d calls; this one has %d", MaxBatchParts, len(parts))))
		return
	}

	ctx := context.WithValue(r.Context(), batchPartKey{}, true)
	// The answer is built whole and sent in one write; a part's answer is
	// about half a kilobyte.
	var buf bytes.Buffer
	buf.Grow(len(parts) << 10)
	mw := multipart.NewWriter(&buf)
	var inFlight []*user
	defer func() {
		for _, u := range inFlight {
			s.leaveGmail(u)
		}
	}()
	rec := &partRecorder{header: http.Header{}} // reused by the parts, one after another
	for _, p := range parts {
		req := p.req.WithContext(ctx)
		req.RemoteAddr = r.RemoteAddr
		for k, v := range r.Header {
			if _, own := req.Header[k]; !own && !strings.HasPrefix(k, "Content-") {
				req.Header[k] = v
			}
		}
		rec.reset()
		u, _, _ := s.validAccessToken(bearerToken(req))
		switch {
		case !strings.HasPrefix(req.URL.Path, "/gmail/v1/"):
			writeAPIError(rec, errNotFound) // all the calls of a batch go to one API
		case u != nil && !s.enterGmail(u):
			writeAPIError(rec, errTooManyConcurrent)
		default:
			if u != nil {
				inFlight = append(inFlight, u)
			}
			s.mux.ServeHTTP(rec, req)
		}
		if err := rec.writePart(mw, p.contentID); err != nil {
			http.Error(w, "fakegoogle: writing the batch answer: "+err.Error(), http.StatusInternalServerError)
			return
		}
	}
	mw.Close()
	w.Header().Set("Content-Type", mime.FormatMediaType("multipart/mixed", map[string]string{"boundary": mw.Boundary()}))
	w.WriteHeader(http.StatusOK)
	w.Write(buf.Bytes())
}

// readBatch reads the parts of a batch request. It returns the parts read
// so far with an error that makes the request invalid.
func readBatch(body io.Reader, contentType string) ([]batchPart, error) {
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil || mediaType != "multipart/mixed" || params["boundary"] == "" {
		return nil, errors.New("Content-Type must be multipart/mixed with a boundary")
	}
	mr := multipart.NewReader(body, params["boundary"])
	var parts []batchPart
	br := bufio.NewReader(nil) // shared by the parts, each read whole in turn
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return parts, nil
		}
		if err != nil {
			return parts, err
		}
		if t, _, err := mime.ParseMediaType(p.Header.Get("Content-Type")); err != nil || t != "application/http" {
			return parts, fmt.Errorf("part %d: Content-Type must be application/http", len(parts)+1)
		}
		br.Reset(p)
		req, err := http.ReadRequest(br)
		if err != nil {
			return parts, fmt.Errorf("part %d: %v", len(parts)+1, err)
		}
		if req.Body != http.NoBody {
			b, err := io.ReadAll(req.Body)
			if err != nil {
				return parts, fmt.Errorf("part %d: %v", len(parts)+1, err)
			}
			req.Body = io.NopCloser(bytes.NewReader(b))
		}
		parts = append(parts, batchPart{contentID: p.Header.Get("Content-ID"), req: req})
	}
}

// partRecorder is the http.ResponseWriter of a batch's part: it keeps the
// handler's answer for writePart.
type partRecorder struct {
	header  http.Header
	code    int
	body    []byte
	scratch []byte               // the part as written, kept for the next
	mime    textproto.MIMEHeader // the part's own headers, kept for the next
}

func (p *partRecorder) Header() http.Header { return p.header }

func (p *partRecorder) WriteHeader(code int) {
	if p.code == 0 {
		p.code = code
	}
}

func (p *partRecorder) Write(b []byte) (int, error) {
	p.WriteHeader(http.StatusOK)
	p.body = append(p.body, b...)
	return len(b), nil
}

// reset makes p ready for the next part.
func (p *partRecorder) reset() {
	clear(p.header)
	p.code = 0
	p.body = p.body[:0]
}

// writePart writes p's answer as an application/http part of mw named
// after contentID: the status line, the handler's headers with a
// Content-Length, and the body, as http.Response.Write writes them.
func (p *partRecorder) writePart(mw *multipart.Writer, contentID string) error {
	if p.mime == nil {
		p.mime = textproto.MIMEHeader{"Content-Type": {"application/http"}}
	}
	delete(p.mime, "Content-Id")
	if contentID != "" {
		p.mime["Content-Id"] = []string{responseID(contentID)}
	}
	pw, err := mw.CreatePart(p.mime)
	if err != nil {
		return err
	}
	code := cmp.Or(p.code, http.StatusOK)
	p.header["Content-Length"] = []string{strconv.Itoa(len(p.body))}
	b := fmt.Appendf(p.scratch[:0], "HTTP/1.1 %03d %s\r\n", code, http.StatusText(code))
	var keys [8]string
	sorted := keys[:0]
	for k := range p.header {
		sorted = append(sorted, k)
	}
	slices.Sort(sorted)
	for _, k := range sorted {
		for _, v := range p.header[k] {
			b = append(append(append(append(b, k...), ": "...), v...), "\r\n"...)
		}
	}
	b = append(append(b, "\r\n"...), p.body...)
	p.scratch = b
	_, err = pw.Write(b)
	return err
}

// responseID names the answer to the part whose Content-ID is id, as
// Gmail does: <x> is answered by <response-x>.
func responseID(id string) string {
	if inner, ok := strings.CutPrefix(id, "<"); ok {
		if inner, ok := strings.CutSuffix(inner, ">"); ok {
			return "<response-" + inner + ">"
		}
	}
	return "response-" + id
}

// enterGmail counts one more request of u in flight, unless u already has
// Options.GmailConcurrentRequests; then it reports false.
func (s *Server) enterGmail(u *user) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if limit := s.opts.GmailConcurrentRequests; limit > 0 && s.inFlight[u] >= limit {
		return false
	}
	s.inFlight[u]++
	return true
}

// leaveGmail counts one request of u fewer in flight.
func (s *Server) leaveGmail(u *user) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inFlight[u]--; s.inFlight[u] <= 0 {
		delete(s.inFlight, u)
	}
}
