package fakegoogle

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/api/gmail/v1"
	"google.golang.org/api/googleapi"
)

// mailboxBase is the newest date of the crafted mailbox.
var mailboxBase = time.Date(2025, time.March, 10, 12, 0, 0, 0, time.UTC)

// craftedMailbox is a small mailbox for search tests, deliberately unsorted.
func craftedMailbox() []Message {
	at := func(h int) time.Time { return mailboxBase.Add(-time.Duration(h) * time.Hour) }
	return []Message{
		{ID: "a3", From: "me@example.com", To: "Bob <bob@example.net>", Subject: "Quarterly report", Snippet: "attached the numbers", Date: at(2), LabelIDs: []string{"SENT"}},
		{ID: "a1", From: "Alice <alice@example.org>", To: "me@example.com", Subject: "Lunch on Tuesday", Snippet: "see you at noon", Date: at(0), LabelIDs: []string{"INBOX", "UNREAD", "CATEGORY_PERSONAL"}},
		{ID: "a6", ThreadID: "a3", From: "Alice <alice@example.org>", To: "me@example.com", Subject: "Re: Quarterly report", Snippet: "looks good to me", Date: at(48), LabelIDs: []string{"INBOX", "STARRED", "Label_7"}},
		{ID: "a2", From: "GitHub <noreply@github.example>", To: "me@example.com", Subject: "[repo] PR merged", Snippet: "your pull request was merged", Date: at(1), LabelIDs: []string{"INBOX", "CATEGORY_UPDATES"}},
		{ID: "a5", From: "Shop <deals@shop.example>", To: "me@example.com", Subject: "50% off lunch boxes", Snippet: "this weekend only", Date: at(4), LabelIDs: []string{"TRASH", "CATEGORY_PROMOTIONS"}},
		{ID: "a4", From: "Prize <win@spam.example>", To: "me@example.com", Subject: "You WON", Snippet: "claim now", Date: at(3), LabelIDs: []string{"SPAM", "UNREAD"}},
	}
}

// craftedHarness serves the crafted mailbox for me@example.com and returns
// a Gmail client for that user.
func craftedHarness(t *testing.T) (*harness, *gmail.Service) {
	t.Helper()
	h := newHarness(t, Options{AutoApprove: true, Now: func() time.Time { return mailboxBase.Add(time.Hour) }})
	h.fake.SetMailbox("me@example.com", craftedMailbox())
	return h, h.gmail(t, h.tokenFor(t, "me@example.com").AccessToken)
}

func ids(msgs []*gmail.Message) []string {
	out := []string{}
	for _, m := range msgs {
		out = append(out, m.Id)
	}
	return out
}

func TestListAllPagesYieldsEveryMessageOnceNewestFirst(t *testing.T) {
	h := newHarness(t, Options{AutoApprove: true})
	svc := h.gmail(t, h.tokenFor(t, DemoEmail).AccessToken)

	var want []string
	h.fake.mu.Lock()
	demo := h.fake.userLocked(DemoEmail)
	h.fake.mu.Unlock()
	for _, m := range h.fake.mailboxOf(demo).msgs {
		if !m.hasLabel("SPAM") && !m.hasLabel("TRASH") {
			want = append(want, m.ID)
		}
	}
	var got []string
	pages := 0
	err := svc.Users.Messages.List("me").MaxResults(500).Pages(t.Context(), func(r *gmail.ListMessagesResponse) error {
		pages++
		if r.ResultSizeEstimate != int64(len(want)) {
			t.Errorf("page %d: resultSizeEstimate %d, want %d", pages, r.ResultSizeEstimate, len(want))
		}
		got = append(got, ids(r.Messages)...)
		return nil
	})
	if err != nil {
		t.Fatalf("listing: %v", err)
	}
	if pages != 3 {
		t.Errorf("%d pages, want 3 for %d messages", pages, len(want))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("listed %d messages, want all %d once in mailbox order", len(got), len(want))
	}
}

