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
	"strconv"
	"strings"

	"github.com/googleapis/gax-go/v2/apierror"
	"google.golang.org/api/googleapi"
)

// Gmail's batch endpoint (https://developers.google.com/gmail/api/guides/batch):
// a POST of multipart/mixed whose parts are application/http requests, each
// with a Content-ID; the answer is multipart/mixed too, one application/http
// response per part, named by Content-ID "response-" + the request's.
// Authorization and the other non-Content- headers of the outer request
// apply to every part.
const (
	// MaxBatchSize is the most calls Gmail takes in one batch request.
	MaxBatchSize = 100
	// DefaultBatchSize is Options.BatchSize when zero: Gmail advises
	// against more than 50, which "are likely to trigger rate limiting".
	DefaultBatchSize = 50

	// maxPartBody bounds one part's response body as read; a metadata
	// answer is about a kilobyte.
	maxPartBody = 1 << 20
	// maxBatchBody bounds a whole batch answer as read.
	maxBatchBody = 16 << 20
)

// encodeBatch writes reqs as a batch request body. Part i has Content-ID
// <item-i>. It returns the body and its Content-Type.
func encodeBatch(reqs []*http.Request) (body []byte, contentType string, err error) {
	var buf bytes.Buffer
	buf.Grow(len(reqs) << 9) // a part is about 400 bytes
	mw := multipart.NewWriter(&buf)
	// Each request is written into part, then copied into the body:
	// Request.Write given the part's writer would put a 4 KB bufio.Writer
	// of its own in front of it, for every part.
	var part bytes.Buffer
	h := textproto.MIMEHeader{"Content-Type": {"application/http"}, "Content-Id": {""}}
	for i, req := range reqs {
		h["Content-Id"][0] = "<item-" + strconv.Itoa(i) + ">"
		pw, err := mw.CreatePart(h)
		if err != nil {
			return nil, "", err
		}
		part.Reset()
		if err := req.Write(&part); err != nil {
			return nil, "", fmt.Errorf("writing batch part %d: %w", i, err)
		}
		if _, err := pw.Write(part.Bytes()); err != nil {
			return nil, "", err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, "", err
	}
	return buf.Bytes(), mime.FormatMediaType("multipart/mixed", map[string]string{"boundary": mw.Boundary()}), nil
}

// decodeBatch reads the answer to a batch request of n parts encoded by
// encodeBatch. parts[i] is the answer to part i, its body read into memory
// (and gunzipped), or nil if the answer has none for it or it cannot be
// read. err tells why a part or the rest of the answer could not be read;
// the parts that could are returned all the same.
func decodeBatch(contentType string, body io.Reader, n int) (parts []*http.Response, err error) {
	parts = make([]*http.Response, n)
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil || mediaType != "multipart/mixed" || params["boundary"] == "" {
		return parts, fmt.Errorf("batch answer has Content-Type %q, want multipart/mixed with a boundary", contentType)
	}
	mr := multipart.NewReader(io.LimitReader(body, maxBatchBody), params["boundary"])
	var partErr error
	br := bufio.NewReader(nil) // shared by the parts, read one after another
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return parts, partErr
		}
		if err != nil {
			return parts, fmt.Errorf("reading batch answer: %w", err)
		}
		i, ok := partIndex(p.Header.Get("Content-ID"), n)
		if !ok || parts[i] != nil || !isHTTPPart(p.Header.Get("Content-Type")) {
			continue // not an answer to one of ours: skipped
		}
		br.Reset(p)
		resp, err := readPart(br)
		if err != nil {
			if partErr == nil {
				partErr = fmt.Errorf("reading batch answer part %d: %w", i, err)
			}
			continue
		}
		parts[i] = resp
	}
}

// partIndex reads i from a response's Content-ID, <response-item-i>.
func partIndex(contentID string, n int) (int, bool) {
	id := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(contentID), "<"), ">")
	s, ok := strings.CutPrefix(id, "response-item-")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(s)
	if err != nil || i < 0 || i >= n || strconv.Itoa(i) != s {
		return 0, false
	}
	return i, true
}

// isHTTPPart reports whether a part's Content-Type is application/http.
func isHTTPPart(contentType string) bool {
	mediaType, _, err := mime.ParseMediaType(contentType)
	return err == nil && mediaType == "application/http"
}

// readPart reads one part's HTTP response, body included, from a reader
// of the part.
func readPart(p *bufio.Reader) (*http.Response, error) {
	resp, err := http.ReadResponse(p, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r io.Reader = resp.Body
	if strings.EqualFold(resp.Header.Get("Content-Encoding"), "gzip") {
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			return nil, err
		}
		r = zr
		resp.Header.Del("Content-Encoding")
		resp.Header.Del("Content-Length")
	}
	b, err := io.ReadAll(io.LimitReader(r, maxPartBody+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxPartBody {
		return nil, fmt.Errorf("body over %d bytes", maxPartBody)
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	return resp, nil
}

// googleError is Gmail's error for a response that is not 2xx, as the
// Gmail client library reports it, or nil.
func googleError(resp *http.Response) error {
	err := googleapi.CheckResponse(resp)
	var gerr *googleapi.Error
	if errors.As(err, &gerr) {
		if aerr, ok := apierror.ParseError(err, false); ok {
			gerr.Wrap(aerr)
		}
	}
	return err
}
