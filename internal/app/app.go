// Package app implements the functions: Authorize, Callback, ListMessages
// and Disconnect, as plain http.HandlerFuncs over one App value that an
// instance builds once and reuses.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	"golang.org/x/sync/singleflight"
	"google.golang.org/api/idtoken"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/config"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/keyring"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/messages"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/secrets"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/tokenstore"
)

// TokenStore keeps one token record per user (see package tokenstore for
// the semantics of each method). Firestore in production, a local file for
// local runs.
type TokenStore interface {
	Get(ctx context.Context, sub string) (*tokenstore.Record, error)
	FindByEmail(ctx context.Context, email string) (*tokenstore.Record, error)
	Update(ctx context.Context, sub string, fn func(cur *tokenstore.Record) (*tokenstore.Record, error)) (*tokenstore.Record, error)
	SaveAccess(ctx context.Context, sub string, version time.Time, u tokenstore.AccessUpdate) error
	Delete(ctx context.Context, sub string) error
	// SetLease and Watch coordinate refreshes across instances (see
	// userTokens).
	SetLease(ctx context.Context, sub string, version time.Time, l tokenstore.Lease) (time.Time, error)
	Watch(ctx context.Context, sub string, fn func(cur *tokenstore.Record) bool) error
}

// IDTokenValidator checks a Google-signed ID token for an audience;
// *idtoken.Validator is one.
type IDTokenValidator interface {
	Validate(ctx context.Context, token, audience string) (*idtoken.Payload, error)
}

// Deps are the App's collaborators. Secrets and Store are required.
type Deps struct {
	ClientSecret secrets.Fetcher // Google's client_secret.json
	Keys         secrets.Fetcher // the key set (package keyring)
	Store        TokenStore
	HTTPClient   *http.Client     // for calls to Google; default: 30 s timeout
	IDTokens     IDTokenValidator // IAM mode only
	Logger       *slog.Logger
	Now          func() time.Time
}

// App is one instance's state: configuration, cached secrets, the store and
// the Gmail client. It is safe for concurrent use.
type App struct {
	cfg      config.Config
	client   *secrets.Cache[*oauth2.Config]
	keys     *secrets.Cache[*rings]
	store    TokenStore
	hc       *http.Client
	idTokens IDTokenValidator
	mail     *messages.Client
	log      *slog.Logger
	now      func() time.Time
	scopes   []string

	refreshes   singleflight.Group
	recent      tokenCache
	backoff     refreshBackoff
	lease       time.Duration // RefreshLease; tests shorten it
	crossOrigin *http.CrossOriginProtection
}

// rings are the key set's rings, one per purpose, so a cookie cannot be
// opened as a token or the other way round.
type rings struct {
	token, cookie *keyring.Ring
}

// New builds an App. It does no I/O: secrets are read on first use.
func New(cfg config.Config, d Deps) (*App, error) {
	if d.ClientSecret == nil || d.Keys == nil || d.Store == nil {
		return nil, errors.New("app: ClientSecret, Keys and Store are required")
	}
	if cfg.ListAuthMode == config.AuthIAM && (d.IDTokens == nil || cfg.IAMAudience == "" || len(cfg.IAMAllowedCallers) == 0) {
		return nil, errors.New("app: IAM mode needs an ID token validator, an audience and allowed callers")
	}
	a := &App{
		cfg: cfg, store: d.Store, hc: d.HTTPClient, idTokens: d.IDTokens, log: d.Logger, now: d.Now,
		scopes: []string{"openid", "email", cfg.GmailScope}, lease: RefreshLease,
	}
	if a.hc == nil {
		// One pool of connections to Google for every request of the
		// instance; the default keeps only 2 idle per host, so concurrent
		// requests would keep opening new ones.
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 100
		a.hc = &http.Client{Timeout: 30 * time.Second, Transport: t}
	}
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.now == nil {
		a.now = time.Now
	}
	a.crossOrigin = http.NewCrossOriginProtection()
	for _, o := range append([]string{cfg.PublicOrigin()}, cfg.AllowedOrigins...) {
		if err := a.crossOrigin.AddTrustedOrigin(o); err != nil {
			return nil, fmt.Errorf("app: trusted origin %q: %w", o, err)
		}
	}
	a.client = secrets.NewCache(d.ClientSecret, a.parseClient, cfg.SecretTTL)
	a.keys = secrets.NewCache(d.Keys, parseRings, cfg.SecretTTL)
	a.client.Now, a.keys.Now = a.now, a.now
	a.client.OnError = func(err error) { a.log.Warn("reading the OAuth client secret failed", "err", err) }
	a.keys.OnError = func(err error) { a.log.Warn("reading the key set failed", "err", err) }
	a.mail = messages.New(messages.Options{
		Endpoint:            cfg.Endpoints.Gmail,
		MetadataConcurrency: cfg.MetadataConcurrency,
		BatchSize:           cfg.GmailBatchSize,
		RetryBudget:         cfg.GmailRetryBudget,
		AttemptTimeout:      cfg.GmailAttemptTimeout,
	})
	return a, nil
}

func parseRings(b []byte) (*rings, error) {
	r, err := keyring.Parse(b)
	if err != nil {
		return nil, err
	}
	return &rings{token: r.Derive("token"), cookie: r.Derive("cookie")}, nil
}

// parseClient reads client_secret.json and points it at the configured
// endpoints and redirect URL.
func (a *App) parseClient(b []byte) (*oauth2.Config, error) {
	oc, err := google.ConfigFromJSON(b, a.scopes...)
	if err != nil {
		return nil, fmt.Errorf("parse OAuth client: %w", err)
	}
	registered, err := redirectURIs(b)
	if err != nil {
		return nil, err
	}
	if len(registered) > 0 && !slices.Contains(registered, a.cfg.RedirectURL) {
		return nil, fmt.Errorf("OAUTH_REDIRECT_URL %q is not among the OAuth client's redirect_uris", a.cfg.RedirectURL)
	}
	oc.RedirectURL = a.cfg.RedirectURL
	oc.Endpoint = oauth2.Endpoint{AuthURL: a.cfg.Endpoints.AuthURL, TokenURL: a.cfg.Endpoints.TokenURL, AuthStyle: oauth2.AuthStyleInParams}
	return oc, nil
}

// oauthContext carries the App's HTTP client into golang.org/x/oauth2.
func (a *App) oauthContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, a.hc)
}

// Handlers returns the functions by name, each wrapped with the common
// middleware.
func (a *App) Handlers() map[string]http.HandlerFunc {
	return map[string]http.HandlerFunc{
		"Authorize":    serve(a.log, "Authorize", a.Authorize),
		"Callback":     serve(a.log, "Callback", a.Callback),
		"ListMessages": serve(a.log, "ListMessages", a.ListMessages),
		"Disconnect":   serve(a.log, "Disconnect", a.Disconnect),
	}
}

// secretsOrFail loads the OAuth client and the keys, answering 503 when
// either cannot be had. It returns false when it has answered. A warm
// instance has both at once; a cold one fetches both together, so that
// Secret Manager not answering costs one fetch timeout, not two.
func (a *App) secretsOrFail(w http.ResponseWriter, r *http.Request) (*oauth2.Config, *rings, bool) {
	a.keys.Prefetch(r.Context())
	oc, err := a.client.Get(r.Context())
	if err == nil {
		var rs *rings
		if rs, err = a.keys.Get(r.Context()); err == nil {
			return oc, rs, true
		}
	}
	a.log.ErrorContext(r.Context(), "secrets unavailable", "err", err)
	unavailable(w, r, "secrets are not available; try again shortly")
	return nil, nil, false
}
