// Package config reads the functions' settings from environment variables
// and validates them once per instance, with errors that name the variable.
package config

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Google's real endpoints: the defaults.
const (
	GoogleAuthURL     = "https://accounts.google.com/o/oauth2/v2/auth"
	GoogleTokenURL    = "https://oauth2.googleapis.com/token"
	GoogleRevokeURL   = "https://oauth2.googleapis.com/revoke"
	GoogleUserinfoURL = "https://openidconnect.googleapis.com/v1/userinfo"
	GmailEndpoint     = "https://gmail.googleapis.com/"
	GmailReadonly     = "https://www.googleapis.com/auth/gmail.readonly"
)

// Token stores.
const (
	StoreFirestore = "firestore"
	StoreLocal     = "local"
)

// ListMessages caller-authentication modes.
const (
	AuthSession = "session" // the user is named by the session cookie
	AuthIAM     = "iam"     // a Google-signed ID token of an allowed caller, and user=
)

// Endpoints are the Google URLs the functions call.
type Endpoints struct {
	AuthURL, TokenURL, RevokeURL, UserinfoURL, Gmail string
}

// Config is every setting, validated.
type Config struct {
	ProjectID string

	ClientSecretName string // Secret Manager version of client_secret.json
	ClientSecretFile string // or a local file
	KeysSecretName   string // Secret Manager version of the key set
	KeysFile         string // or a local file
	SecretTTL        time.Duration

	RedirectURL     string // the Callback function's public URL
	AuthorizeURL    string // the Authorize function's public URL
	ListMessagesURL string // the ListMessages function's public URL
	GmailScope      string

	Store               string
	FirestoreDatabase   string
	FirestoreCollection string
	StoreTimeout        time.Duration // the budget of one token store call
	LocalStorePath      string

	ListAuthMode      string
	IAMAudience       string
	IAMAllowedCallers []string
	AllowedOrigins    []string

	SessionTTL          time.Duration
	MetadataConcurrency int // batch requests in flight for one format=metadata request
	GmailBatchSize      int // messages.get calls in one batch request
	GmailRetryBudget    time.Duration
	GmailAttemptTimeout time.Duration // the deadline of one HTTP call to Gmail
	LogLevel            slog.Level
	LogFormat           string // json or text

	Endpoints Endpoints
}

// Variables lists every environment variable FromEnv reads, with its
// default, for documentation and for the test that keeps the README honest.
var Variables = []struct{ Name, Default, Use string }{
	{"GOOGLE_CLOUD_PROJECT", "", "project id: Firestore, and the trace field of log lines"},
	{"OAUTH_CLIENT_SECRET", "", "Secret Manager version of the OAuth client_secret.json (projects/P/secrets/S/versions/V)"},
	{"OAUTH_CLIENT_SECRET_FILE", "", "local client_secret.json instead of Secret Manager"},
	{"TOKEN_KEYS_SECRET", "", "Secret Manager version of the key set for tokens at rest and cookies"},
	{"TOKEN_KEYS_FILE", "", "local key set file instead of Secret Manager"},
	{"SECRET_TTL", "5m", "how long a secret is cached before it is read again"},
	{"OAUTH_REDIRECT_URL", "", "public URL of the Callback function (required)"},
	{"AUTHORIZE_URL", "", "public URL of the Authorize function (required)"},
	{"LIST_MESSAGES_URL", "AUTHORIZE_URL's sibling /ListMessages", "public URL of the ListMessages function (links and return paths)"},
	{"GMAIL_SCOPE", GmailReadonly, "the Gmail scope asked for"},
	{"TOKEN_STORE", StoreFirestore, "firestore or local"},
	{"FIRESTORE_DATABASE", "(default)", "Firestore database id"},
	{"FIRESTORE_COLLECTION", "gmail_tokens", "Firestore collection of token records"},
	{"STORE_TIMEOUT", "3s", "time budget of one Firestore call, its retries included; past it the answer is 503 unavailable with Retry-After"},
	{"LOCAL_STORE_PATH", ".local/tokens.json", "file of the local token store"},
	{"LIST_AUTH_MODE", AuthSession, "session (browser session cookie) or iam (Google-signed ID token and user=)"},
	{"IAM_AUDIENCE", "", "iam mode: the audience callers' ID tokens must carry (the ListMessages URL)"},
	{"IAM_ALLOWED_CALLERS", "", "iam mode: comma-separated service-account emails allowed to call"},
	{"ALLOWED_ORIGINS", "", "extra origins trusted to POST to Disconnect"},
	{"SESSION_TTL", "168h", "lifetime of the session cookie"},
	{"GMAIL_METADATA_CONCURRENCY", "2", "batch requests one format=metadata request has in flight at once"},
	{"GMAIL_BATCH_SIZE", "50", "messages.get calls in one Gmail batch request for format=metadata (1 to 100)"},
	{"GMAIL_RETRY_BUDGET", "20s", "total time one request may lose to Gmail failing: waits before retries and for the quota, and the calls that failed; past it the answer is 503 unavailable (429 rate_limited) with Retry-After"},
	{"GMAIL_ATTEMPT_TIMEOUT", "10s", "deadline of one HTTP call to Gmail (at most GMAIL_RETRY_BUDGET); a call past it fails and is retried only if the budget still holds the wait and another full call"},
	{"LOG_LEVEL", "info", "debug, info, warn or error"},
	{"LOG_FORMAT", "json", "json (Cloud Logging's) or text (short lines for a terminal, the local runner's default)"},
	{"GOOGLE_AUTH_URL", GoogleAuthURL, "Google authorization endpoint"},
	{"GOOGLE_TOKEN_URL", GoogleTokenURL, "Google token endpoint"},
	{"GOOGLE_REVOKE_URL", GoogleRevokeURL, "Google revocation endpoint"},
	{"GOOGLE_USERINFO_URL", GoogleUserinfoURL, "OpenID Connect userinfo endpoint (used only when no id_token came)"},
	{"GMAIL_ENDPOINT", GmailEndpoint, "Gmail API base URL"},
}

