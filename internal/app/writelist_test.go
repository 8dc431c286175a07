package app

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/messages"
)

// TestWriteList_SameBytesAsWriteJSON: ListMessages' own encoder answers a
// page exactly as the generic writeJSON (encoding/json) does, HTML escaping,
// omitted empty fields, line separators and the empty list included; with
// invalid UTF-8 the same JSON value.
func TestWriteList_SameBytesAsWriteJSON(t *testing.T) {
	for name, p := range map[string]*messages.Page{
		"empty":         {Messages: []messages.Message{}},
		"plain":         {Messages: []messages.Message{{ID: "18c1", ThreadID: "18c0"}, {ID: "18c2", ThreadID: "18c2"}}, NextPageToken: "0987", ResultSizeEstimate: 201},
		"html":          {Messages: []messages.Message{{ID: "a", ThreadID: "b", From: `"Ann" <ann@example.com>`, Subject: "Q&A </script><b>", Snippet: "x > y & z"}}},
		"unicode":       {Messages: []messages.Message{{ID: "a", ThreadID: "b", Subject: "Grüße \u2028 ✓ \x00", Date: "Mon, 1 Dec 2026 19:00:00 +0000", Snippet: "\u2029"}}, ResultSizeEstimate: 1},
		"invalid utf-8": {Messages: []messages.Message{{ID: "a", ThreadID: "b", To: "bad \xff utf-8"}}},
	} {
		t.Run(name, func(t *testing.T) {
			want, got := httptest.NewRecorder(), httptest.NewRecorder()
			writeJSON(want, 200, p)
			writeList(got, p)
			same := bytes.Equal(got.Body.Bytes(), want.Body.Bytes())
			if name == "invalid utf-8" {
				var g, w any
				same = json.Unmarshal(got.Body.Bytes(), &g) == nil && json.Unmarshal(want.Body.Bytes(), &w) == nil && reflect.DeepEqual(g, w)
			}
			if !same {
				t.Errorf("writeList wrote\n%s\nwriteJSON\n%s", got.Body.Bytes(), want.Body.Bytes())
			}
			if got.Code != want.Code || got.Header().Get("Content-Type") != want.Header().Get("Content-Type") {
				t.Errorf("status %d, %q; want %d, %q", got.Code, got.Header().Get("Content-Type"), want.Code, want.Header().Get("Content-Type"))
			}
		})
	}
}
