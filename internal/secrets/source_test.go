package secrets_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/fakesecretmanager"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/secrets"
)

const latest = "projects/test-project/secrets/oauth-client/versions/latest"

func TestSecretManager_Fetch_ReadsVersion(t *testing.T) {
	srv := fakesecretmanager.Start(t)
	v1 := srv.AddVersion("oauth-client", []byte("one"))
	srv.AddVersion("oauth-client", []byte("two"))
	client := srv.Client(t.Context(), t)

	tests := []struct {
		name string
		want string
	}{
		{latest, "two"},
		{v1, "one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := secrets.SecretManager{Client: client, Name: tt.name}.Fetch(t.Context())
			if err != nil || string(got) != tt.want {
				t.Errorf("Fetch = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestSecretManager_Fetch_ErrorNamesVersionAndKeepsCode(t *testing.T) {
	tests := []struct {
		name     string
		secret   string
		setup    func(*fakesecretmanager.Server)
		wantCode codes.Code
	}{
		{
			name:     "permission denied",
			secret:   latest,
			setup:    func(s *fakesecretmanager.Server) { s.FailNext(codes.PermissionDenied, 1) },
			wantCode: codes.PermissionDenied,
		},
		{
			name:     "unknown secret",
			secret:   "projects/test-project/secrets/missing/versions/latest",
			wantCode: codes.NotFound,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fakesecretmanager.Start(t)
			srv.AddVersion("oauth-client", []byte("super-secret-value"))
			if tt.setup != nil {
				tt.setup(srv)
			}
			_, err := secrets.SecretManager{Client: srv.Client(t.Context(), t), Name: tt.secret}.Fetch(t.Context())
			if _, ok := errors.AsType[*secrets.Error](err); !ok {
				t.Fatalf("Fetch error %v (%T) is not a *secrets.Error", err, err)
			}
			if !strings.HasPrefix(err.Error(), "secret "+tt.secret+": ") {
				t.Errorf("Fetch error %q does not start with the version name", err)
			}
			if got := status.Code(err); got != tt.wantCode {
				t.Errorf("status.Code = %v, want %v", got, tt.wantCode)
			}
		})
	}
}

func TestSecretManager_Fetch_InvalidNameFailsWithoutRPC(t *testing.T) {
	srv := fakesecretmanager.Start(t)
	_, err := secrets.SecretManager{Client: srv.Client(t.Context(), t), Name: "projects/test-project/secrets/oauth-client"}.Fetch(t.Context())
	if err == nil || !strings.Contains(err.Error(), "versions/latest") {
		t.Errorf("Fetch error = %v, want a hint to add /versions/latest", err)
	}
	if n := srv.AccessCount(); n != 0 {
		t.Errorf("AccessCount = %d, want 0", n)
	}
}

// TestCache_SecretManager_RotationAndOutage runs a cache over the real
// client against the fake service: a new version is picked up after the
// TTL (served from the next Get on, the renewal being in the background),
// an outage serves the held value, and a disabled version falls back.
func TestCache_SecretManager_RotationAndOutage(t *testing.T) {
	srv := fakesecretmanager.Start(t)
	srv.AddVersion("oauth-client", []byte("v1"))
	clk := &clock{t: time.Unix(0, 0)}
	c := secrets.NewCache(secrets.SecretManager{Client: srv.Client(t.Context(), t), Name: latest}, parseString, time.Minute)
	c.Now = clk.Now
	c.FetchTimeout = 300 * time.Millisecond // the client retries Unavailable until then
	secrets.NoJitter(c)

	get := func(want string) {
		t.Helper()
		got, err := c.Get(t.Context())
		if err != nil || got != want {
			t.Fatalf("Get = %q, %v; want %q", got, err, want)
		}
		c.Wait()
	}
	get("v1")
	v2 := srv.AddVersion("oauth-client", []byte("v2"))
	get("v1") // within TTL
	clk.advance(time.Minute)
	get("v1") // past TTL: served, and renewed in the background
	get("v2")

	srv.SetDown(true)
	clk.advance(time.Minute)
	get("v2") // held during the outage
	before := srv.AccessCount()
	clk.advance(time.Second)
	get("v2")
	if n := srv.AccessCount(); n != before {
		t.Errorf("AccessCount went from %d to %d within the retry interval", before, n)
	}
	srv.SetDown(false)

	_, err := srv.Client(t.Context(), t).DisableSecretVersion(t.Context(), &secretmanagerpb.DisableSecretVersionRequest{Name: v2})
	if err != nil {
		t.Fatal(err)
	}
	clk.advance(5 * time.Second)
	get("v2")
	get("v1")
}

func TestCache_SecretManager_RecoversOnceSecretIsReadable(t *testing.T) {
	srv := fakesecretmanager.Start(t)
	clk := &clock{t: time.Unix(0, 0)}
	c := secrets.NewCache(secrets.SecretManager{Client: srv.Client(t.Context(), t), Name: latest}, parseString, time.Minute)
	c.Now = clk.Now

	_, err := c.Get(t.Context())
	if status.Code(err) != codes.NotFound {
		t.Fatalf("Get before the secret exists: %v, want NotFound", err)
	}
	srv.AddVersion("oauth-client", []byte("v1"))
	clk.advance(secrets.DefaultRetryInterval)
	if got, err := c.Get(t.Context()); err != nil || got != "v1" {
		t.Errorf("Get after the secret appeared = %q, %v; want v1", got, err)
	}
}

func TestFile_Fetch(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "client_secret.json")
	if err := os.WriteFile(path, []byte(`{"web":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := secrets.File{Path: path}.Fetch(t.Context())
	if err != nil || string(got) != `{"web":{}}` {
		t.Errorf("Fetch = %q, %v", got, err)
	}

	missing := filepath.Join(dir, "missing.json")
	_, err = secrets.File{Path: missing}.Fetch(t.Context())
	if !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), "secret "+missing+": ") {
		t.Errorf("Fetch(missing) error = %v, want a not-exist error naming the path", err)
	}
}

func TestStatic_NeverPrintsContent(t *testing.T) {
	s := secrets.Static("hunter2")
	got, err := s.Fetch(context.Background())
	if err != nil || string(got) != "hunter2" {
		t.Fatalf("Fetch = %q, %v", got, err)
	}
	got[0] = 'X'
	if again, _ := s.Fetch(context.Background()); string(again) != "hunter2" {
		t.Error("Fetch returned the Static's own backing array")
	}

	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("m", "s", s)
	for _, out := range []string{
		fmt.Sprintf("%v", s), fmt.Sprintf("%s", s), fmt.Sprintf("%q", s),
		fmt.Sprintf("%x", s), fmt.Sprintf("%#v", s), fmt.Sprint(s), buf.String(),
	} {
		if strings.Contains(out, "hunter2") || strings.Contains(out, "68756e74657232") {
			t.Errorf("formatted Static %q shows the content", out)
		}
	}
}

func TestValidateName(t *testing.T) {
	tests := []struct {
		name    string
		wantErr string // substring; "" means valid
	}{
		{"projects/my-project/secrets/oauth-client/versions/latest", ""},
		{"projects/my-project/secrets/oauth_client/versions/3", ""},
		{"projects/123456789012/secrets/keys/versions/prod-alias", ""},
		{"projects/example.com:my-project/secrets/keys/versions/1", ""},
		{"", "empty"},
		{"projects/my-project/secrets/oauth-client", "append /versions/latest"},
		{"oauth-client", "want projects/PROJECT/secrets/SECRET/versions/VERSION"},
		{"projects/my-project/secrets/oauth-client/versions/latest/", "want projects/"},
		{"projects/My_Project/secrets/s/versions/1", "invalid project"},
		{"projects/my-project/secrets/a.b/versions/1", "invalid secret id"},
		{"projects/my-project/secrets/s/versions/0", "invalid version"},
		{"projects/my-project/secrets/s/versions/", "invalid version"},
		{"projects/abcdef/secrets/s/versions/1", ""},
		{"projects/abcde/secrets/s/versions/1", "invalid project"},
		{"projects/" + strings.Repeat("a", 30) + "/secrets/s/versions/1", ""},
		{"projects/" + strings.Repeat("a", 31) + "/secrets/s/versions/1", "invalid project"},
		{"projects/example.com:abcde/secrets/s/versions/1", "invalid project"},
		{"projects/my-project-/secrets/s/versions/1", "invalid project"},
		{"projects/1/secrets/s/versions/1", ""},
		{"projects/my-project/secrets/" + strings.Repeat("s", 255) + "/versions/1", ""},
		{"projects/my-project/secrets/" + strings.Repeat("s", 256) + "/versions/1", "invalid secret id"},
		{"projects/my-project/secrets/s/versions/" + strings.Repeat("9", 19), ""},
		{"projects/my-project/secrets/s/versions/" + strings.Repeat("9", 20), "invalid version"},
		{"projects/my-project/secrets/s/versions/a" + strings.Repeat("b", 62), ""},
		{"projects/my-project/secrets/s/versions/a" + strings.Repeat("b", 63), "invalid version"},
		{"projects/my-project/secrets/s/versions/-alias", "invalid version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := secrets.ValidateName(tt.name)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("ValidateName: %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("ValidateName: %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}