func TestPagingIsStableWhenNewMailArrives(t *testing.T) {
	h, svc := craftedHarness(t)
	first, err := svc.Users.Messages.List("me").MaxResults(2).Do()
	if err != nil {
		t.Fatal(err)
	}
	msgs := append(craftedMailbox(), Message{ID: "a0", Subject: "new", Date: mailboxBase.Add(time.Minute), LabelIDs: []string{"INBOX"}})
	h.fake.SetMailbox("me@example.com", msgs)
	second, err := svc.Users.Messages.List("me").MaxResults(2).PageToken(first.NextPageToken).Do()
	if err != nil {
		t.Fatal(err)
	}
	if got := append(ids(first.Messages), ids(second.Messages)...); !slices.Equal(got, []string{"a1", "a2", "a3", "a6"}) {
		t.Fatalf("pages gave %v", got)
	}
	if second.NextPageToken != "" {
		t.Errorf("last page has nextPageToken %q", second.NextPageToken)
	}
}

func TestListMaxResults(t *testing.T) {
	h := newHarness(t, Options{AutoApprove: true})
	tok := h.tokenFor(t, DemoEmail).AccessToken
	tests := []struct {
		name       string
		param      string
		wantStatus int
		wantCount  int
	}{
		{"default is 100", "", 200, 100},
		{"500 is allowed", "500", 200, 500},
		{"above 500 is capped at 500", "501", 200, 500},
		{"far above 500 is capped at 500", "100000", 200, 500},
		{"1 is allowed", "1", 200, 1},
		{"0 is invalid", "0", 400, 0},
		{"negative is invalid", "-5", 400, 0},
		{"non-numeric is invalid", "ten", 400, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := "/gmail/v1/users/me/messages"
			if tt.param != "" {
				path += "?maxResults=" + tt.param
			}
			res, body := h.gmailGET(t, tok, path)
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("status %d body %v", res.StatusCode, body)
			}
			if msgs, _ := body["messages"].([]any); len(msgs) != tt.wantCount {
				t.Fatalf("%d messages, want %d", len(msgs), tt.wantCount)
			}
		})
	}
}

func TestListQueryFilters(t *testing.T) {
	_, svc := craftedHarness(t)
	tests := []struct {
		q    string
		want []string
	}{
		{"", []string{"a1", "a2", "a3", "a6"}},
		{"from:alice", []string{"a1", "a6"}},
		{"from:ALICE@example.org", []string{"a1", "a6"}},
		{"to:bob", []string{"a3"}},
		{"subject:report", []string{"a3", "a6"}},
		{"subject:(report quarterly)", []string{"a3", "a6"}},
		{`subject:"re: quarterly"`, []string{"a6"}},
		{"is:unread", []string{"a1"}},
		{"is:read", []string{"a2", "a3", "a6"}},
		{"is:starred", []string{"a6"}},
		{"label:label_7", []string{"a6"}},
		{"label:unread", []string{"a1"}},
		{"in:inbox", []string{"a1", "a2", "a6"}},
		{"in:sent", []string{"a3"}},
		{"in:spam", []string{"a4"}},
		{"in:trash", []string{"a5"}},
		{"category:updates", []string{"a2"}},
		{"lunch", []string{"a1"}},
		{"in:anywhere lunch", []string{"a1", "a5"}},
		{"LUNCH tuesday", []string{"a1"}},
		{`"see you"`, []string{"a1"}},
		{`"you see"`, []string{}},
		{"report -from:alice", []string{"a3"}},
		{"-in:inbox", []string{"a3"}},
		{"from:alice OR from:github", []string{"a1", "a2", "a6"}},
		{"after:2025/03/09", []string{"a1", "a2", "a3"}},
		{"before:2025/03/09", []string{"a6"}},
		{"newer_than:1d", []string{"a1", "a2", "a3"}},
		{"older_than:1d", []string{"a6"}},
		{"nomatch", []string{}},
	}
	for _, tt := range tests {
		t.Run("q="+tt.q, func(t *testing.T) {
			r, err := svc.Users.Messages.List("me").Q(tt.q).Do()
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(r.Messages); !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			if r.ResultSizeEstimate != int64(len(tt.want)) {
				t.Errorf("resultSizeEstimate %d, want %d", r.ResultSizeEstimate, len(tt.want))
			}
		})
	}
}

