package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
)

// TestProxy_ForwardsListWithTokenAndGmailParams checks that the floor sends
// a ListMessages-shaped request to the Gmail list with the fixed token, the
// Gmail parameters and fields of ListMessages (no other parameter, no
// cookie), and copies the answer's status and bytes.
func TestProxy_ForwardsListWithTokenAndGmailParams(t *testing.T) {
	var got *http.Request
	gmail := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"messages":[{"id":"a","threadId":"b"}]}`)
	}))
	defer gmail.Close()
	target, _ := url.Parse(gmail.URL + "/gmail/v1/users/me/messages")
	floor := httptest.NewServer(proxy(target, "tok123"))
	defer floor.Close()

	req, _ := http.NewRequest(http.MethodGet, floor.URL+"/ListMessages?maxResults=7&q=is%3Aunread&labelIds=A&labelIds=B&format=minimal", nil)
	req.Header.Set("Cookie", "session=x")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != `{"messages":[{"id":"a","threadId":"b"}]}` {
		t.Fatalf("answer %d %q", resp.StatusCode, body)
	}
	if got == nil {
		t.Fatal("Gmail was not called")
	}
	if got.URL.Path != "/gmail/v1/users/me/messages" || got.Header.Get("Authorization") != "Bearer tok123" || got.Header.Get("Cookie") != "" {
		t.Errorf("Gmail got %s with Authorization %q, Cookie %q", got.URL.Path, got.Header.Get("Authorization"), got.Header.Get("Cookie"))
	}
	want := url.Values{"alt": {"json"}, "prettyPrint": {"false"}, "fields": {"messages(id,threadId),nextPageToken,resultSizeEstimate"},
		"maxResults": {"7"}, "q": {"is:unread"}, "labelIds": {"A", "B"}}
	if q := got.URL.Query(); q.Encode() != want.Encode() {
		t.Errorf("Gmail query %q, want %q", q.Encode(), want.Encode())
	}

	resp, err = http.Post(floor.URL+"/ListMessages", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST answered %d, want 405", resp.StatusCode)
	}
}
