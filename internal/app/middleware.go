package app

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/logging"
)

// Request limits. A query string or body past them is refused before any
// work is done.
const (
	MaxQueryBytes = 8 << 10
	MaxBodyBytes  = 64 << 10
)

var contentSecurityPolicy = func() string {
	sum := sha256.Sum256([]byte(pageCSS))
	return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
		"'; img-src 'none'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
}()

// setSecurityHeaders marks every answer uncacheable (it may carry a cookie or
// a user's data), never sent as a Referer (a callback URL holds the code),
// not sniffed and not framed.
func setSecurityHeaders(h http.Header) {
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", contentSecurityPolicy)
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// serve wraps a handler with what every function does: security headers,
// size limits, the trace in the context, panic recovery and one access log
// line (method, function, status, latency; never the query string, which
// can hold a code).
func serve(log *slog.Logger, name string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		setSecurityHeaders(w.Header())
		sw := &statusWriter{ResponseWriter: w}
		ctx := logging.WithTrace(r.Context(), r)
		r = r.WithContext(ctx)
		defer func() {
			if p := recover(); p != nil {
				log.ErrorContext(ctx, "panic", "function", name, "panic", p, "stack", string(debug.Stack()))
				if sw.status == 0 {
					writeJSON(sw, http.StatusInternalServerError, apiError{Code: "internal_error"})
				}
			}
			logging.Request(ctx, log, slog.String("function", name), slog.String("method", r.Method), slog.Int("status", sw.status),
				slog.Int64("latency_ms", time.Since(start).Milliseconds()))
		}()
		if len(r.URL.RawQuery) > MaxQueryBytes {
			writeJSON(sw, http.StatusRequestURITooLong, apiError{Code: "invalid_request", Description: "query string too long"})
			return
		}
		if !boundBody(sw, r) {
			return
		}
		h(sw, r)
	}
}

// boundBody reads the request body, up to MaxBodyBytes, before the function
// runs, so that a body too large is refused (413) whether or not it
// declared its length (a chunked body does not), and before the function
// does anything. It returns false when it has answered.
func boundBody(w http.ResponseWriter, r *http.Request) bool {
	if r.ContentLength > MaxBodyBytes {
		writeJSON(w, http.StatusRequestEntityTooLarge, apiError{Code: "invalid_request", Description: "request body too large"})
		return false
	}
	if r.ContentLength == 0 {
		return true
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		writeJSON(w, http.StatusRequestEntityTooLarge, apiError{Code: "invalid_request", Description: "request body too large"})
		return false
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{Code: "invalid_request", Description: "the request body could not be read"})
		return false
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	return true
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeJSON(w, http.StatusMethodNotAllowed, apiError{Code: "invalid_request", Description: "method not allowed; use " + allow})
}
