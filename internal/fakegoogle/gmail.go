package fakegoogle

import (
	"encoding/base64"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// Gmail list limits.
const (
	defaultMaxResults = 100
	maxMaxResults     = 500
)

// gmailRequest is an authenticated Gmail request.
type gmailRequest struct {
	user   *user
	access gmailAccess
	// done ends the request's count among the user's concurrent requests.
	done func()
}

// authorizeGmail runs what precedes every Gmail answer: injected faults,
// authentication, scope, the userId check, the user's concurrent-request
// limit and quota. It answers and returns false when the request must stop;
// else the caller calls done when it has answered.
func (s *Server) authorizeGmail(w http.ResponseWriter, r *http.Request, cost int) (gmailRequest, bool) {
	if f, ok := s.nextGmailFault(); ok {
		writeGmailFault(w, f)
		return gmailRequest{}, false
	}
	u, at, ok := s.validAccessToken(bearerToken(r))
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="https://accounts.google.com/", error="invalid_token"`)
		writeAPIError(w, errUnauthenticated)
		return gmailRequest{}, false
	}
	access := gmailAccessFor(at.scopes)
	if access == gmailNone {
		w.Header().Set("WWW-Authenticate", `Bearer realm="https://accounts.google.com/", error="insufficient_scope", scope="`+GmailReadonlyScope+`"`)
		writeAPIError(w, errInsufficientScopes)
		return gmailRequest{}, false
	}
	if id := r.PathValue("userId"); id != "me" && normalizeEmail(id) != u.email {
		writeAPIError(w, forbidden("Delegation denied for "+u.email))
		return gmailRequest{}, false
	}
	done := func() {}
	if !inBatch(r) { // a batch counts its parts itself
		if !s.enterGmail(u) {
			writeAPIError(w, errTooManyConcurrent)
			return gmailRequest{}, false
		}
		done = func() { s.leaveGmail(u) }
	}
	if ok, retryAt := s.chargeQuota(u, cost); !ok {
		done()
		writeAPIError(w, quotaExceeded(retryAt))
		return gmailRequest{}, false
	}
	return gmailRequest{user: u, access: access, done: done}, true
}

// listResponse is users.messages.list's answer.
type listResponse struct {
	Messages           []messageRef `json:"messages,omitempty"`
	NextPageToken      string       `json:"nextPageToken,omitempty"`
	ResultSizeEstimate int          `json:"resultSizeEstimate"`
}

type messageRef struct {
	ID       string `json:"id"`
	ThreadID string `json:"threadId"`
}

// handleList serves users.messages.list.
func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	if !inBatch(r) {
		s.count(CountGmailList)
	}
	gr, ok := s.authorizeGmail(w, r, listCost)
	if !ok {
		return
	}
	defer gr.done()
	params := r.URL.Query()

	maxResults := defaultMaxResults
	if v := params.Get("maxResults"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			writeAPIError(w, invalidArgument("Invalid maxResults: "+strconv.Quote(v)))
			return
		}
		maxResults = min(n, maxMaxResults)
	}
	includeSpamTrash := false
	if v := params.Get("includeSpamTrash"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeAPIError(w, invalidArgument("Invalid includeSpamTrash: "+strconv.Quote(v)))
			return
		}
		includeSpamTrash = b
	}
	var after *pageKey
	if v := params.Get("pageToken"); v != "" {
		k, err := s.decodePageToken(v)
		if err != nil {
			writeAPIError(w, invalidArgument("Invalid pageToken"))
			return
		}
		after = &k
	}
	labelIDs := params["labelIds"]
	q := params.Get("q")
	if q != "" && gr.access == gmailMetadata {
		writeAPIError(w, forbidden("Metadata scope does not support 'q' parameter"))
		return
	}
	search := parseQuery(q, s.now())
	if !includeSpamTrash {
		includeSpamTrash = search.spamTrash || slices.Contains(labelIDs, "SPAM") || slices.Contains(labelIDs, "TRASH")
	}

	var matches []*storedMessage
	for _, m := range s.mailboxOf(gr.user).msgs {
		if !includeSpamTrash && (m.hasLabel("SPAM") || m.hasLabel("TRASH")) {
			continue
		}
		if !hasAllLabels(m, labelIDs) || !search.match(m) {
			continue
		}
		matches = append(matches, m)
	}

	start := 0
	if after != nil {
		start, _ = slices.BinarySearchFunc(matches, *after, func(m *storedMessage, k pageKey) int {
			return compareNewestFirst(m, &storedMessage{Message: Message{ID: k.id, Date: k.date}})
		})
		if start < len(matches) && matches[start].ID == after.id {
			start++
		}
	}
	end := min(start+maxResults, len(matches))
	resp := listResponse{ResultSizeEstimate: len(matches)}
	for _, m := range matches[start:end] {
		resp.Messages = append(resp.Messages, messageRef{ID: m.ID, ThreadID: m.ThreadID})
	}
	if end < len(matches) {
		last := matches[end-1]
		resp.NextPageToken = s.encodePageToken(pageKey{date: last.Date, id: last.ID})
	}
	writeJSON(w, http.StatusOK, resp)
}

func hasAllLabels(m *storedMessage, ids []string) bool {
	for _, id := range ids {
		if !m.hasLabel(id) {
			return false
		}
	}
	return true
}

// apiMessage is a users.messages resource, fields in Gmail's order.
type apiMessage struct {
	ID           string   `json:"id"`
	ThreadID     string   `json:"threadId"`
	LabelIDs     []string `json:"labelIds,omitempty"`
	Snippet      string   `json:"snippet"`
	Payload      *apiPart `json:"payload,omitempty"`
	SizeEstimate int      `json:"sizeEstimate"`
	HistoryID    string   `json:"historyId"`
	InternalDate string   `json:"internalDate"`
	Raw          string   `json:"raw,omitempty"`
}

// apiPart is a MessagePart.
type apiPart struct {
	PartID   string      `json:"partId"`
	MimeType string      `json:"mimeType"`
	Filename string      `json:"filename"`
	Headers  []apiHeader `json:"headers,omitempty"`
	Body     *apiBody    `json:"body,omitempty"`
}

type apiHeader struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type apiBody struct {
	Size int    `json:"size"`
	Data string `json:"data,omitempty"`
}

// handleGet serves users.messages.get.
func (s *Server) handleGet(w http.ResponseWriter, r *http.Request) {
	if !inBatch(r) {
		s.count(CountGmailGet)
	}
	if f, ok := s.nextMessageFault(r.PathValue("id")); ok {
		writeGmailFault(w, f)
		return
	}
	gr, ok := s.authorizeGmail(w, r, getCost)
	if !ok {
		return
	}
	defer gr.done()
	params, err := s.parseGet(r.URL.RawQuery)
	if err != nil {
		writeAPIError(w, invalidArgument(err.Error()))
		return
	}
	format := params.format
	if gr.access == gmailMetadata && (format == "full" || format == "raw") {
		writeAPIError(w, forbidden("Metadata scope doesn't allow format "+strings.ToUpper(format)))
		return
	}
	m, ok := s.mailboxOf(gr.user).byID[r.PathValue("id")]
	if !ok {
		writeAPIError(w, errNotFound)
		return
	}
	out := apiMessage{
		ID:           m.ID,
		ThreadID:     m.ThreadID,
		LabelIDs:     m.LabelIDs,
		Snippet:      m.Snippet,
		SizeEstimate: m.sizeEstimate(),
		HistoryID:    strconv.FormatUint(m.historyID, 10),
		InternalDate: strconv.FormatInt(m.Date.UnixMilli(), 10),
	}
	switch format {
	case "metadata":
		out.Payload = &apiPart{MimeType: "text/plain", Headers: selectHeaders(headersOf(m), params.metadataHeaders)}
	case "full":
		out.Payload = &apiPart{
			MimeType: "text/plain",
			Headers:  headersOf(m),
			Body:     &apiBody{Size: len(m.body), Data: base64.URLEncoding.EncodeToString([]byte(m.body))},
		}
	case "raw":
		out.Raw = base64.URLEncoding.EncodeToString([]byte(rawMessage(m)))
	}
	writeMessage(w, &out, params.fields)
}

// dateLayout is RFC 5322's date format.
const dateLayout = "Mon, 2 Jan 2006 15:04:05 -0700"

// headersOf returns m's headers in message order. The slice is m's own.
func headersOf(m *storedMessage) []apiHeader { return m.headers }

// messageHeaders returns m's headers in message order.
func messageHeaders(m *Message) []apiHeader {
	return []apiHeader{
		{"From", m.From},
		{"To", m.To},
		{"Subject", m.Subject},
		{"Date", m.Date.Format(dateLayout)},
	}
}

// selectHeaders keeps the headers named in names (case-insensitive), in
// message order. No names means all headers.
func selectHeaders(hs []apiHeader, names []string) []apiHeader {
	if len(names) == 0 {
		return hs
	}
	var out []apiHeader
	for _, h := range hs {
		if slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(n, h.Name) }) {
			out = append(out, h)
		}
	}
	return out
}

// rawMessage renders m as an RFC 5322 message.
func rawMessage(m *storedMessage) string {
	var b strings.Builder
	for _, h := range headersOf(m) {
		v := h.Value
		if h.Name == "Subject" {
			v = mime.QEncoding.Encode("utf-8", v)
		}
		b.WriteString(h.Name + ": " + v + "\r\n")
	}
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=\"UTF-8\"\r\n\r\n")
	b.WriteString(m.body)
	b.WriteString("\r\n")
	return b.String()
}