func TestListLabelIDsAndSpamTrash(t *testing.T) {
	_, svc := craftedHarness(t)
	tests := []struct {
		name             string
		labels           []string
		includeSpamTrash bool
		want             []string
	}{
		{"INBOX", []string{"INBOX"}, false, []string{"a1", "a2", "a6"}},
		{"every label must match", []string{"INBOX", "UNREAD"}, false, []string{"a1"}},
		{"user label", []string{"Label_7"}, false, []string{"a6"}},
		{"label IDs are case-sensitive", []string{"inbox"}, false, []string{}},
		{"SPAM asked for by label", []string{"SPAM"}, false, []string{"a4"}},
		{"UNREAD skips spam by default", []string{"UNREAD"}, false, []string{"a1"}},
		{"UNREAD includes spam with includeSpamTrash", []string{"UNREAD"}, true, []string{"a1", "a4"}},
		{"no labels excludes spam and trash", nil, false, []string{"a1", "a2", "a3", "a6"}},
		{"no labels with includeSpamTrash lists everything", nil, true, []string{"a1", "a2", "a3", "a4", "a5", "a6"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := svc.Users.Messages.List("me").LabelIds(tt.labels...).IncludeSpamTrash(tt.includeSpamTrash).Do()
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(r.Messages); !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestListOmitsEmptyFields(t *testing.T) {
	h, _ := craftedHarness(t)
	tok := h.tokenFor(t, "me@example.com").AccessToken
	res, body := h.gmailGET(t, tok, "/gmail/v1/users/me/messages?q=nomatch")
	if res.StatusCode != 200 || len(body) != 1 || body["resultSizeEstimate"] != float64(0) {
		t.Fatalf("empty result %d %v, want only resultSizeEstimate 0", res.StatusCode, body)
	}
}

func TestListRejectsBadParameters(t *testing.T) {
	h, _ := craftedHarness(t)
	tok := h.tokenFor(t, "me@example.com").AccessToken
	tests := []struct {
		name    string
		query   string
		wantMsg string
	}{
		{"garbage pageToken", "pageToken=garbage", "Invalid pageToken"},
		{"forged pageToken", "pageToken=" + base64.RawURLEncoding.EncodeToString(make([]byte, 30)), "Invalid pageToken"},
		{"bad includeSpamTrash", "includeSpamTrash=maybe", `Invalid includeSpamTrash: "maybe"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, body := h.gmailGET(t, tok, "/gmail/v1/users/me/messages?"+tt.query)
			e := body["error"].(map[string]any)
			errs := e["errors"].([]any)
			reason := errs[0].(map[string]any)["reason"]
			if res.StatusCode != 400 || e["code"] != float64(400) || e["message"] != tt.wantMsg || e["status"] != "INVALID_ARGUMENT" || reason != "invalidArgument" {
				t.Fatalf("%d %v", res.StatusCode, body)
			}
		})
	}

	t.Run("a page token from another server", func(t *testing.T) {
		other := New(Options{})
		res, _ := h.gmailGET(t, tok, "/gmail/v1/users/me/messages?pageToken="+other.encodePageToken(pageKey{date: mailboxBase, id: "a1"}))
		if res.StatusCode != 400 {
			t.Fatalf("status %d, want 400", res.StatusCode)
		}
	})
}

func TestGetMessageFormats(t *testing.T) {
	h, svc := craftedHarness(t)
	tests := []struct {
		name        string
		call        func() (*gmail.Message, error)
		wantHeaders []string // name=value
		wantPayload bool
		check       func(t *testing.T, m *gmail.Message)
	}{
		{"metadata keeps the named headers in message order", func() (*gmail.Message, error) {
			return svc.Users.Messages.Get("me", "a1").Format("metadata").MetadataHeaders("subject", "From").Do()
		}, []string{"From=Alice <alice@example.org>", "Subject=Lunch on Tuesday"}, true, nil},
		{"metadata without names has all headers", func() (*gmail.Message, error) {
			return svc.Users.Messages.Get("me", "a1").Format("metadata").Do()
		}, []string{"From=Alice <alice@example.org>", "To=me@example.com", "Subject=Lunch on Tuesday", "Date=Mon, 10 Mar 2025 12:00:00 +0000"}, true, nil},
		{"minimal has no payload", func() (*gmail.Message, error) {
			return svc.Users.Messages.Get("me", "a1").Format("minimal").Do()
		}, nil, false, nil},
		{"full has the body", func() (*gmail.Message, error) {
			return svc.Users.Messages.Get("me", "a1").Do()
		}, []string{"From=Alice <alice@example.org>", "To=me@example.com", "Subject=Lunch on Tuesday", "Date=Mon, 10 Mar 2025 12:00:00 +0000"}, true, func(t *testing.T, m *gmail.Message) {
			b, err := base64.URLEncoding.DecodeString(m.Payload.Body.Data)
			if err != nil || string(b) != "see you at noon" {
				t.Errorf("body %q (%v)", b, err)
			}
		}},
		{"raw is the RFC 5322 message", func() (*gmail.Message, error) {
			return svc.Users.Messages.Get("me", "a1").Format("raw").Do()
		}, nil, false, func(t *testing.T, m *gmail.Message) {
			b, err := base64.URLEncoding.DecodeString(m.Raw)
			if err != nil || !strings.Contains(string(b), "Subject: Lunch on Tuesday\r\n") || int64(len(b)) != m.SizeEstimate {
				t.Errorf("raw %q (%v), sizeEstimate %d", b, err, m.SizeEstimate)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := tt.call()
			if err != nil {
				t.Fatal(err)
			}
			if m.Id != "a1" || m.ThreadId != "a1" || m.Snippet != "see you at noon" || m.HistoryId == 0 ||
				m.InternalDate != mailboxBase.UnixMilli() || !slices.Equal(m.LabelIds, []string{"INBOX", "UNREAD", "CATEGORY_PERSONAL"}) {
				t.Errorf("message fields %+v", m)
			}
			if (m.Payload != nil) != tt.wantPayload {
				t.Fatalf("payload present = %v, want %v", m.Payload != nil, tt.wantPayload)
			}
			if m.Payload != nil {
				var got []string
				for _, hd := range m.Payload.Headers {
					got = append(got, hd.Name+"="+hd.Value)
				}
				if !slices.Equal(got, tt.wantHeaders) || m.Payload.MimeType != "text/plain" {
					t.Errorf("headers %q (%s), want %q", got, m.Payload.MimeType, tt.wantHeaders)
				}
			}
			if tt.check != nil {
				tt.check(t, m)
			}
		})
	}

	t.Run("thread ID is kept", func(t *testing.T) {
		m, err := svc.Users.Messages.Get("me", "a6").Format("minimal").Do()
		if err != nil || m.ThreadId != "a3" {
			t.Fatalf("threadId %q (%v), want a3", m.ThreadId, err)
		}
	})

	tok := h.tokenFor(t, "me@example.com").AccessToken
	errTests := []struct {
		name        string
		path        string
		wantStatus  int
		wantMsg     string
		wantStatus2 string
	}{
		{"unknown id is not found", "/gmail/v1/users/me/messages/nope", 404, "Requested entity was not found.", "NOT_FOUND"},
		{"unknown format is invalid", "/gmail/v1/users/me/messages/a1?format=html", 400, `Invalid value at 'format': "html"`, "INVALID_ARGUMENT"},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			res, body := h.gmailGET(t, tok, tt.path)
			e, _ := body["error"].(map[string]any)
			if res.StatusCode != tt.wantStatus || e["message"] != tt.wantMsg || e["status"] != tt.wantStatus2 {
				t.Fatalf("%d %v", res.StatusCode, body)
			}
		})
	}
}

func TestGmailRejectsBadCredentials(t *testing.T) {
	clock := newFakeClock()
	h := newHarness(t, Options{AutoApprove: true, Now: clock.Now})
	good := h.tokenFor(t, "cred@example.com").AccessToken
	noGmail := h.tokenFor(t, "cred2@example.com", OpenIDScope, "email").AccessToken
	expired := h.tokenFor(t, "cred3@example.com").AccessToken
	h.fake.ExpireAccessTokens("cred3@example.com")

	unauthenticated := `{"error":{"code":401,"message":"Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.","errors":[{"message":"Invalid Credentials","domain":"global","reason":"authError","location":"Authorization","locationType":"header"}],"status":"UNAUTHENTICATED"}}`
	insufficient := `{"error":{"code":403,"message":"Request had insufficient authentication scopes.","errors":[{"message":"Insufficient Permission","domain":"global","reason":"insufficientPermissions"}],"status":"PERMISSION_DENIED"}}`
	tests := []struct {
		name       string
		token      string
		path       string
		wantStatus int
		wantBody   string // exact JSON when set
		wantAuthn  string // WWW-Authenticate when set
	}{
		{"no token", "", "/gmail/v1/users/me/messages", 401, unauthenticated, `Bearer realm="https://accounts.google.com/", error="invalid_token"`},
		{"unknown token", "ya29.nope", "/gmail/v1/users/me/messages", 401, unauthenticated, `Bearer realm="https://accounts.google.com/", error="invalid_token"`},
		{"expired token", expired, "/gmail/v1/users/me/messages", 401, unauthenticated, ""},
		{"expired token at get", expired, "/gmail/v1/users/me/messages/x", 401, unauthenticated, ""},
		{"token without the Gmail scope", noGmail, "/gmail/v1/users/me/messages", 403, insufficient, ""},
		{"another user's mailbox", good, "/gmail/v1/users/someone@example.com/messages", 403, "", ""},
		{"own email as userId", good, "/gmail/v1/users/Cred@Example.com/messages", 200, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, body := h.gmailGET(t, tt.token, tt.path)
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("status %d body %v, want %d", res.StatusCode, body, tt.wantStatus)
			}
			if tt.wantBody != "" {
				got, _ := json.Marshal(body)
				var want map[string]any
				json.Unmarshal([]byte(tt.wantBody), &want)
				wantJSON, _ := json.Marshal(want)
				if string(got) != string(wantJSON) {
					t.Errorf("body\n%s\nwant\n%s", got, wantJSON)
				}
			}
			if tt.wantAuthn != "" && res.Header.Get("WWW-Authenticate") != tt.wantAuthn {
				t.Errorf("WWW-Authenticate %q", res.Header.Get("WWW-Authenticate"))
			}
			if tt.wantStatus == 403 && tt.wantBody == "" {
				e := body["error"].(map[string]any)
				if e["message"] != "Delegation denied for cred@example.com" || e["status"] != "PERMISSION_DENIED" {
					t.Errorf("body %v", body)
				}
			}
		})
	}
}

func TestMetadataScopeLimitsGmail(t *testing.T) {
	h, _ := craftedHarness(t)
	tok := h.tokenFor(t, "me@example.com", gmailMetadataScope).AccessToken
	tests := []struct {
		path       string
		wantStatus int
	}{
		{"/gmail/v1/users/me/messages", 200},
		{"/gmail/v1/users/me/messages?q=lunch", 403},
		{"/gmail/v1/users/me/messages/a1?format=metadata", 200},
		{"/gmail/v1/users/me/messages/a1?format=full", 403},
		{"/gmail/v1/users/me/messages/a1", 403},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			if res, body := h.gmailGET(t, tok, tt.path); res.StatusCode != tt.wantStatus {
				t.Fatalf("%d %v, want %d", res.StatusCode, body, tt.wantStatus)
			}
		})
	}
}

func TestInjectedGmailFaults(t *testing.T) {
	tests := []struct {
		name       string
		fault      Fault
		wantReason string
		wantDomain string
		wantStatus string
	}{
		{"429 rate limit", Fault{Status: 429}, "rateLimitExceeded", "usageLimits", "RESOURCE_EXHAUSTED"},
		{"403 rateLimitExceeded", Fault{Status: 403, Reason: "rateLimitExceeded"}, "rateLimitExceeded", "usageLimits", "PERMISSION_DENIED"},
		{"403 userRateLimitExceeded with Retry-After", Fault{Status: 403, Reason: "userRateLimitExceeded", RetryAfter: "7"}, "userRateLimitExceeded", "usageLimits", "PERMISSION_DENIED"},
		{"500 backend error", Fault{Status: 500}, "backendError", "global", "INTERNAL"},
		{"503 unavailable", Fault{Status: 503, Reason: "backendError", RetryAfter: "1"}, "backendError", "global", "UNAVAILABLE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, svc := craftedHarness(t)
			h.fake.ResetCounts()
			h.fake.InjectGmailFault(tt.fault, 2)

			_, err := svc.Users.Messages.List("me").Do()
			var ge *googleapi.Error
			if !errors.As(err, &ge) || ge.Code != tt.fault.Status || len(ge.Errors) != 1 || ge.Errors[0].Reason != tt.wantReason {
				t.Fatalf("first request: %v, want %d %s", err, tt.fault.Status, tt.wantReason)
			}
			if got := ge.Header.Get("Retry-After"); got != tt.fault.RetryAfter {
				t.Errorf("Retry-After %q, want %q", got, tt.fault.RetryAfter)
			}
			var body struct {
				Error struct {
					Status string
					Errors []struct{ Domain string }
				}
			}
			if err := json.Unmarshal([]byte(ge.Body), &body); err != nil || body.Error.Status != tt.wantStatus || body.Error.Errors[0].Domain != tt.wantDomain {
				t.Errorf("body %s, want status %s domain %s", ge.Body, tt.wantStatus, tt.wantDomain)
			}
			if _, err := svc.Users.Messages.Get("me", "a1").Do(); err == nil {
				t.Fatalf("second request (get) succeeded, want the fault")
			}
			if _, err := svc.Users.Messages.List("me").Do(); err != nil {
				t.Fatalf("third request: %v, want success", err)
			}
			if c := h.fake.Counts(); c[CountGmailList] != 2 || c[CountGmailGet] != 1 {
				t.Errorf("counts %v, want 2 lists and 1 get", c)
			}
		})
	}
}

func TestGmailFaultWithStatusZeroDropsTheConnection(t *testing.T) {
	h, _ := craftedHarness(t)
	tok := h.tokenFor(t, "me@example.com").AccessToken
	h.fake.InjectGmailFault(Fault{}, 1)
	req, _ := http.NewRequest(http.MethodGet, h.ts.URL+"/gmail/v1/users/me/messages", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err == nil {
		_, err = io.ReadAll(res.Body)
		res.Body.Close()
	}
	if err == nil {
		t.Fatalf("got a whole answer, want a network error")
	}
	if _, err := h.gmail(t, tok).Users.Messages.List("me").Do(); err != nil {
		t.Fatalf("after the fault: %v", err)
	}
}

func TestGmailQuotaPerUserPerMinute(t *testing.T) {
	clock := newFakeClock()
	h := newHarness(t, Options{AutoApprove: true, Now: clock.Now, MessagesPerUser: 10})
	svc := h.gmail(t, h.tokenFor(t, "busy@example.com").AccessToken)
	other := h.gmail(t, h.tokenFor(t, "calm@example.com").AccessToken)
	list, err := svc.Users.Messages.List("me").Do()
	if err != nil {
		t.Fatal(err)
	}
	id := list.Messages[0].Id
	// 5 units spent; 299 gets bring it to 5985 units.
	for i := range 299 {
		if _, err := svc.Users.Messages.Get("me", id).Format("minimal").Do(); err != nil {
			t.Fatalf("get %d: %v", i, err)
		}
	}
	overQuota := func(err error) bool {
		var ge *googleapi.Error
		return errors.As(err, &ge) && ge.Code == 429 && ge.Errors[0].Reason == "rateLimitExceeded" && strings.Contains(ge.Body, "RESOURCE_EXHAUSTED")
	}
	if _, err := svc.Users.Messages.Get("me", id).Do(); !overQuota(err) {
		t.Fatalf("get (20 units) at 5985: %v, want 429 rateLimitExceeded", err)
	}
	for i := range 3 {
		if _, err := svc.Users.Messages.List("me").Do(); err != nil {
			t.Fatalf("list %d (5 units) from 5985: %v", i, err)
		}
	}
	if _, err := svc.Users.Messages.List("me").Do(); !overQuota(err) {
		t.Fatalf("list at 6000: %v, want 429 rateLimitExceeded", err)
	}
	if _, err := other.Users.Messages.List("me").Do(); err != nil {
		t.Fatalf("another user is limited too: %v", err)
	}
	clock.Advance(time.Minute)
	if _, err := svc.Users.Messages.List("me").Do(); err != nil {
		t.Fatalf("a minute later: %v", err)
	}
}

func TestSeededMailboxIsDeterministicAndVaried(t *testing.T) {
	a, b := seedMessages("seed@example.com", 1234), seedMessages("SEED@example.com", 1234)
	if len(a) != 1234 {
		t.Fatalf("%d messages", len(a))
	}
	labels := map[string]int{}
	from, subjects, snippets := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for i := range a {
		if !reflect.DeepEqual(a[i], b[i]) {
			t.Fatalf("message %d differs between two seedings:\n%+v\n%+v", i, a[i], b[i])
		}
		if i > 0 && !a[i].Date.Before(a[i-1].Date) {
			t.Fatalf("message %d is not older than message %d", i, i-1)
		}
		for _, l := range a[i].LabelIDs {
			labels[l]++
		}
		for _, s := range []string{a[i].From, a[i].To, a[i].Subject, a[i].Snippet} {
			if s == "" || strings.ContainsAny(s, "{}") {
				t.Fatalf("message %d has an empty or unfilled field %q: %+v", i, s, a[i])
			}
		}
		from[a[i].From], subjects[a[i].Subject], snippets[a[i].Snippet] = true, true, true
	}
	for _, l := range []string{"INBOX", "UNREAD", "SENT", "SPAM", "TRASH", "CATEGORY_PERSONAL", "CATEGORY_PROMOTIONS", "CATEGORY_UPDATES", "CATEGORY_SOCIAL", "CATEGORY_FORUMS", "STARRED"} {
		if labels[l] == 0 {
			t.Errorf("no message labelled %s", l)
		}
	}
	// Looks like a real inbox: many senders, subjects and snippets, over
	// months.
	if len(from) < 20 || len(subjects) < 400 || len(snippets) < 400 {
		t.Errorf("%d senders, %d subjects and %d snippets in 1234 messages; want at least 20, 400 and 400", len(from), len(subjects), len(snippets))
	}
	if span := a[0].Date.Sub(a[len(a)-1].Date); span < 180*24*time.Hour {
		t.Errorf("the mailbox spans %v, want at least six months", span)
	}
	if c := seedMessages("other@example.com", 1); c[0].ID == a[0].ID && c[0].Subject == a[0].Subject && c[0].From == a[0].From {
		t.Errorf("two users got the same mailbox")
	}
}

// TestSeededMailbox_SearchFindsSendersAndSubjectWords: the demo mailbox
// answers the searches a newcomer tries (a sender, a subject word), and each
// narrows the inbox.
func TestSeededMailbox_SearchFindsSendersAndSubjectWords(t *testing.T) {
	h := newHarness(t, Options{AutoApprove: true})
	svc := h.gmail(t, h.tokenFor(t, DemoEmail).AccessToken)
	all, err := svc.Users.Messages.List("me").Do()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"from:github", "from:alice", "subject:parcel", "lunch", "subject:(statement ready)"} {
		t.Run(q, func(t *testing.T) {
			r, err := svc.Users.Messages.List("me").Q(q).Do()
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Messages) == 0 || r.ResultSizeEstimate >= all.ResultSizeEstimate {
				t.Errorf("q=%s: %d messages of about %d, want some but fewer than the %d of the whole inbox", q, len(r.Messages), r.ResultSizeEstimate, all.ResultSizeEstimate)
			}
		})
	}
}

// keysOf returns the names of a decoded JSON object, sorted.
func keysOf(v any) []string {
	m, _ := v.(map[string]any)
	return slices.Sorted(maps.Keys(m))
}

func TestGetMessage_FieldsSelectsThePartialResponse(t *testing.T) {
	h, _ := craftedHarness(t)
	tok := h.tokenFor(t, "me@example.com").AccessToken
	const get = "/gmail/v1/users/me/messages/a1?format=metadata&metadataHeaders=From&metadataHeaders=Subject"
	tests := []struct {
		fields                  string
		wantTop, wantPayload    []string
		wantHeader, wantHeaders []string // keys of a header; name=value of each
	}{
		{"", []string{"historyId", "id", "internalDate", "labelIds", "payload", "sizeEstimate", "snippet", "threadId"},
			[]string{"filename", "headers", "mimeType", "partId"}, []string{"name", "value"},
			[]string{"From=Alice <alice@example.org>", "Subject=Lunch on Tuesday"}},
		{"id,threadId,snippet,payload/headers", []string{"id", "payload", "snippet", "threadId"},
			[]string{"headers"}, []string{"name", "value"},
			[]string{"From=Alice <alice@example.org>", "Subject=Lunch on Tuesday"}},
		{"payload(mimeType,headers/value)", []string{"payload"},
			[]string{"headers", "mimeType"}, []string{"value"}, []string{"=Alice <alice@example.org>", "=Lunch on Tuesday"}},
		{"payload/headers,payload", []string{"payload"}, // the whole field wins
			[]string{"filename", "headers", "mimeType", "partId"}, []string{"name", "value"},
			[]string{"From=Alice <alice@example.org>", "Subject=Lunch on Tuesday"}},
		{"sizeEstimate", []string{"sizeEstimate"}, nil, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.fields, func(t *testing.T) {
			res, body := h.gmailGET(t, tok, get+"&fields="+url.QueryEscape(tt.fields))
			if res.StatusCode != http.StatusOK {
				t.Fatalf("%d %v", res.StatusCode, body)
			}
			if got := keysOf(body); !slices.Equal(got, tt.wantTop) {
				t.Errorf("fields %v, want %v", got, tt.wantTop)
			}
			payload, _ := body["payload"].(map[string]any)
			if got := keysOf(payload); tt.wantPayload != nil && !slices.Equal(got, tt.wantPayload) {
				t.Errorf("payload fields %v, want %v", got, tt.wantPayload)
			}
			var headers []string
			hs, _ := payload["headers"].([]any)
			for _, hv := range hs {
				if got := keysOf(hv); !slices.Equal(got, tt.wantHeader) {
					t.Errorf("header fields %v, want %v", got, tt.wantHeader)
				}
				m := hv.(map[string]any)
				name, _ := m["name"].(string)
				value, _ := m["value"].(string)
				headers = append(headers, name+"="+value)
			}
			if !slices.Equal(headers, tt.wantHeaders) {
				t.Errorf("headers %q, want %q", headers, tt.wantHeaders)
			}
		})
	}
}

func TestGetMessage_InvalidFieldsIs400(t *testing.T) {
	h, _ := craftedHarness(t)
	tok := h.tokenFor(t, "me@example.com").AccessToken
	for _, fields := range []string{"nosuch", "id,nosuch", "id/x", "payload(headers", "payload(nosuch)", "payload/headers/nosuch", "id,", ",id"} {
		t.Run(fields, func(t *testing.T) {
			res, body := h.gmailGET(t, tok, "/gmail/v1/users/me/messages/a1?fields="+url.QueryEscape(fields))
			e, _ := body["error"].(map[string]any)
			if msg, _ := e["message"].(string); res.StatusCode != http.StatusBadRequest || !strings.HasPrefix(msg, "Invalid field selection") || e["status"] != "INVALID_ARGUMENT" {
				t.Fatalf("%d %v", res.StatusCode, body)
			}
		})
	}
}
