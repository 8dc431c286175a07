package app

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/config"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/fakegoogle"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/fakesecretmanager"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/firestoretest"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/secrets"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/tokenstore/firestorestore"
)

// fromSecretManager moves the harness's OAuth client and key set into a
// fake Secret Manager, reached by the real client, as deployed.
func fromSecretManager(t testing.TB, sm *fakesecretmanager.Server) harnessOpt {
	return func(_ *config.Config, d *Deps) {
		ctx := context.Background()
		client := sm.Client(ctx, t)
		for _, s := range []struct {
			id  string
			src *secrets.Fetcher
		}{{"oauth-client", &d.ClientSecret}, {"token-keys", &d.Keys}} {
			b, err := (*s.src).Fetch(ctx)
			if err != nil {
				t.Fatal(err)
			}
			sm.AddVersion(s.id, b)
			*s.src = secrets.SecretManager{Client: client, Name: "projects/" + fakesecretmanager.Project + "/secrets/" + s.id + "/versions/latest"}
		}
	}
}

func TestSecretManager_Unreadable_503ThenRecovers(t *testing.T) {
	tests := []struct {
		name    string
		breakIt func(sm *fakesecretmanager.Server)
		fix     func(sm *fakesecretmanager.Server, good []byte)
	}{
		{"permission denied", func(sm *fakesecretmanager.Server) { sm.FailNext(codes.PermissionDenied, 1) }, nil},
		{"malformed key set", func(sm *fakesecretmanager.Server) { sm.AddVersion("token-keys", []byte("{not json")) },
			func(sm *fakesecretmanager.Server, good []byte) { sm.AddVersion("token-keys", good) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sm := fakesecretmanager.Start(t)
			var good []byte
			h := newHarness(t, func(c *config.Config, d *Deps) { good, _ = d.Keys.Fetch(context.Background()) }, fromSecretManager(t, sm))
			tt.breakIt(sm)
			resp := h.get("/Authorize", "Accept", jsonAccept)
			if e := decode[apiError](t, resp); resp.StatusCode != http.StatusServiceUnavailable || e.Code != "unavailable" {
				t.Fatalf("%d %+v", resp.StatusCode, e)
			}
			if !strings.Contains(h.logs.String(), "secrets unavailable") {
				t.Fatalf("no log line: %s", h.logs)
			}
			if strings.Contains(h.logs.String(), string(good)) {
				t.Fatal("the log shows the secret")
			}
			if tt.fix != nil {
				tt.fix(sm, good)
			}
			// The wait before the next try grows with the failures, and
			// whether the first request's own Get failed a second time
			// after the cold start's prefetch depends on scheduling: let
			// the fake clock run through a few retry intervals.
			for range 5 {
				h.clock.Advance(secrets.DefaultRetryInterval)
				if resp := h.get("/Authorize"); resp.StatusCode == http.StatusFound {
					return
				}
			}
			t.Fatalf("still not 302 %v after the secret was fixed", 5*secrets.DefaultRetryInterval)
		})
	}
}

// secretValues walks a Firestore document's data and returns every string
// and byte slice in it.
func secretValues(v any, out *[][]byte) {
	switch x := v.(type) {
	case string:
		*out = append(*out, []byte(x))
	case []byte:
		*out = append(*out, x)
	case map[string]any:
		for _, e := range x {
			secretValues(e, out)
		}
	case []any:
		for _, e := range x {
			secretValues(e, out)
		}
	}
}

func TestProduction_FirestoreAndSecretManager_FullFlowStoresNoPlaintextToken(t *testing.T) {
	ctx := t.Context()
	fs, _ := firestoretest.NewClient(ctx, t)
	sm := fakesecretmanager.Start(t)
	h := newHarness(t, fromSecretManager(t, sm), func(_ *config.Config, d *Deps) {
		d.Store = firestorestore.New(fs, "gmail_tokens")
	})
	wantStatus(t, h.login(demo), http.StatusOK)
	wantStatus(t, h.get("/ListMessages"), http.StatusOK)
	h.clock.Advance(time.Hour) // a refresh, written back
	wantStatus(t, h.get("/ListMessages"), http.StatusOK)
	if n := h.fake.Count(fakegoogle.CountTokenRefresh); n != 1 {
		t.Fatalf("%d refreshes", n)
	}

	docs, err := fs.Collection("gmail_tokens").Documents(ctx).GetAll()
	if err != nil || len(docs) != 1 {
		t.Fatalf("%d documents, %v", len(docs), err)
	}
	data := docs[0].Data()
	if docs[0].Ref.ID != h.fake.UserSub(demo) || data["email"] != demo || data["status"] != "active" {
		t.Fatalf("document %s: %v", docs[0].Ref.ID, data)
	}
	var values [][]byte
	secretValues(data, &values)
	raw, _ := json.Marshal(data)
	secretsIssued := append(h.fake.AccessTokens(demo), h.fake.RefreshTokens(demo)...)
	if len(secretsIssued) < 3 {
		t.Fatalf("only %d tokens issued", len(secretsIssued))
	}
	for _, tok := range secretsIssued {
		for _, v := range values {
			if bytes.Contains(v, []byte(tok)) {
				t.Fatal("a plaintext token is stored in Firestore")
			}
		}
		if bytes.Contains(raw, []byte(tok)) || bytes.Contains(raw, []byte(base64.StdEncoding.EncodeToString([]byte(tok)))) {
			t.Fatal("a token is stored in a readable encoding")
		}
	}
}