// FromEnv reads and validates the settings. getenv is os.Getenv in
// production. All problems are reported at once.
func FromEnv(getenv func(string) string) (Config, error) {
	r := reader{getenv: getenv}
	c := Config{
		ProjectID:           r.str("GOOGLE_CLOUD_PROJECT"),
		ClientSecretName:    r.str("OAUTH_CLIENT_SECRET"),
		ClientSecretFile:    r.str("OAUTH_CLIENT_SECRET_FILE"),
		KeysSecretName:      r.str("TOKEN_KEYS_SECRET"),
		KeysFile:            r.str("TOKEN_KEYS_FILE"),
		SecretTTL:           r.duration("SECRET_TTL", 5*time.Minute),
		RedirectURL:         r.url("OAUTH_REDIRECT_URL", "", true),
		AuthorizeURL:        r.url("AUTHORIZE_URL", "", true),
		ListMessagesURL:     r.url("LIST_MESSAGES_URL", "", false),
		GmailScope:          r.strOr("GMAIL_SCOPE", GmailReadonly),
		Store:               r.oneOf("TOKEN_STORE", StoreFirestore, StoreFirestore, StoreLocal),
		FirestoreDatabase:   r.strOr("FIRESTORE_DATABASE", "(default)"),
		FirestoreCollection: r.strOr("FIRESTORE_COLLECTION", "gmail_tokens"),
		StoreTimeout:        r.duration("STORE_TIMEOUT", 3*time.Second),
		LocalStorePath:      r.strOr("LOCAL_STORE_PATH", ".local/tokens.json"),
		ListAuthMode:        r.oneOf("LIST_AUTH_MODE", AuthSession, AuthSession, AuthIAM),
		IAMAudience:         r.str("IAM_AUDIENCE"),
		IAMAllowedCallers:   r.list("IAM_ALLOWED_CALLERS"),
		AllowedOrigins:      r.origins("ALLOWED_ORIGINS"),
		SessionTTL:          r.duration("SESSION_TTL", 7*24*time.Hour),
		MetadataConcurrency: r.intIn("GMAIL_METADATA_CONCURRENCY", 2, 1, 100),
		GmailBatchSize:      r.intIn("GMAIL_BATCH_SIZE", 50, 1, 100),
		GmailRetryBudget:    r.duration("GMAIL_RETRY_BUDGET", 20*time.Second),
		GmailAttemptTimeout: r.duration("GMAIL_ATTEMPT_TIMEOUT", 10*time.Second),
		LogLevel:            r.level("LOG_LEVEL"),
		LogFormat:           r.oneOf("LOG_FORMAT", "json", "json", "text"),
		Endpoints: Endpoints{
			AuthURL:     r.url("GOOGLE_AUTH_URL", GoogleAuthURL, false),
			TokenURL:    r.url("GOOGLE_TOKEN_URL", GoogleTokenURL, false),
			RevokeURL:   r.url("GOOGLE_REVOKE_URL", GoogleRevokeURL, false),
			UserinfoURL: r.url("GOOGLE_USERINFO_URL", GoogleUserinfoURL, false),
			Gmail:       r.url("GMAIL_ENDPOINT", GmailEndpoint, false),
		},
	}
	if c.ListMessagesURL == "" && c.AuthorizeURL != "" {
		c.ListMessagesURL = sibling(c.AuthorizeURL, "ListMessages")
	}
	if (c.ClientSecretName == "") == (c.ClientSecretFile == "") {
		r.fail("OAUTH_CLIENT_SECRET", "set exactly one of OAUTH_CLIENT_SECRET (Secret Manager) or OAUTH_CLIENT_SECRET_FILE")
	}
	if (c.KeysSecretName == "") == (c.KeysFile == "") {
		r.fail("TOKEN_KEYS_SECRET", "set exactly one of TOKEN_KEYS_SECRET (Secret Manager) or TOKEN_KEYS_FILE")
	}
	for _, v := range []struct{ name, val string }{{"OAUTH_CLIENT_SECRET", c.ClientSecretName}, {"TOKEN_KEYS_SECRET", c.KeysSecretName}} {
		if v.val != "" && !validSecretName(v.val) {
			r.fail(v.name, "want projects/PROJECT/secrets/NAME/versions/VERSION")
		}
	}
	if c.Store == StoreFirestore && c.ProjectID == "" {
		r.fail("GOOGLE_CLOUD_PROJECT", "required with TOKEN_STORE=firestore")
	}
	if c.ListAuthMode == AuthIAM {
		if c.IAMAudience == "" {
			r.fail("IAM_AUDIENCE", "required with LIST_AUTH_MODE=iam")
		}
		if len(c.IAMAllowedCallers) == 0 {
			r.fail("IAM_ALLOWED_CALLERS", "required with LIST_AUTH_MODE=iam")
		}
	}
	if c.SecretTTL <= 0 || c.SessionTTL <= 0 || c.GmailRetryBudget < 0 {
		r.fail("SECRET_TTL/SESSION_TTL/GMAIL_RETRY_BUDGET", "must be positive")
	}
	// GMAIL_RETRY_BUDGET=0 is the Gmail client's default budget, 20 s.
	if budget := cmp.Or(c.GmailRetryBudget, 20*time.Second); c.GmailAttemptTimeout <= 0 || c.GmailAttemptTimeout > budget {
		r.fail("GMAIL_ATTEMPT_TIMEOUT", "must be positive and at most GMAIL_RETRY_BUDGET, so that a Gmail that does not answer is answered 503 within the budget")
	}
	if c.StoreTimeout <= 0 || c.StoreTimeout > 30*time.Second {
		r.fail("STORE_TIMEOUT", "must be positive and at most 30s (well inside the function's timeout)")
	}
	if err := errors.Join(r.errs...); err != nil {
		return Config{}, fmt.Errorf("configuration: %w", err)
	}
	return c, nil
}

