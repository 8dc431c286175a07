package fakegoogle

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	"google.golang.org/api/gmail/v1"
	"google.golang.org/api/option"
)

func TestClientSecretJSONParsesWithConfigFromJSON(t *testing.T) {
	fake := New(Options{ClientID: "id-1.apps.googleusercontent.com", ClientSecret: "s3cret", RedirectURIs: []string{"http://localhost:1/a"}})
	tests := []struct {
		name         string
		redirectURIs []string
		wantRedirect string
	}{
		{"registered redirect URIs by default", nil, "http://localhost:1/a"},
		{"explicit redirect URIs", []string{"http://127.0.0.1:2/b", "http://127.0.0.1:2/c"}, "http://127.0.0.1:2/b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf, err := google.ConfigFromJSON(fake.ClientSecretJSON("http://fake.test", tt.redirectURIs...), "openid")
			if err != nil {
				t.Fatalf("ConfigFromJSON: %v", err)
			}
			ep := Endpoints("http://fake.test")
			if conf.ClientID != fake.ClientID() || conf.ClientSecret != fake.ClientSecret() || conf.RedirectURL != tt.wantRedirect ||
				conf.Endpoint.AuthURL != ep.AuthURL || conf.Endpoint.TokenURL != ep.TokenURL {
				t.Fatalf("config %+v", conf)
			}
		})
	}
}

func TestEndpoints(t *testing.T) {
	got := Endpoints("http://127.0.0.1:9")
	want := EndpointURLs{
		AuthURL:       "http://127.0.0.1:9/o/oauth2/v2/auth",
		TokenURL:      "http://127.0.0.1:9/token",
		RevokeURL:     "http://127.0.0.1:9/revoke",
		UserinfoURL:   "http://127.0.0.1:9/v1/userinfo",
		GmailEndpoint: "http://127.0.0.1:9/",
	}
	if got != want {
		t.Fatalf("Endpoints = %+v, want %+v", got, want)
	}
}

func TestCountersCountEachEndpoint(t *testing.T) {
	h := newHarness(t, Options{})
	tok := h.login(t, consent{}, oauth2.AccessTypeOffline)
	tok.Expiry = tok.Expiry.Add(-2 * DefaultAccessTokenTTL)
	fresh, err := h.conf.TokenSource(t.Context(), tok).Token()
	if err != nil {
		t.Fatal(err)
	}
	svc := h.gmail(t, fresh.AccessToken)
	list, err := svc.Users.Messages.List("me").MaxResults(1).Do()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Users.Messages.Get("me", list.Messages[0].Id).Do(); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, Endpoints(h.ts.URL).UserinfoURL, nil)
	req.Header.Set("Authorization", "Bearer "+fresh.AccessToken)
	doJSON(t, req)
	h.postForm(t, "/revoke", url.Values{"token": {fresh.RefreshToken}})
	h.gmailGET(t, fresh.AccessToken, "/gmail/v1/users/me/messages") // 401, still counted

	want := map[string]int{
		CountAuth: 1, CountConsent: 1, CountTokenCode: 1, CountTokenRefresh: 1,
		CountUserinfo: 1, CountGmailList: 2, CountGmailGet: 1, CountRevoke: 1,
	}
	if got := h.fake.Counts(); !maps.Equal(got, want) {
		t.Fatalf("Counts() = %v, want %v", got, want)
	}
	if got := h.fake.Count(CountGmailList); got != 2 {
		t.Fatalf("Count(gmail.list) = %d", got)
	}
	h.fake.ResetCounts()
	if got := h.fake.Counts(); len(got) != 0 || h.fake.Count(CountAuth) != 0 {
		t.Fatalf("after ResetCounts: %v", got)
	}
}

func TestTestControlsReportIssuedSecrets(t *testing.T) {
	h := newHarness(t, Options{AutoApprove: true})
	const email = "leak@example.com"
	tok := h.tokenFor(t, email)
	if got := h.fake.RefreshTokens(email); len(got) != 1 || got[0] != tok.RefreshToken {
		t.Errorf("RefreshTokens = %d tokens", len(got))
	}
	if got := h.fake.AccessTokens(email); len(got) != 1 || got[0] != tok.AccessToken {
		t.Errorf("AccessTokens = %d tokens", len(got))
	}
	if got := h.fake.Codes(); len(got) != 1 || !strings.HasPrefix(got[0], "4/") {
		t.Errorf("Codes = %d codes", len(got))
	}
	if got := h.fake.RefreshTokens("nobody@example.com"); got != nil {
		t.Errorf("RefreshTokens of an unknown user = %v", got)
	}
}

func TestConcurrentFlowsAndGmailRequests(t *testing.T) {
	h := newHarness(t, Options{AutoApprove: true, MessagesPerUser: 50})
	const workers = 50
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- concurrentFlow(h, fmt.Sprintf("user%d@example.com", i%10))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := h.fake.Count(CountGmailList); got != workers {
		t.Errorf("gmail.list count %d, want %d", got, workers)
	}
}

// concurrentFlow runs a whole flow for email: consent, exchange, list, get,
// refresh. It returns the first failure.
func concurrentFlow(h *harness, email string) error {
	verifier := oauth2.GenerateVerifier()
	res, err := h.browser.Get(h.conf.AuthCodeURL("s", oauth2.AccessTypeOffline, oauth2.ApprovalForce,
		oauth2.SetAuthURLParam("login_hint", email), oauth2.S256ChallengeOption(verifier)))
	if err != nil {
		return fmt.Errorf("authorize: %w", err)
	}
	res.Body.Close()
	loc, err := url.Parse(res.Header.Get("Location"))
	if err != nil {
		return fmt.Errorf("parsing redirect: %w", err)
	}
	ctx := context.Background()
	tok, err := h.conf.Exchange(ctx, loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		return fmt.Errorf("exchange for %s: %w", email, err)
	}
	svc, err := gmail.NewService(ctx, option.WithEndpoint(Endpoints(h.ts.URL).GmailEndpoint),
		option.WithHTTPClient(oauth2.NewClient(ctx, oauth2.StaticTokenSource(tok))))
	if err != nil {
		return fmt.Errorf("gmail client: %w", err)
	}
	list, err := svc.Users.Messages.List("me").Do()
	if err != nil {
		return fmt.Errorf("list for %s: %w", email, err)
	}
	if len(list.Messages) == 0 {
		return fmt.Errorf("list for %s: no messages", email)
	}
	if _, err := svc.Users.Messages.Get("me", list.Messages[0].Id).Format("metadata").Do(); err != nil {
		return fmt.Errorf("get for %s: %w", email, err)
	}
	tok.Expiry = time.Now().Add(-time.Minute)
	if _, err := h.conf.TokenSource(ctx, tok).Token(); err != nil {
		return fmt.Errorf("refresh for %s: %w", email, err)
	}
	return nil
}

func TestIndexPageListsEndpoints(t *testing.T) {
	h := newHarness(t, Options{})
	res, body := h.get(t, h.ts.URL+"/")
	if res.StatusCode != 200 || !strings.Contains(body, Endpoints(h.ts.URL).TokenURL) {
		t.Fatalf("%d %s", res.StatusCode, body)
	}
	if res, _ := h.get(t, h.ts.URL+"/nope"); res.StatusCode != 404 {
		t.Fatalf("unknown path: %d, want 404", res.StatusCode)
	}
}
