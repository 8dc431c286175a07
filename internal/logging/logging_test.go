package logging_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/logging"
)

const (
	traceKey   = "logging.googleapis.com/trace"
	spanKey    = "logging.googleapis.com/spanId"
	sampledKey = "logging.googleapis.com/trace_sampled"
)

// decode parses the single JSON line in buf.
func decode(t *testing.T, buf *bytes.Buffer) map[string]any {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("got %d log lines, want 1:\n%s", len(lines), buf)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
		t.Fatalf("log line is not JSON: %v\n%s", err, lines[0])
	}
	return m
}

func TestNew_WritesCloudLoggingShape(t *testing.T) {
	var buf bytes.Buffer
	logging.New(&buf, "my-project", nil).Info("hello", "user", "u1")
	m := decode(t, &buf)
	if m["severity"] != "INFO" || m["message"] != "hello" || m["user"] != "u1" {
		t.Errorf("log line = %v, want severity INFO, message hello, user u1", m)
	}
	if _, ok := m["time"].(string); !ok {
		t.Errorf("log line has no time: %v", m)
	}
	for _, k := range []string{"level", "msg", traceKey} {
		if _, ok := m[k]; ok {
			t.Errorf("log line has %q: %v", k, m)
		}
	}
}

func TestNew_MapsLevelsToSeverity(t *testing.T) {
	tests := []struct {
		level slog.Level
		want  string
	}{
		{slog.LevelDebug - 4, "DEBUG"},
		{slog.LevelDebug, "DEBUG"},
		{slog.LevelInfo, "INFO"},
		{slog.LevelInfo + 2, "INFO"},
		{slog.LevelWarn, "WARNING"},
		{slog.LevelError, "ERROR"},
		{slog.LevelError + 4, "ERROR"},
	}
	for _, tt := range tests {
		t.Run(tt.level.String(), func(t *testing.T) {
			var buf bytes.Buffer
			logging.New(&buf, "", slog.LevelDebug-4).Log(context.Background(), tt.level, "m")
			if got := decode(t, &buf)["severity"]; got != tt.want {
				t.Errorf("severity = %v, want %s", got, tt.want)
			}
		})
	}
}

func TestNew_DropsRecordsBelowLevel(t *testing.T) {
	var buf bytes.Buffer
	l := logging.New(&buf, "", slog.LevelWarn)
	l.Info("dropped")
	l.Warn("kept")
	if m := decode(t, &buf); m["message"] != "kept" {
		t.Errorf("logged %v, want only the warning", m)
	}
}

func TestWithTrace_LogLineCarriesExactTrace(t *testing.T) {
	const id = "105445aa7843bc8bf206b12000100000"
	tests := []struct {
		name        string
		header      string
		value       string
		wantSpan    string // "" means no spanId field
		wantSampled bool
	}{
		{"cloud trace with span", "X-Cloud-Trace-Context", id + "/1;o=1", "0000000000000001", true},
		{"cloud trace large span", "X-Cloud-Trace-Context", id + "/18446744073709551615;o=0", "ffffffffffffffff", false},
		{"cloud trace upper case", "X-Cloud-Trace-Context", strings.ToUpper(id) + "/255", "00000000000000ff", false},
		{"cloud trace without span", "X-Cloud-Trace-Context", id, "", false},
		{"traceparent", "traceparent", "00-" + id + "-00f067aa0ba902b7-01", "00f067aa0ba902b7", true},
		{"traceparent not sampled", "traceparent", "00-" + id + "-00f067aa0ba902b7-00", "00f067aa0ba902b7", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/ListMessages", nil)
			r.Header.Set(tt.header, tt.value)
			ctx := logging.WithTrace(context.Background(), r)

			var buf bytes.Buffer
			logging.New(&buf, "my-project", nil).InfoContext(ctx, "listed")
			m := decode(t, &buf)
			if want := "projects/my-project/traces/" + id; m[traceKey] != want {
				t.Errorf("%s = %v, want %s", traceKey, m[traceKey], want)
			}
			if got, ok := m[spanKey]; tt.wantSpan == "" && ok || tt.wantSpan != "" && got != tt.wantSpan {
				t.Errorf("%s = %v, want %q", spanKey, got, tt.wantSpan)
			}
			if m[sampledKey] != tt.wantSampled {
				t.Errorf("%s = %v, want %v", sampledKey, m[sampledKey], tt.wantSampled)
			}
		})
	}
}

func TestWithTrace_PrefersTraceparent(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	r.Header.Set("X-Cloud-Trace-Context", "105445aa7843bc8bf206b12000100000/1;o=1")
	var buf bytes.Buffer
	logging.New(&buf, "p", nil).InfoContext(logging.WithTrace(context.Background(), r), "m")
	if got, want := decode(t, &buf)[traceKey], "projects/p/traces/4bf92f3577b34da6a3ce929d0e0e4736"; got != want {
		t.Errorf("%s = %v, want %s", traceKey, got, want)
	}
}

