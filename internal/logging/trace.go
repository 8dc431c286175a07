package logging

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// trace identifies the request a log line belongs to.
type trace struct {
	id      string // 32 lowercase hex digits
	spanID  string // 16 lowercase hex digits, or empty
	sampled bool
}

type traceCtxKey struct{}

// WithTrace returns ctx carrying the trace of r, taken from its W3C
// traceparent header ("00-TRACE_ID-SPAN_ID-FLAGS") or, failing that, its
// X-Cloud-Trace-Context header ("TRACE_ID/SPAN_ID;o=1"). If neither holds a
// valid trace, ctx is returned unchanged.
func WithTrace(ctx context.Context, r *http.Request) context.Context {
	if t, ok := parseTraceparent(r.Header.Get("traceparent")); ok {
		return context.WithValue(ctx, traceCtxKey{}, t)
	}
	if t, ok := parseCloudTrace(r.Header.Get("X-Cloud-Trace-Context")); ok {
		return context.WithValue(ctx, traceCtxKey{}, t)
	}
	return ctx
}

func traceFrom(ctx context.Context) (trace, bool) {
	t, ok := ctx.Value(traceCtxKey{}).(trace)
	return t, ok
}

// parseTraceparent parses a W3C traceparent header.
func parseTraceparent(h string) (trace, bool) {
	f := strings.Split(strings.TrimSpace(h), "-")
	if len(f) < 4 || !isHex(f[0], 2) || f[0] == "ff" || (f[0] == "00" && len(f) != 4) ||
		!isHex(f[1], 32) || isZero(f[1]) || !isHex(f[2], 16) || isZero(f[2]) || !isHex(f[3], 2) {
		return trace{}, false
	}
	flags, _ := strconv.ParseUint(f[3], 16, 8)
	return trace{id: f[1], spanID: f[2], sampled: flags&1 == 1}, true
}

// parseCloudTrace parses an X-Cloud-Trace-Context header, whose span id is
// decimal; Cloud Logging wants it as 16 hex digits.
func parseCloudTrace(h string) (trace, bool) {
	rest, opts, _ := strings.Cut(strings.TrimSpace(h), ";")
	id, span, hasSpan := strings.Cut(rest, "/")
	id = strings.ToLower(id)
	if !isHex(id, 32) || isZero(id) {
		return trace{}, false
	}
	t := trace{id: id, sampled: opts == "o=1"}
	if hasSpan {
		if n, err := strconv.ParseUint(span, 10, 64); err == nil && n != 0 {
			t.spanID = fmt.Sprintf("%016x", n)
		}
	}
	return t, true
}

// isHex reports whether s is n lowercase hex digits.
func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func isZero(s string) bool { return strings.Trim(s, "0") == "" }
