package fakegoogle

import (
	"net/http"
	"strings"
)

// Fault is an error the Gmail API answers with instead of serving a request.
//
// Status 0 (or negative) is a network failure: the connection breaks in the
// middle of the answer.
type Fault struct {
	// Status is the HTTP status, e.g. 429, 403, 500 or 503.
	Status int
	// Reason is Google's error reason, e.g. "rateLimitExceeded",
	// "userRateLimitExceeded" or "backendError". Empty means the usual reason
	// for Status.
	Reason string
	// RetryAfter, when set, is sent as the Retry-After header.
	RetryAfter string
}

// tokenFault is an error the token endpoint answers with.
type tokenFault struct {
	status     int
	oauthError string
}

// InjectGmailFault makes the next n Gmail API requests (list or get, direct
// or a part of a batch) fail with f. Faults queue up: injecting again adds to
// the queue. n <= 0 empties the queue. Faulted requests count in the
// counters. In a batch, Status 0 breaks the whole batch's connection.
func (s *Server) InjectGmailFault(f Fault, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n <= 0 {
		s.gmailFaults = nil
		return
	}
	for range n {
		s.gmailFaults = append(s.gmailFaults, f)
	}
}

// FailMessage makes the next n users.messages.get calls for the message
// id, direct or a part of a batch, fail with f before anything else is
// checked: a 404 as if the message had been deleted, a 429 or a 500 as if
// Gmail failed that one call. Faults for one id queue up; n <= 0 empties
// that id's queue.
func (s *Server) FailMessage(id string, f Fault, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n <= 0 {
		delete(s.messageFaults, id)
		return
	}
	if s.messageFaults == nil {
		s.messageFaults = make(map[string][]Fault)
	}
	for range n {
		s.messageFaults[id] = append(s.messageFaults[id], f)
	}
}

// nextMessageFault pops the next fault injected for the message id.
func (s *Server) nextMessageFault(id string) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.messageFaults[id]
	if len(q) == 0 {
		return Fault{}, false
	}
	if len(q) == 1 {
		delete(s.messageFaults, id)
	} else {
		s.messageFaults[id] = q[1:]
	}
	return q[0], true
}

// InjectTokenFault makes the next n token endpoint requests fail with status
// and {"error": oauthError} (default "internal_failure"). Status 0 (or
// negative) breaks the connection in the middle of the answer, like a network
// failure. Faults queue up; n <= 0 empties
// the queue.
func (s *Server) InjectTokenFault(status int, oauthError string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n <= 0 {
		s.tokenFaults = nil
		return
	}
	for range n {
		s.tokenFaults = append(s.tokenFaults, tokenFault{status: status, oauthError: oauthError})
	}
}

// nextGmailFault pops the next injected Gmail fault.
func (s *Server) nextGmailFault() (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.gmailFaults) == 0 {
		return Fault{}, false
	}
	f := s.gmailFaults[0]
	s.gmailFaults = s.gmailFaults[1:]
	return f, true
}

// nextTokenFault pops the next injected token endpoint fault.
func (s *Server) nextTokenFault() (tokenFault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.tokenFaults) == 0 {
		return tokenFault{}, false
	}
	f := s.tokenFaults[0]
	s.tokenFaults = s.tokenFaults[1:]
	return f, true
}

// writeGmailFault answers with f in Google's error shape.
func writeGmailFault(w http.ResponseWriter, f Fault) {
	if f.Status <= 0 {
		dropConnection(w)
		return
	}
	reason := f.Reason
	if reason == "" {
		reason = defaultReason(f.Status)
	}
	domain := "global"
	switch reason {
	case "rateLimitExceeded", "userRateLimitExceeded", "dailyLimitExceeded", "quotaExceeded":
		domain = "usageLimits"
	}
	message := reasonMessage(reason, f.Status)
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	writeAPIError(w, apiError{
		Code:    f.Status,
		Message: message,
		Errors:  []apiErrorItem{{Message: message, Domain: domain, Reason: reason}},
		Status:  statusName(f.Status),
	})
}

// writeTokenFault answers a token request with f.
func writeTokenFault(w http.ResponseWriter, f tokenFault) {
	if f.status <= 0 {
		dropConnection(w)
		return
	}
	code := f.oauthError
	if code == "" {
		code = "internal_failure"
	}
	writeOAuthError(w, f.status, code, http.StatusText(f.status))
}

// defaultReason is the reason Google gives most often with status.
func defaultReason(status int) string {
	switch status {
	case http.StatusTooManyRequests, http.StatusForbidden:
		return "rateLimitExceeded"
	case http.StatusBadRequest:
		return "invalidArgument"
	case http.StatusUnauthorized:
		return "authError"
	case http.StatusNotFound:
		return "notFound"
	}
	return "backendError"
}

// reasonMessage is Google's message for reason.
func reasonMessage(reason string, status int) string {
	switch reason {
	case "rateLimitExceeded":
		return "Rate Limit Exceeded"
	case "userRateLimitExceeded":
		return "User Rate Limit Exceeded"
	case "backendError":
		return "Backend Error"
	case "dailyLimitExceeded":
		return "Daily Limit Exceeded"
	case "quotaExceeded":
		return "Quota Exceeded"
	}
	if t := http.StatusText(status); t != "" {
		return t
	}
	return strings.ToUpper(reason[:1]) + reason[1:]
}

// dropConnection fails the exchange like a broken network: the answer
// starts but the connection closes halfway through the body. Failing after
// the headers (rather than before them) keeps net/http's client from
// silently retrying idempotent requests on a reused connection, so every
// injected fault reaches the caller.
func dropConnection(w http.ResponseWriter) {
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// Not hijackable (HTTP/2 or a recorder): abort the handler, which
		// makes net/http reset the stream or close the connection.
		panic(http.ErrAbortHandler)
	}
	defer conn.Close()
	buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: 4096\r\nConnection: close\r\n\r\n{\"")
	buf.Flush()
}
