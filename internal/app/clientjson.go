package app

import (
	"encoding/json"
	"fmt"
)

// redirectURIs lists the redirect URIs registered in a client_secret.json.
func redirectURIs(b []byte) ([]string, error) {
	var f struct {
		Web *struct {
			RedirectURIs []string `json:"redirect_uris"`
		} `json:"web"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("parse OAuth client: %w", err)
	}
	if f.Web == nil {
		return nil, fmt.Errorf("parse OAuth client: want a \"web\" application client")
	}
	return f.Web.RedirectURIs, nil
}
