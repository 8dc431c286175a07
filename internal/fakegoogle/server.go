// Package fakegoogle is an in-process fake of Google's OAuth 2.0 and OpenID
// Connect endpoints and of the Gmail API's users.messages.list and
// users.messages.get methods and its batch endpoint.
//
// It answers the way Google does, including the parts that callers get wrong:
// single-use authorization codes, PKCE, granular consent (a user may untick
// the Gmail scope), refresh tokens that are only issued on consent, the limit
// of 100 live refresh tokens per user and client, revocation, expired access
// tokens, Gmail's error shapes, paging and per-user quota. Test controls let a
// test revoke a grant, expire tokens, replace a mailbox and inject faults.
//
// A Server is an http.Handler. Serve it with httptest (see NewTestServer) or
// any http.Server, and point the OAuth and Gmail clients at the URLs returned
// by Endpoints.
package fakegoogle

import (
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Scopes the fake knows by name.
const (
	// GmailReadonlyScope grants read access to Gmail messages.
	GmailReadonlyScope = "https://www.googleapis.com/auth/gmail.readonly"
	// EmailScope is the scope Google reports when "email" was requested.
	EmailScope = "https://www.googleapis.com/auth/userinfo.email"
	// OpenIDScope asks for an id_token.
	OpenIDScope = "openid"
)

// Defaults used when the corresponding Options field is zero.
const (
	DefaultClientID        = "fake-client-id.apps.googleusercontent.com"
	DefaultClientSecret    = "fake-client-secret"
	DefaultAccessTokenTTL  = time.Hour
	DefaultCodeTTL         = 5 * time.Minute
	DefaultMessagesPerUser = 1234
	DefaultGmailQuota      = 6000
	// DemoEmail is the user that exists from the start and the default
	// account on the consent page.
	DemoEmail = "demo@example.com"
)

// Options configure a Server. The zero value is usable.
type Options struct {
	// ClientID is the only OAuth client the fake knows.
	// Default DefaultClientID.
	ClientID string
	// ClientSecret is the client's secret. Default DefaultClientSecret.
	ClientSecret string
	// RedirectURIs are the registered redirect URIs; an exact match is
	// required, as at Google. If empty, any http://localhost or
	// http://127.0.0.1 URI (any port and path) is accepted.
	RedirectURIs []string
	// AutoApprove makes the authorization endpoint skip the consent page and
	// approve all requested scopes for the login_hint user (or DemoEmail).
	AutoApprove bool
	// Latency is slept before answering every request.
	Latency time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// AccessTokenTTL is the life of an access token. Default one hour, which
	// Google reports as "expires_in": 3599.
	AccessTokenTTL time.Duration
	// CodeTTL is the life of an authorization code. Default five minutes.
	CodeTTL time.Duration
	// MessagesPerUser is the size of each seeded demo mailbox. Default 1234,
	// so that listing everything takes three pages of 500.
	MessagesPerUser int
	// GmailQuotaPerMinute is the per-user Gmail quota in units per rolling
	// minute (list costs 5, get costs 20). Default 6000, as at Google.
	// A negative value disables the quota.
	GmailQuotaPerMinute int
	// GmailConcurrentRequests is the most Gmail requests one user may have
	// in flight at once; the requests over it answer 429 "Too many
	// concurrent requests for user". The parts of a batch are in flight
	// together while the batch is served. Default
	// DefaultGmailConcurrentRequests; negative disables the limit.
	GmailConcurrentRequests int
	// RotateRefreshTokens makes every refresh answer with a new refresh
	// token and kill the one used, as providers that rotate refresh tokens
	// do (RFC 6749 section 6). Google does not.
	RotateRefreshTokens bool
	// OmitScope leaves scope out of token responses, which RFC 6749
	// section 5.1 allows when it equals the scopes requested. Google always
	// sends it.
	OmitScope bool
	// StateFile, when set, makes the fake durable across restarts. Open
	// loads from it the users and their granted scopes, the refresh tokens
	// (live and dead) and access tokens, mailboxes set with SetMailbox, the
	// id_token signing key and the key that authenticates consent forms and
	// Gmail page tokens; every change of these is saved back to it at once,
	// atomically and with mode 0600. A missing file is a fresh start (and is
	// written at once); a file that cannot be read or decoded makes Open fail
	// and is left as it is. Authorization codes, counters, injected faults
	// and quota use stay in memory. Use Open rather than New with it.
	StateFile string
}

// Server is the fake Google. It implements http.Handler and is safe for
// concurrent use.
type Server struct {
	opts    Options
	mux     *http.ServeMux
	signer  *signer
	formKey []byte // authenticates consent form state and Gmail page tokens
	// signingKeyDER is signer's key in PKCS #8 form, for the state file.
	signingKeyDER []byte
	// gmailDelay is slept before serving each Gmail API request; see
	// SetGmailLatency.
	gmailDelay atomic.Int64

	mu            sync.Mutex
	users         map[string]*user // by normalized email
	codes         map[string]*authCode
	codeLog       []string
	refresh       map[string]*refreshToken
	access        map[string]*accessToken
	counts        map[string]int
	gmailFaults   []Fault
	messageFaults map[string][]Fault // by message id
	tokenFaults   []tokenFault
	inFlight      map[*user]int        // Gmail requests being served
	parsedGets    map[string]getParams // parsed queries of messages.get
}

// New returns a fake configured by opts, with the demo user already present.
// It panics where Open would return an error, which can only happen with
// Options.StateFile: use Open then.
func New(opts Options) *Server {
	s, err := Open(opts)
	if err != nil {
		panic(err.Error())
	}
	return s
}

// Open returns a fake configured by opts, with the demo user already
// present. With Options.StateFile it first loads the state saved there by an
// earlier Server; it fails, leaving the file untouched, when the file exists
// but cannot be read or decoded, and when a fresh state cannot be written.
func Open(opts Options) (*Server, error) {
	return open(opts, generateSigner)
}

// open is Open, with newSigner making the signing key of a new state file.
func open(opts Options, newSigner func() (*signer, error)) (*Server, error) {
	if opts.ClientID == "" {
		opts.ClientID = DefaultClientID
	}
	if opts.ClientSecret == "" {
		opts.ClientSecret = DefaultClientSecret
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.AccessTokenTTL <= 0 {
		opts.AccessTokenTTL = DefaultAccessTokenTTL
	}
	if opts.CodeTTL <= 0 {
		opts.CodeTTL = DefaultCodeTTL
	}
	if opts.MessagesPerUser <= 0 {
		opts.MessagesPerUser = DefaultMessagesPerUser
	}
	if opts.GmailQuotaPerMinute == 0 {
		opts.GmailQuotaPerMinute = DefaultGmailQuota
	}
	if opts.GmailConcurrentRequests == 0 {
		opts.GmailConcurrentRequests = DefaultGmailConcurrentRequests
	}
	opts.RedirectURIs = append([]string(nil), opts.RedirectURIs...)

	s := &Server{
		opts:     opts,
		users:    make(map[string]*user),
		codes:    make(map[string]*authCode),
		refresh:  make(map[string]*refreshToken),
		access:   make(map[string]*accessToken),
		counts:   make(map[string]int),
		inFlight: make(map[*user]int),
	}
	if opts.StateFile == "" {
		s.signer, s.formKey = sharedSigner(), newFormKey()
		s.userLocked(DemoEmail)
	} else if err := s.openState(newSigner); err != nil {
		return nil, err
	}
	s.routes()
	return s, nil
}

// newFormKey returns a random key for seal and mac.
func newFormKey() []byte {
	k := make([]byte, formKeySize)
	rand.Read(k) // never fails; see crypto/rand.Read
	return k
}

func (s *Server) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /{$}", s.handleIndex)
	m.HandleFunc("/o/oauth2/v2/auth", s.handleAuthorize)
	m.HandleFunc("/o/oauth2/v2/consent", s.handleConsent)
	m.HandleFunc("/token", s.handleToken)
	m.HandleFunc("/revoke", s.handleRevoke)
	m.HandleFunc("/v1/userinfo", s.handleUserinfo)
	m.HandleFunc("/oauth2/v3/userinfo", s.handleUserinfo)
	m.HandleFunc("GET /oauth2/v3/certs", s.handleJWKS)
	m.HandleFunc("GET /.well-known/openid-configuration", s.handleDiscovery)
	m.HandleFunc("GET /gmail/v1/users/{userId}/messages", s.handleList)
	m.HandleFunc("GET /gmail/v1/users/{userId}/messages/{id}", s.handleGet)
	m.HandleFunc("POST /batch/gmail/v1", s.handleBatch)
	s.mux = m
}

// ServeHTTP sleeps Options.Latency (and a Gmail API request the latency
// set with SetGmailLatency), then answers r as Google would. A client that
// gives up meanwhile gets nothing.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d := s.opts.Latency
	if isGmail(r.URL.Path) {
		d += time.Duration(s.gmailDelay.Load())
	}
	if d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	s.mux.ServeHTTP(w, r)
}

