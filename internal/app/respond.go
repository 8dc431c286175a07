package app

import (
	"encoding/json"
	"html/template"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// apiError is the JSON body of every error answer, shaped like OAuth's.
type apiError struct {
	Code             string `json:"error"`
	Description      string `json:"error_description,omitempty"`
	AuthorizationURL string `json:"authorization_url,omitempty"`
}

// wantsJSON reports whether the client asked for JSON rather than a page.
func wantsJSON(r *http.Request) bool {
	accept := r.Header.Get("Accept")
	return strings.Contains(accept, "application/json") && !strings.Contains(accept, "text/html")
}

// isBrowser reports whether the request comes from a page navigation, which
// should be redirected rather than answered with a JSON error.
func isBrowser(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	_ = enc.Encode(v)
}

// fail answers an error as JSON or, for a page navigation, as a small page
// with an optional link (for example back to Authorize).
func fail(w http.ResponseWriter, r *http.Request, status int, e apiError) {
	if isBrowser(r) && !wantsJSON(r) {
		writePage(w, status, page{Title: titles[e.Code], Message: e.Description, Link: e.AuthorizationURL, LinkText: "Try again"})
		return
	}
	writeJSON(w, status, e)
}

// RetryUnavailable is the Retry-After of a 503 for a dependency that is
// briefly away (Secret Manager, the store, Google's token endpoint).
const RetryUnavailable = 5 * time.Second

// unavailable answers 503 with Retry-After: a dependency is briefly away.
func unavailable(w http.ResponseWriter, r *http.Request, description string) {
	unavailableFor(w, r, RetryUnavailable, description)
}

// unavailableFor is unavailable with Retry-After d.
func unavailableFor(w http.ResponseWriter, r *http.Request, d time.Duration, description string) {
	retryAfter(w, d)
	fail(w, r, http.StatusServiceUnavailable, apiError{Code: "unavailable", Description: description})
}

// retryAfter sets Retry-After in whole seconds, at least 1.
func retryAfter(w http.ResponseWriter, d time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(d.Seconds())))))
}

var titles = map[string]string{
	"access_denied":            "Access was not granted",
	"invalid_state":            "This sign-in link is no longer valid",
	"invalid_request":          "Bad request",
	"gmail_not_granted":        "Gmail access was not granted",
	"no_identity":              "Google did not say who you are",
	"no_refresh_token":         "Google did not grant offline access",
	"authorization_error":      "Google refused the authorization",
	"upstream_unavailable":     "Google is not answering",
	"unavailable":              "Temporarily unavailable",
	"not_configured":           "Not configured",
	"authorized":               "Gmail connected",
	"reauthorization_required": "Please connect Gmail again",
	"authorization_required":   "Please connect Gmail",
}

type page struct {
	Title, Message, Link, LinkText string
}

// pageCSS is the only style on the pages; the Content-Security-Policy allows
// exactly this stylesheet by its hash.
const pageCSS = `body{font:16px/1.5 system-ui,sans-serif;max-width:36em;margin:4em auto;padding:0 1em;color:#202124}a{color:#1a73e8}`

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta name="referrer" content="no-referrer"><title>{{.Title}}</title><style>` + pageCSS + `</style></head>
<body><h1 id="title">{{.Title}}</h1><p id="message">{{.Message}}</p>
{{if .Link}}<p><a id="link" href="{{.Link}}">{{.LinkText}}</a></p>{{end}}</body></html>
`))

func writePage(w http.ResponseWriter, status int, p page) {
	if p.Title == "" {
		p.Title = http.StatusText(status)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = pageTmpl.Execute(w, p)
}
