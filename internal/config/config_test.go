package config

import (
	"os"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func base() map[string]string {
	return map[string]string{
		"GOOGLE_CLOUD_PROJECT": "p",
		"OAUTH_CLIENT_SECRET":  "projects/p/secrets/client/versions/latest",
		"TOKEN_KEYS_SECRET":    "projects/p/secrets/keys/versions/3",
		"OAUTH_REDIRECT_URL":   "https://r-p.cloudfunctions.net/Callback",
		"AUTHORIZE_URL":        "https://r-p.cloudfunctions.net/Authorize",
	}
}

func TestFromEnv_ProductionDefaults(t *testing.T) {
	c, err := FromEnv(env(base()))
	if err != nil {
		t.Fatal(err)
	}
	if c.Store != StoreFirestore || c.FirestoreCollection != "gmail_tokens" || c.ListAuthMode != AuthSession ||
		c.Endpoints.TokenURL != GoogleTokenURL || c.SecretTTL != 5*time.Minute || c.GmailScope != GmailReadonly ||
		c.GmailBatchSize != 50 || c.MetadataConcurrency != 2 || c.StoreTimeout != 3*time.Second || c.LogFormat != "json" ||
		c.GmailRetryBudget != 20*time.Second || c.GmailAttemptTimeout != 10*time.Second {
		t.Fatalf("defaults: %+v", c)
	}
	if c.ListMessagesURL != "https://r-p.cloudfunctions.net/ListMessages" {
		t.Fatalf("ListMessagesURL default %q", c.ListMessagesURL)
	}
	if got := c.PublicOrigin(); got != "https://r-p.cloudfunctions.net" {
		t.Fatalf("PublicOrigin = %q", got)
	}
}

func TestFromEnv_ErrorsNameTheVariable(t *testing.T) {
	tests := []struct {
		name    string
		change  map[string]string
		wantVar string
	}{
		{"no client secret", map[string]string{"OAUTH_CLIENT_SECRET": ""}, "OAUTH_CLIENT_SECRET"},
		{"both client secrets", map[string]string{"OAUTH_CLIENT_SECRET_FILE": "x.json"}, "OAUTH_CLIENT_SECRET"},
		{"malformed secret name", map[string]string{"TOKEN_KEYS_SECRET": "keys"}, "TOKEN_KEYS_SECRET"},
		{"no redirect url", map[string]string{"OAUTH_REDIRECT_URL": ""}, "OAUTH_REDIRECT_URL"},
		{"plain http to a remote host", map[string]string{"GOOGLE_TOKEN_URL": "http://evil.example/token"}, "GOOGLE_TOKEN_URL"},
		{"plain http to a name that looks like loopback", map[string]string{"GOOGLE_TOKEN_URL": "http://127.evil.example/token"}, "GOOGLE_TOKEN_URL"},
		{"plain http to a wildcard-DNS loopback name", map[string]string{"GMAIL_ENDPOINT": "http://127.0.0.1.nip.io/"}, "GMAIL_ENDPOINT"},
		{"relative authorize url", map[string]string{"AUTHORIZE_URL": "/Authorize"}, "AUTHORIZE_URL"},
		{"unknown store", map[string]string{"TOKEN_STORE": "redis"}, "TOKEN_STORE"},
		{"firestore without project", map[string]string{"GOOGLE_CLOUD_PROJECT": ""}, "GOOGLE_CLOUD_PROJECT"},
		{"iam without audience", map[string]string{"LIST_AUTH_MODE": "iam", "IAM_ALLOWED_CALLERS": "a@p.iam.gserviceaccount.com"}, "IAM_AUDIENCE"},
		{"iam without callers", map[string]string{"LIST_AUTH_MODE": "iam", "IAM_AUDIENCE": "https://x/ListMessages"}, "IAM_ALLOWED_CALLERS"},
		{"bad duration", map[string]string{"SECRET_TTL": "five"}, "SECRET_TTL"},
		{"no store budget", map[string]string{"STORE_TIMEOUT": "0s"}, "STORE_TIMEOUT"},
		{"store budget past the function's timeout", map[string]string{"STORE_TIMEOUT": "2m"}, "STORE_TIMEOUT"},
		{"no Gmail attempt timeout", map[string]string{"GMAIL_ATTEMPT_TIMEOUT": "0s"}, "GMAIL_ATTEMPT_TIMEOUT"},
		{"Gmail attempt timeout past the retry budget", map[string]string{"GMAIL_RETRY_BUDGET": "5s", "GMAIL_ATTEMPT_TIMEOUT": "6s"}, "GMAIL_ATTEMPT_TIMEOUT"},
		{"Gmail attempt timeout past the default retry budget", map[string]string{"GMAIL_ATTEMPT_TIMEOUT": "21s"}, "GMAIL_ATTEMPT_TIMEOUT"},
		{"concurrency out of range", map[string]string{"GMAIL_METADATA_CONCURRENCY": "0"}, "GMAIL_METADATA_CONCURRENCY"},
		{"batch size 0", map[string]string{"GMAIL_BATCH_SIZE": "0"}, "GMAIL_BATCH_SIZE"},
		{"batch size over Gmail's 100", map[string]string{"GMAIL_BATCH_SIZE": "101"}, "GMAIL_BATCH_SIZE"},
		{"batch size not a number", map[string]string{"GMAIL_BATCH_SIZE": "fifty"}, "GMAIL_BATCH_SIZE"},
		{"origin with a path", map[string]string{"ALLOWED_ORIGINS": "https://app.example.com/x"}, "ALLOWED_ORIGINS"},
		{"bad log level", map[string]string{"LOG_LEVEL": "loud"}, "LOG_LEVEL"},
		{"bad log format", map[string]string{"LOG_FORMAT": "pretty"}, "LOG_FORMAT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := base()
			for k, v := range tt.change {
				m[k] = v
			}
			_, err := FromEnv(env(m))
			if err == nil || !strings.Contains(err.Error(), tt.wantVar) {
				t.Fatalf("err = %v, want one naming %s", err, tt.wantVar)
			}
		})
	}
}

func TestFromEnv_LocalLoopbackHTTPAllowed(t *testing.T) {
	m := map[string]string{
		"OAUTH_CLIENT_SECRET_FILE": "c.json", "TOKEN_KEYS_FILE": "k.json", "TOKEN_STORE": "local",
		"OAUTH_REDIRECT_URL": "http://localhost:8080/Callback", "AUTHORIZE_URL": "http://localhost:8080/Authorize",
		"GOOGLE_TOKEN_URL": "http://127.0.0.1:8089/token", "GOOGLE_REVOKE_URL": "http://[::1]:8089/revoke", "LIST_AUTH_MODE": "iam",
		"IAM_AUDIENCE": "http://localhost:8080/ListMessages", "IAM_ALLOWED_CALLERS": "a@x, b@y",
	}
	c, err := FromEnv(env(m))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.IAMAllowedCallers) != 2 || c.IAMAllowedCallers[1] != "b@y" {
		t.Fatalf("callers %q", c.IAMAllowedCallers)
	}
}

// TestReadme_ListsEveryVariable keeps the README's configuration table in
// step with the code.
func TestReadme_ListsEveryVariable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range Variables {
		if !strings.Contains(string(readme), "| `"+v.Name+"` |") {
			t.Errorf("README.md's configuration table lacks %s", v.Name)
		}
	}
}
