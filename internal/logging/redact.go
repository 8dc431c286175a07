package logging

import (
	"log/slog"
	"strings"
)

const redacted = "[REDACTED]"

// redact replaces the value of an attribute named for a credential, or in a
// group named for one, with [REDACTED].
func redact(groups []string, a slog.Attr) slog.Attr {
	if sensitive(a.Key) || sensitiveGroup(groups) {
		return slog.String(a.Key, redacted)
	}
	return a
}

// sensitiveSuffixes are the key endings that name a credential. They cover
// access_token, refresh_token, id_token, client_secret, api_key,
// set-cookie and the like.
var sensitiveSuffixes = []string{"token", "code", "secret", "cookie", "password", "authorization", "key"}

// sensitive reports whether an attribute key, in any case, is or ends with
// the name of a credential, or its plural.
func sensitive(key string) bool {
	k := strings.ToLower(key)
	if s, ok := strings.CutSuffix(k, "s"); ok && hasSensitiveSuffix(s) {
		return true
	}
	return hasSensitiveSuffix(k)
}

func hasSensitiveSuffix(k string) bool {
	for _, s := range sensitiveSuffixes {
		if strings.HasSuffix(k, s) {
			return true
		}
	}
	return false
}

// sensitiveGroup reports whether any enclosing group is named for a
// credential, so that slog.Group("token", ...) is redacted whole.
func sensitiveGroup(groups []string) bool {
	for _, g := range groups {
		if sensitive(g) {
			return true
		}
	}
	return false
}