// SetGmailLatency makes every Gmail API request from now on (direct or
// batch) wait d before it is served, on top of Options.Latency; a d longer
// than the client waits is a Gmail that does not answer. 0 ends it.
func (s *Server) SetGmailLatency(d time.Duration) { s.gmailDelay.Store(int64(d)) }

// isGmail reports whether path is one of the Gmail API's.
func isGmail(path string) bool {
	return strings.HasPrefix(path, "/gmail/") || strings.HasPrefix(path, "/batch/gmail/")
}

// ClientID returns the OAuth client ID the fake accepts.
func (s *Server) ClientID() string { return s.opts.ClientID }

// ClientSecret returns the OAuth client secret the fake accepts.
func (s *Server) ClientSecret() string { return s.opts.ClientSecret }

func (s *Server) now() time.Time { return s.opts.Now() }

// EndpointURLs are the URLs of the fake's endpoints.
type EndpointURLs struct {
	// AuthURL is the authorization (consent) endpoint.
	AuthURL string
	// TokenURL is the token endpoint.
	TokenURL string
	// RevokeURL is the revocation endpoint.
	RevokeURL string
	// UserinfoURL is the OpenID Connect userinfo endpoint.
	UserinfoURL string
	// GmailEndpoint is the base URL to give the Gmail client through
	// option.WithEndpoint.
	GmailEndpoint string
}

// Endpoints returns the endpoint URLs of a fake served at baseURL, which has
// no trailing slash.
func Endpoints(baseURL string) EndpointURLs {
	return EndpointURLs{
		AuthURL:       baseURL + "/o/oauth2/v2/auth",
		TokenURL:      baseURL + "/token",
		RevokeURL:     baseURL + "/revoke",
		UserinfoURL:   baseURL + "/v1/userinfo",
		GmailEndpoint: baseURL + "/",
	}
}

// NewTestServer starts an httptest.Server serving a new fake, closes it when
// the test ends, and returns both.
func NewTestServer(t testing.TB, opts Options) (*Server, *httptest.Server) {
	t.Helper()
	s := New(opts)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts
}
