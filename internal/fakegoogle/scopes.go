package fakegoogle

import (
	"slices"
	"strings"
)

// Other scopes the fake accepts.
const (
	profileScope       = "https://www.googleapis.com/auth/userinfo.profile"
	gmailMetadataScope = "https://www.googleapis.com/auth/gmail.metadata"
	gmailModifyScope   = "https://www.googleapis.com/auth/gmail.modify"
	gmailFullScope     = "https://mail.google.com/"
)

// scopeInfo describes a scope on the consent page.
type scopeInfo struct {
	label string
	basic bool // granted with sign-in; the user cannot untick it
}

var knownScopes = map[string]scopeInfo{
	OpenIDScope:        {label: "Associate you with your personal info on Google", basic: true},
	EmailScope:         {label: "See your primary Google Account email address", basic: true},
	profileScope:       {label: "See your personal info, including any personal info you've made publicly available", basic: true},
	GmailReadonlyScope: {label: "View your email messages and settings"},
	gmailMetadataScope: {label: "View your email message metadata such as labels and headers, but not the email body"},
	gmailModifyScope:   {label: "Read, compose, and send emails from your Gmail account"},
	gmailFullScope:     {label: "Read, compose, send, and permanently delete all your email from Gmail"},
}

// scopeAliases are the short names Google accepts and the scopes it reports
// for them.
var scopeAliases = map[string]string{
	"email":   EmailScope,
	"profile": profileScope,
}

// parseScopes splits a space-separated scope parameter into known, canonical,
// de-duplicated scopes in canonical order. It returns the unknown ones
// separately.
func parseScopes(param string) (scopes, unknown []string) {
	for _, sc := range strings.Fields(param) {
		if full, ok := scopeAliases[sc]; ok {
			sc = full
		}
		if _, ok := knownScopes[sc]; !ok {
			unknown = append(unknown, sc)
			continue
		}
		scopes = append(scopes, sc)
	}
	return sortScopes(scopes), unknown
}

// scopeRank orders scopes as Google lists them: identity scopes first.
func scopeRank(sc string) int {
	switch sc {
	case EmailScope:
		return 0
	case profileScope:
		return 1
	case OpenIDScope:
		return 2
	}
	return 3
}

// sortScopes de-duplicates scopes and puts them in canonical order.
func sortScopes(scopes []string) []string {
	out := slices.Clone(scopes)
	slices.SortFunc(out, func(a, b string) int {
		if ra, rb := scopeRank(a), scopeRank(b); ra != rb {
			return ra - rb
		}
		return strings.Compare(a, b)
	})
	return slices.Compact(out)
}

// isBasicScope reports whether sc is granted with sign-in and cannot be
// unticked on the consent page.
func isBasicScope(sc string) bool { return knownScopes[sc].basic }

// scopeSet returns the scopes as a set.
func scopeSet(scopes []string) map[string]bool {
	m := make(map[string]bool, len(scopes))
	for _, sc := range scopes {
		m[sc] = true
	}
	return m
}

// gmailAccess is what a token's scopes allow at the Gmail API.
type gmailAccess int

const (
	gmailNone     gmailAccess = iota
	gmailMetadata             // list without q, get without body
	gmailRead                 // everything the fake serves
)

// gmailAccessFor returns the widest Gmail access the scopes grant.
func gmailAccessFor(scopes []string) gmailAccess {
	access := gmailNone
	for _, sc := range scopes {
		switch sc {
		case GmailReadonlyScope, gmailModifyScope, gmailFullScope:
			return gmailRead
		case gmailMetadataScope:
			access = gmailMetadata
		}
	}
	return access
}