func TestWithTrace_InvalidOrMissingHeader_NoTraceField(t *testing.T) {
	tests := []struct {
		name, header, value string
	}{
		{"none", "", ""},
		{"cloud trace too short", "X-Cloud-Trace-Context", "abc/1;o=1"},
		{"cloud trace all zero", "X-Cloud-Trace-Context", strings.Repeat("0", 32) + "/1"},
		{"cloud trace not hex", "X-Cloud-Trace-Context", strings.Repeat("g", 32)},
		{"traceparent zero trace", "traceparent", "00-" + strings.Repeat("0", 32) + "-00f067aa0ba902b7-01"},
		{"traceparent zero span", "traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"},
		{"traceparent bad version", "traceparent", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		{"traceparent extra field", "traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if tt.header != "" {
				r.Header.Set(tt.header, tt.value)
			}
			var buf bytes.Buffer
			logging.New(&buf, "p", nil).InfoContext(logging.WithTrace(context.Background(), r), "m")
			if m := decode(t, &buf); m[traceKey] != nil {
				t.Errorf("%s = %v, want none", traceKey, m[traceKey])
			}
		})
	}
}

func TestNew_NoProjectID_NoTraceField(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-Cloud-Trace-Context", "105445aa7843bc8bf206b12000100000/1;o=1")
	var buf bytes.Buffer
	logging.New(&buf, "", nil).InfoContext(logging.WithTrace(context.Background(), r), "m")
	if m := decode(t, &buf); m[traceKey] != nil {
		t.Errorf("%s = %v, want none without a project id", traceKey, m[traceKey])
	}
}

func TestNew_TraceStaysTopLevelUnderGroups(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-Cloud-Trace-Context", "105445aa7843bc8bf206b12000100000/1;o=1")
	ctx := logging.WithTrace(context.Background(), r)
	var buf bytes.Buffer
	l := logging.New(&buf, "p", nil).With("fn", "ListMessages").WithGroup("req").With("path", "/x")
	l.InfoContext(ctx, "m", "status", 200)
	m := decode(t, &buf)
	if m[traceKey] != "projects/p/traces/105445aa7843bc8bf206b12000100000" || m["fn"] != "ListMessages" {
		t.Errorf("top level = %v, want trace and fn", m)
	}
	req, _ := m["req"].(map[string]any)
	if req["path"] != "/x" || req["status"] != float64(200) {
		t.Errorf("req group = %v, want path and status", req)
	}
}

type tokenValue struct{ tok string }

func (v tokenValue) LogValue() slog.Value {
	return slog.GroupValue(slog.String("access_token", v.tok), slog.String("kind", "bearer"))
}

func TestNew_RedactsCredentialKeys(t *testing.T) {
	const s = "ya29.SECRET-VALUE"
	tests := []struct {
		name string
		log  func(*slog.Logger)
		path []string // where the redacted value must be
	}{
		{"token", func(l *slog.Logger) { l.Info("m", "token", s) }, []string{"token"}},
		{"access_token", func(l *slog.Logger) { l.Info("m", "access_token", s) }, []string{"access_token"}},
		{"refresh_token", func(l *slog.Logger) { l.Info("m", "refresh_token", s) }, []string{"refresh_token"}},
		{"id_token", func(l *slog.Logger) { l.Info("m", "id_token", s) }, []string{"id_token"}},
		{"code", func(l *slog.Logger) { l.Info("m", "code", s) }, []string{"code"}},
		{"client_secret", func(l *slog.Logger) { l.Info("m", "client_secret", s) }, []string{"client_secret"}},
		{"Set-Cookie", func(l *slog.Logger) { l.Info("m", "Set-Cookie", s) }, []string{"Set-Cookie"}},
		{"password", func(l *slog.Logger) { l.Info("m", "password", s) }, []string{"password"}},
		{"Authorization", func(l *slog.Logger) { l.Info("m", "Authorization", s) }, []string{"Authorization"}},
		{"api_key", func(l *slog.Logger) { l.Info("m", "api_key", s) }, []string{"api_key"}},
		{"mixed case suffix", func(l *slog.Logger) { l.Info("m", "RefreshToken", s) }, []string{"RefreshToken"}},
		{"plural", func(l *slog.Logger) { l.Info("m", "keys", []string{s}) }, []string{"keys"}},
		{"non-string value", func(l *slog.Logger) { l.Info("m", "secret", []byte(s)) }, []string{"secret"}},
		{"inside a group", func(l *slog.Logger) { l.Info("m", slog.Group("oauth", "refresh_token", s)) }, []string{"oauth", "refresh_token"}},
		{"group named for a credential", func(l *slog.Logger) { l.Info("m", slog.Group("token", "value", s)) }, []string{"token", "value"}},
		{"under WithGroup", func(l *slog.Logger) { l.WithGroup("req").Info("m", "cookie", s) }, []string{"req", "cookie"}},
		{"With attrs", func(l *slog.Logger) { l.With("id_token", s).Info("m") }, []string{"id_token"}},
		{"LogValuer", func(l *slog.Logger) { l.Info("m", "tok", tokenValue{s}) }, []string{"tok", "access_token"}},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/json", func(t *testing.T) {
			var buf bytes.Buffer
			tt.log(logging.New(&buf, "p", nil))
			if strings.Contains(buf.String(), "SECRET-VALUE") {
				t.Fatalf("log line shows the secret: %s", buf.String())
			}
			var v any = decode(t, &buf)
			for _, k := range tt.path {
				v = v.(map[string]any)[k]
			}
			if v != "[REDACTED]" {
				t.Errorf("value at %v = %v, want [REDACTED]", tt.path, v)
			}
		})
		t.Run(tt.name+"/text", func(t *testing.T) {
			var buf bytes.Buffer
			tt.log(logging.NewText(&buf, nil))
			line := buf.String()
			if strings.Contains(line, "SECRET-VALUE") {
				t.Fatalf("log line shows the secret: %s", line)
			}
			if want := " " + strings.Join(tt.path, ".") + "=[REDACTED]"; strings.Count(line, "\n") != 1 || !strings.Contains(line, want) {
				t.Errorf("log line %q, want one line with %q", line, want)
			}
		})
	}
}

