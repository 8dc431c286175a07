package fakegoogle

import "encoding/json"

// ClientSecretJSON returns a Google client_secret.json document
// ({"web":{...}}) for this fake's client, with auth_uri and token_uri under
// baseURL. With no redirectURIs it lists Options.RedirectURIs. It parses
// with golang.org/x/oauth2/google.ConfigFromJSON, which needs at least one
// redirect URI and uses the first.
func (s *Server) ClientSecretJSON(baseURL string, redirectURIs ...string) []byte {
	if len(redirectURIs) == 0 {
		redirectURIs = s.opts.RedirectURIs
	}
	ep := Endpoints(baseURL)
	doc := map[string]any{"web": map[string]any{
		"client_id":                   s.opts.ClientID,
		"project_id":                  "fakegoogle-project",
		"auth_uri":                    ep.AuthURL,
		"token_uri":                   ep.TokenURL,
		"auth_provider_x509_cert_url": baseURL + "/oauth2/v1/certs",
		"client_secret":               s.opts.ClientSecret,
		"redirect_uris":               append([]string{}, redirectURIs...),
	}}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		panic("fakegoogle: encoding client_secret.json: " + err.Error()) // cannot happen: plain strings
	}
	return b
}
