package app

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
)

// recorder captures a handler's answer (httptest.ResponseRecorder without
// the testing import cycle in helpers).
type recorder struct {
	h      http.Header
	buf    bytes.Buffer
	status int
}

func newRecorder() *recorder                    { return &recorder{h: http.Header{}, status: http.StatusOK} }
func (r *recorder) Header() http.Header         { return r.h }
func (r *recorder) Write(b []byte) (int, error) { return r.buf.Write(b) }
func (r *recorder) WriteHeader(status int)      { r.status = status }

// forgeIDToken changes one claim of an id_token (nil removes it). The
// signature no longer matches, which the callback does not check (the token
// comes straight from Google over TLS); the claims checks must catch it.
func forgeIDToken(raw any, claim string, v any) string {
	parts := strings.Split(raw.(string), ".")
	b, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c map[string]any
	json.Unmarshal(b, &c)
	if v == nil {
		delete(c, claim)
	} else {
		c[claim] = v
	}
	b, _ = json.Marshal(c)
	parts[1] = base64.RawURLEncoding.EncodeToString(b)
	return strings.Join(parts, ".")
}