// PublicOrigin is the scheme://host the browser sees for the functions,
// taken from the Callback URL.
func (c Config) PublicOrigin() string {
	u, err := url.Parse(c.RedirectURL)
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// sibling replaces the last path segment of u with name.
func sibling(u, name string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	i := strings.LastIndex(p.Path, "/")
	p.Path = p.Path[:i+1] + name
	p.RawQuery = ""
	return p.String()
}

func validSecretName(s string) bool {
	p := strings.Split(s, "/")
	return len(p) == 6 && p[0] == "projects" && p[2] == "secrets" && p[4] == "versions" && p[1] != "" && p[3] != "" && p[5] != ""
}

type reader struct {
	getenv func(string) string
	errs   []error
}

func (r *reader) fail(name, msg string) { r.errs = append(r.errs, fmt.Errorf("%s: %s", name, msg)) }

func (r *reader) str(name string) string { return strings.TrimSpace(r.getenv(name)) }

func (r *reader) strOr(name, def string) string {
	if v := r.str(name); v != "" {
		return v
	}
	return def
}

func (r *reader) oneOf(name, def string, allowed ...string) string {
	v := r.strOr(name, def)
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	r.fail(name, fmt.Sprintf("%q is not one of %s", v, strings.Join(allowed, ", ")))
	return def
}

func (r *reader) duration(name string, def time.Duration) time.Duration {
	v := r.str(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		r.fail(name, fmt.Sprintf("%q is not a duration like 5m or 30s", v))
		return def
	}
	return d
}

func (r *reader) intIn(name string, def, lo, hi int) int {
	v := r.str(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		r.fail(name, fmt.Sprintf("%q is not a whole number from %d to %d", v, lo, hi))
		return def
	}
	return n
}

func (r *reader) list(name string) []string {
	var out []string
	for _, s := range strings.Split(r.str(name), ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func (r *reader) origins(name string) []string {
	out := r.list(name)
	for _, o := range out {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			r.fail(name, fmt.Sprintf("%q is not an origin like https://app.example.com", o))
		}
	}
	return out
}

// url reads an absolute http(s) URL. Plain http is allowed only for
// loopback hosts, so a typo cannot send tokens in clear over a network.
func (r *reader) url(name, def string, required bool) string {
	v := r.strOr(name, def)
	if v == "" {
		if required {
			r.fail(name, "required")
		}
		return ""
	}
	u, err := url.Parse(v)
	if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" {
		r.fail(name, fmt.Sprintf("%q is not an absolute URL", v))
		return v
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopback(u.Hostname()):
	default:
		r.fail(name, fmt.Sprintf("%q must be https (plain http only for localhost)", v))
	}
	return v
}

func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

func (r *reader) level(name string) slog.Level {
	var l slog.Level
	if v := r.str(name); v != "" {
		if err := l.UnmarshalText([]byte(v)); err != nil {
			r.fail(name, fmt.Sprintf("%q is not debug, info, warn or error", v))
		}
	}
	return l
}
