// Package logging writes structured logs in the JSON shape that Cloud
// Logging reads from the stdout of Cloud Functions (2nd gen): "severity",
// "message", "time", and the request's trace, so that a function's log
// lines are grouped under its request. For a terminal it writes short text
// lines instead (NewText), chosen by LOG_FORMAT (see NewFormat).
//
// As a defence in depth, attributes whose key names a credential (token,
// code, secret, cookie, password, authorization, key, ...) are redacted.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Keys that Cloud Logging reads from a JSON log line.
const (
	severityKey     = "severity"
	messageKey      = "message"
	traceKey        = "logging.googleapis.com/trace"
	spanIDKey       = "logging.googleapis.com/spanId"
	traceSampledKey = "logging.googleapis.com/trace_sampled"
)

// New returns a JSON logger writing to w at level and above (Info if level
// is nil). Each line has "severity" (DEBUG, INFO, WARNING or ERROR),
// "message" and "time". When the context passed to a logging method
// carries a trace (see WithTrace) and projectID is not empty, the line also
// has "logging.googleapis.com/trace" = "projects/<projectID>/traces/<id>",
// "logging.googleapis.com/spanId" when known, and
// "logging.googleapis.com/trace_sampled".
func New(w io.Writer, projectID string, level slog.Leveler) *slog.Logger {
	base := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: replaceAttr})
	return slog.New(&handler{base: base, plain: base, projectID: projectID, requestLevel: slog.LevelInfo})
}

// NewText returns a logger writing one short line per record to w, for a
// person at a terminal: "time=15:04:05.000 level=INFO msg=... key=value",
// at level and above (Info if level is nil), with the same redaction as New
// and no trace. Request lines are at Debug (see Request).
func NewText(w io.Writer, level slog.Leveler) *slog.Logger {
	base := slog.NewTextHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: replaceTextAttr})
	return slog.New(&handler{base: base, plain: base, requestLevel: slog.LevelDebug})
}

// Log formats: the values of LOG_FORMAT.
const (
	FormatJSON = "json" // Cloud Logging's JSON (New): the default, and what deployed functions write
	FormatText = "text" // short lines for a terminal (NewText)
)

// NewFormat returns NewText's logger for FormatText, and otherwise New's.
func NewFormat(format string, w io.Writer, projectID string, level slog.Leveler) *slog.Logger {
	if format == FormatText {
		return NewText(w, level)
	}
	return New(w, projectID, level)
}

// Request writes the access line of one served request: message "request"
// with attrs. It is at Info in JSON, where Cloud Logging files it under the
// request's trace, and at Debug in text, where a line for every request
// would bury the lines that matter.
func Request(ctx context.Context, l *slog.Logger, attrs ...slog.Attr) {
	level := slog.LevelInfo
	if h, ok := l.Handler().(*handler); ok {
		level = h.requestLevel
	}
	l.LogAttrs(ctx, level, "request", attrs...)
}

// ParseLevel parses a LOG_LEVEL setting: debug, info, warn (or warning) or
// error, in any case.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("log level %q: want debug, info, warn or error", s)
}

// severity maps a slog level to a Cloud Logging severity.
func severity(l slog.Level) string {
	switch {
	case l < slog.LevelInfo:
		return "DEBUG"
	case l < slog.LevelWarn:
		return "INFO"
	case l < slog.LevelError:
		return "WARNING"
	default:
		return "ERROR"
	}
}

// replaceAttr renames the built-in keys to Cloud Logging's and redacts
// credentials.
func replaceAttr(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 {
		switch a.Key {
		case slog.LevelKey:
			if l, ok := a.Value.Any().(slog.Level); ok {
				return slog.String(severityKey, severity(l))
			}
		case slog.MessageKey:
			a.Key = messageKey
			return a
		}
	}
	return redact(groups, a)
}

// replaceTextAttr shortens the time to the time of day and redacts
// credentials.
func replaceTextAttr(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey && a.Value.Kind() == slog.KindTime {
		return slog.String(slog.TimeKey, a.Value.Time().Format("15:04:05.000"))
	}
	return redact(groups, a)
}

// handler adds the trace from the context to each record at the top
// level, outside any group opened with WithGroup.
type handler struct {
	base         slog.Handler // no attributes or groups added
	ops          []op         // WithAttrs and WithGroup calls, in order
	plain        slog.Handler // base with ops applied
	projectID    string       // "" for no trace
	requestLevel slog.Level   // the level of Request's lines
}

// op is one WithAttrs (attrs) or WithGroup (group) call.
type op struct {
	group string
	attrs []slog.Attr
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.plain.Enabled(ctx, l)
}

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	t, ok := traceFrom(ctx)
	if !ok || h.projectID == "" {
		return h.plain.Handle(ctx, r)
	}
	attrs := []slog.Attr{slog.String(traceKey, "projects/"+h.projectID+"/traces/"+t.id)}
	if t.spanID != "" {
		attrs = append(attrs, slog.String(spanIDKey, t.spanID))
	}
	attrs = append(attrs, slog.Bool(traceSampledKey, t.sampled))
	th := h.base.WithAttrs(attrs)
	for _, o := range h.ops {
		if o.attrs != nil {
			th = th.WithAttrs(o.attrs)
		} else {
			th = th.WithGroup(o.group)
		}
	}
	return th.Handle(ctx, r)
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	return h.with(op{attrs: attrs}, h.plain.WithAttrs(attrs))
}

func (h *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return h.with(op{group: name}, h.plain.WithGroup(name))
}

func (h *handler) with(o op, plain slog.Handler) *handler {
	ops := make([]op, len(h.ops), len(h.ops)+1)
	copy(ops, h.ops)
	return &handler{base: h.base, ops: append(ops, o), plain: plain, projectID: h.projectID, requestLevel: h.requestLevel}
}