func TestNew_KeepsOrdinaryKeys(t *testing.T) {
	var buf bytes.Buffer
	logging.New(&buf, "p", nil).Info("m", "email", "a@example.com", "sub", "123", "status", 401, "key_id", "k1", "tokens_count", 2)
	m := decode(t, &buf)
	want := map[string]any{"email": "a@example.com", "sub": "123", "status": float64(401), "key_id": "k1", "tokens_count": float64(2)}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
}

func TestParseLevel(t *testing.T) {
	tests := []struct {
		in      string
		want    slog.Level
		wantErr bool
	}{
		{"debug", slog.LevelDebug, false},
		{"info", slog.LevelInfo, false},
		{"warn", slog.LevelWarn, false},
		{"WARNING", slog.LevelWarn, false},
		{" Error ", slog.LevelError, false},
		{"", 0, true},
		{"verbose", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := logging.ParseLevel(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("ParseLevel(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestNewText_OneShortLinePerRecord(t *testing.T) {
	var buf bytes.Buffer
	l := logging.NewText(&buf, nil)
	l.Debug("dropped")
	l.With("fn", "Callback").Warn("callback: Gmail scope not granted", "sub", "123", "err", "it's gone")
	line := buf.String()
	want := regexp.MustCompile(`^time=\d\d:\d\d:\d\d\.\d{3} level=WARN msg="callback: Gmail scope not granted" fn=Callback sub=123 err="it's gone"\n$`)
	if !want.MatchString(line) {
		t.Errorf("got %q, want a line matching %s", line, want)
	}
}

func TestNewText_NoTraceFields(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-Cloud-Trace-Context", "105445aa7843bc8bf206b12000100000/1;o=1")
	var buf bytes.Buffer
	logging.NewText(&buf, nil).InfoContext(logging.WithTrace(context.Background(), r), "m")
	if strings.Contains(buf.String(), "logging.googleapis.com") {
		t.Errorf("text line carries Cloud Logging's trace fields: %s", buf.String())
	}
}

// TestRequest_InfoInJSONDebugInText: the access line of every request is in
// Cloud Logging at Info, and out of a terminal's way unless LOG_LEVEL=debug.
func TestRequest_InfoInJSONDebugInText(t *testing.T) {
	for _, tt := range []struct {
		format    string
		level     slog.Level
		wantLines int
	}{
		{logging.FormatJSON, slog.LevelInfo, 1},
		{logging.FormatText, slog.LevelInfo, 0},
		{logging.FormatText, slog.LevelDebug, 1},
	} {
		t.Run(tt.format+"/"+tt.level.String(), func(t *testing.T) {
			var buf bytes.Buffer
			l := logging.NewFormat(tt.format, &buf, "p", tt.level).With("fn", "x") // derived loggers keep the rule
			logging.Request(context.Background(), l, slog.String("function", "ListMessages"), slog.Int("status", 200))
			if got := strings.Count(buf.String(), "\n"); got != tt.wantLines || tt.wantLines == 1 && !strings.Contains(buf.String(), "ListMessages") {
				t.Errorf("%d lines %q, want %d access line", got, buf.String(), tt.wantLines)
			}
			if tt.format == logging.FormatJSON {
				if m := decode(t, &buf); m["severity"] != "INFO" || m["message"] != "request" {
					t.Errorf("JSON access line %v, want severity INFO, message request", m)
				}
			}
		})
	}
}
