// Package homepage is the local runner's home page: a small page at / that
// is a client of the functions' public HTTP API and nothing else. It shows
// who is connected, lists the inbox with paging and search, and disconnects,
// and its script is meant to be read and copied: it shows how a web page
// calls the functions (see static/home.js).
//
// The page is plain HTML, one script and one stylesheet, embedded in the
// binary and served under a strict Content-Security-Policy of its own.
// It is not a deployed function.
package homepage

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"net/http"
	"time"
)

// ContentSecurityPolicy is the page's policy: script, style and fetch from
// its own origin only, nothing inline, no framing, and Trusted Types with no
// policy, so that the browser itself refuses any HTML written from script
// (innerHTML and the like).
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
	"form-action 'none'; frame-ancestors 'none'; base-uri 'none'; require-trusted-types-for 'script'; trusted-types 'none'"

//go:embed static
var static embed.FS

// asset is one embedded file as served.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// Paths the page is served at. They do not collide with the functions'
// paths (/Authorize and the others), which are matched first anyway.
const (
	PagePath   = "/"
	ScriptPath = "/home.js"
	StylePath  = "/home.css"
)

// Handler serves the page at PagePath and its script and stylesheet, with
// GET or HEAD; any other path is 404 and any other method 405.
func Handler() http.Handler {
	assets := map[string]asset{
		PagePath:   load("static/index.html", "text/html; charset=utf-8"),
		ScriptPath: load("static/home.js", "text/javascript; charset=utf-8"),
		StylePath:  load("static/home.css", "text/css; charset=utf-8"),
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		a, ok := assets[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		// Revalidated on every load (a cheap 304), so an edited page shows
		// at once.
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", a.etag)
		h.Set("Content-Type", a.contentType)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
	})
}

// load reads an embedded file; the files are part of the binary, so a
// missing one is a build mistake.
func load(name, contentType string) asset {
	b, err := static.ReadFile(name)
	if err != nil {
		panic("homepage: " + err.Error())
	}
	sum := sha256.Sum256(b)
	return asset{body: b, contentType: contentType, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
}
