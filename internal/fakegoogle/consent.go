package fakegoogle

import (
	"bytes"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"time"
)

// consentFormTTL is how long a consent page can be submitted.
const consentFormTTL = time.Hour

// sealPurposeConsent separates consent form state from other sealed values.
const sealPurposeConsent = "consent"

// consentPath is where the consent form posts.
const consentPath = "/o/oauth2/v2/consent"

// pageStyle is the stylesheet of every page; pages load nothing else.
const pageStyle = `body{font-family:system-ui,sans-serif;background:#f1f3f4;margin:0;color:#202124}
main{max-width:30rem;margin:3rem auto;background:#fff;border:1px solid #dadce0;border-radius:8px;padding:2rem}
h1{font-size:1.4rem;font-weight:400;margin-top:0}.app{font-weight:600;word-break:break-all}
.note{font-size:.8rem;color:#5f6368}.err{color:#d93025}label{display:block;margin:.6rem 0}
input[type=email]{width:100%;box-sizing:border-box;padding:.5rem;font-size:1rem}
ul{list-style:none;padding:0}.actions{display:flex;gap:1rem;justify-content:flex-end;margin-top:1.5rem}
button{padding:.5rem 1.5rem;font-size:1rem;border-radius:4px;border:1px solid #dadce0;background:#fff;cursor:pointer}
#allow{background:#1a73e8;color:#fff;border-color:#1a73e8}`

var consentTemplate = template.Must(template.New("consent").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Sign in - Google Accounts (fake)</title><style>` + pageStyle + `</style></head>
<body><main>
<h1>Sign in with Google</h1>
<p><span class="app" id="client-id">{{.ClientID}}</span> wants to access your Google Account</p>
{{if .Error}}<p class="err" id="error">{{.Error}}</p>{{end}}
<form method="post" action="` + consentPath + `">
<input type="hidden" name="request" value="{{.Request}}">
<label for="email">Email</label>
<input type="email" id="email" name="email" value="{{.Email}}" required autocomplete="email">
<p>This will allow the app to:</p>
<ul>{{range .Scopes}}
<li><label><input type="checkbox" id="{{.ID}}" name="scope" value="{{.Value}}" checked{{if .Fixed}} disabled{{end}}> {{.Label}}</label></li>{{end}}
</ul>
<div class="actions">
<button type="submit" id="deny" name="action" value="deny" formnovalidate>Cancel</button>
<button type="submit" id="allow" name="action" value="allow">Allow</button>
</div>
</form>
<p class="note">This is fakegoogle, a local stand-in for Google: any email address works and no real account is used.</p>
</main></body></html>
`))

var errorTemplate = template.Must(template.New("error").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Error {{.Status}}: {{.Code}}</title><style>` + pageStyle + `</style></head>
<body><main>
<h1>Access blocked: this app's request is invalid</h1>
<p class="err" id="error">Error {{.Status}}: {{.Code}}</p>
<p id="error-description">{{.Description}}</p>
<p class="note">fakegoogle, a local stand-in for Google.</p>
</main></body></html>
`))

var indexTemplate = template.Must(template.New("index").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>fakegoogle</title><style>` + pageStyle + `</style></head>
<body><main>
<h1>fakegoogle</h1>
<p>A local stand-in for Google's OAuth 2.0, OpenID Connect and Gmail endpoints.</p>
<ul>
<li>Authorization: <code>{{.AuthURL}}</code></li>
<li>Token: <code>{{.TokenURL}}</code></li>
<li>Revocation: <code>{{.RevokeURL}}</code></li>
<li>Userinfo: <code>{{.UserinfoURL}}</code></li>
<li>Gmail API: <code>{{.GmailEndpoint}}gmail/v1/users/me/messages</code></li>
</ul>
</main></body></html>
`))

// scopeBox is one checkbox of the consent page.
type scopeBox struct {
	ID, Value, Label string
	Fixed            bool // granted with sign-in; cannot be unticked
}

// scopeBoxID returns the element id of a scope's checkbox: "scope-gmail" for
// the Gmail read-only scope.
func scopeBoxID(sc string) string {
	if sc == GmailReadonlyScope {
		return "scope-gmail"
	}
	name := strings.TrimSuffix(sc, "/")
	name = name[strings.LastIndex(name, "/")+1:]
	return "scope-" + strings.NewReplacer(".", "-", ":", "-").Replace(name)
}

// renderPage writes an HTML page that loads nothing from elsewhere.
func renderPage(w http.ResponseWriter, status int, t *template.Template, data any) {
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		http.Error(w, "fakegoogle: rendering "+t.Name()+" page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-cache, no-store, max-age=0, must-revalidate")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// renderError shows Google's "Error <status>: <code>" page.
func (s *Server) renderError(w http.ResponseWriter, status int, code, description string) {
	renderPage(w, status, errorTemplate, map[string]any{"Status": status, "Code": code, "Description": description})
}

// renderConsent shows the consent page for req.
func (s *Server) renderConsent(w http.ResponseWriter, status int, req *authRequest, email, errMsg string) {
	sealed, err := s.seal(sealPurposeConsent, req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	boxes := make([]scopeBox, len(req.Scopes))
	for i, sc := range req.Scopes {
		boxes[i] = scopeBox{ID: scopeBoxID(sc), Value: sc, Label: knownScopes[sc].label, Fixed: isBasicScope(sc)}
	}
	renderPage(w, status, consentTemplate, map[string]any{
		"ClientID": req.ClientID,
		"Request":  sealed,
		"Email":    email,
		"Scopes":   boxes,
		"Error":    errMsg,
	})
}

// handleConsent receives the consent form: Allow or Deny.
func (s *Server) handleConsent(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		s.renderError(w, http.StatusMethodNotAllowed, "invalid_request", "Method not allowed")
		return
	}
	s.count(CountConsent)
	if err := r.ParseForm(); err != nil {
		s.renderError(w, http.StatusBadRequest, "invalid_request", "The consent form could not be read.")
		return
	}
	var req authRequest
	if err := s.unseal(sealPurposeConsent, r.PostForm.Get("request"), &req); err != nil || req.Expires < s.now().Unix() {
		s.renderError(w, http.StatusBadRequest, "invalid_request", "The consent form has expired or was altered. Go back to the app and try again.")
		return
	}
	switch r.PostForm.Get("action") {
	case "deny":
		s.rejectAuth(w, r, &req, redirectError("access_denied", ""))
	case "allow":
		email := strings.TrimSpace(r.PostForm.Get("email"))
		if !validEmail(email) {
			s.renderConsent(w, http.StatusBadRequest, &req, email, "Enter a valid email address.")
			return
		}
		ticked := r.PostForm["scope"]
		var chosen []string
		for _, sc := range req.Scopes {
			if isBasicScope(sc) || slices.Contains(ticked, sc) {
				chosen = append(chosen, sc)
			}
		}
		s.approve(w, r, &req, normalizeEmail(email), chosen)
	default:
		s.renderError(w, http.StatusBadRequest, "invalid_request", "Choose Allow or Cancel.")
	}
}

// handleIndex lists the fake's endpoints, for people who open its root URL.
func (s *Server) handleIndex(w http.ResponseWriter, r *http.Request) {
	renderPage(w, http.StatusOK, indexTemplate, Endpoints(requestBaseURL(r)))
}
