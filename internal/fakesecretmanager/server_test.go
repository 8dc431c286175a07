package fakesecretmanager_test

import (
	"context"
	"errors"
	"hash/crc32"
	"testing"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/fakesecretmanager"
)

const secretName = "projects/test-project/secrets/oauth-client"

func access(t *testing.T, srv *fakesecretmanager.Server, name string) (*secretmanagerpb.AccessSecretVersionResponse, error) {
	t.Helper()
	ctx := t.Context()
	return srv.Client(ctx, t).AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: name})
}

func TestAddVersion_ReturnsNumberedNames(t *testing.T) {
	srv := fakesecretmanager.Start(t)
	if got, want := srv.AddVersion("oauth-client", []byte("one")), secretName+"/versions/1"; got != want {
		t.Errorf("first AddVersion = %q, want %q", got, want)
	}
	if got, want := srv.AddVersion("oauth-client", []byte("two")), secretName+"/versions/2"; got != want {
		t.Errorf("second AddVersion = %q, want %q", got, want)
	}
}

func TestAccessSecretVersion_ResolvesVersion(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(*testing.T, *fakesecretmanager.Server)
		access   string
		wantName string
		wantData string
	}{
		{
			name:     "latest is the newest version",
			access:   secretName + "/versions/latest",
			wantName: secretName + "/versions/2",
			wantData: "two",
		},
		{
			name:     "pinned version",
			access:   secretName + "/versions/1",
			wantName: secretName + "/versions/1",
			wantData: "one",
		},
		{
			name: "latest skips a disabled newest version",
			setup: func(t *testing.T, srv *fakesecretmanager.Server) {
				ctx := t.Context()
				_, err := srv.Client(ctx, t).DisableSecretVersion(ctx, &secretmanagerpb.DisableSecretVersionRequest{Name: secretName + "/versions/2"})
				if err != nil {
					t.Fatal(err)
				}
			},
			access:   secretName + "/versions/latest",
			wantName: secretName + "/versions/1",
			wantData: "one",
		},
		{
			name: "enabling again restores latest",
			setup: func(t *testing.T, srv *fakesecretmanager.Server) {
				ctx := t.Context()
				c := srv.Client(ctx, t)
				name := secretName + "/versions/2"
				if _, err := c.DisableSecretVersion(ctx, &secretmanagerpb.DisableSecretVersionRequest{Name: name}); err != nil {
					t.Fatal(err)
				}
				if _, err := c.EnableSecretVersion(ctx, &secretmanagerpb.EnableSecretVersionRequest{Name: name}); err != nil {
					t.Fatal(err)
				}
			},
			access:   secretName + "/versions/latest",
			wantName: secretName + "/versions/2",
			wantData: "two",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fakesecretmanager.Start(t)
			srv.AddVersion("oauth-client", []byte("one"))
			srv.AddVersion("oauth-client", []byte("two"))
			if tt.setup != nil {
				tt.setup(t, srv)
			}
			resp, err := access(t, srv, tt.access)
			if err != nil {
				t.Fatalf("AccessSecretVersion(%s): %v", tt.access, err)
			}
			if resp.GetName() != tt.wantName {
				t.Errorf("name = %q, want %q", resp.GetName(), tt.wantName)
			}
			if got := string(resp.GetPayload().GetData()); got != tt.wantData {
				t.Errorf("data = %q, want %q", got, tt.wantData)
			}
			wantCRC := int64(crc32.Checksum([]byte(tt.wantData), crc32.MakeTable(crc32.Castagnoli)))
			if p := resp.GetPayload(); p.DataCrc32C == nil || *p.DataCrc32C != wantCRC {
				t.Errorf("data_crc32c = %v, want %d", p.DataCrc32C, wantCRC)
			}
		})
	}
}

func TestAccessSecretVersion_ReturnsServiceErrorCodes(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(context.Context, *testing.T, *fakesecretmanager.Server)
		access string
		want   codes.Code
	}{
		{name: "unknown secret", access: "projects/test-project/secrets/nope/versions/latest", want: codes.NotFound},
		{name: "unknown version", access: secretName + "/versions/9", want: codes.NotFound},
		{name: "unknown alias", access: secretName + "/versions/prod", want: codes.NotFound},
		{name: "malformed name", access: "projects/test-project/oauth-client", want: codes.InvalidArgument},
		{name: "version zero", access: secretName + "/versions/0", want: codes.InvalidArgument},
		{
			name: "disabled version",
			setup: func(ctx context.Context, t *testing.T, srv *fakesecretmanager.Server) {
				_, err := srv.Client(ctx, t).DisableSecretVersion(ctx, &secretmanagerpb.DisableSecretVersionRequest{Name: secretName + "/versions/1"})
				if err != nil {
					t.Fatal(err)
				}
			},
			access: secretName + "/versions/1",
			want:   codes.FailedPrecondition,
		},
		{
			name: "destroyed version",
			setup: func(ctx context.Context, t *testing.T, srv *fakesecretmanager.Server) {
				_, err := srv.Client(ctx, t).DestroySecretVersion(ctx, &secretmanagerpb.DestroySecretVersionRequest{Name: secretName + "/versions/1"})
				if err != nil {
					t.Fatal(err)
				}
			},
			access: secretName + "/versions/1",
			want:   codes.FailedPrecondition,
		},
		{
			name: "latest with no enabled version",
			setup: func(ctx context.Context, t *testing.T, srv *fakesecretmanager.Server) {
				_, err := srv.Client(ctx, t).DisableSecretVersion(ctx, &secretmanagerpb.DisableSecretVersionRequest{Name: secretName + "/versions/1"})
				if err != nil {
					t.Fatal(err)
				}
			},
			access: secretName + "/versions/latest",
			want:   codes.NotFound,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fakesecretmanager.Start(t)
			srv.AddVersion("oauth-client", []byte("one"))
			if tt.setup != nil {
				tt.setup(t.Context(), t, srv)
			}
			_, err := access(t, srv, tt.access)
			if got := status.Code(err); got != tt.want {
				t.Errorf("AccessSecretVersion(%s) code = %v, want %v (err %v)", tt.access, got, tt.want, err)
			}
		})
	}
}

func TestCreateSecret_ThenAddAndAccess(t *testing.T) {
	srv := fakesecretmanager.Start(t)
	ctx := t.Context()
	c := srv.Client(ctx, t)
	repl := &secretmanagerpb.Replication{Replication: &secretmanagerpb.Replication_Automatic_{Automatic: &secretmanagerpb.Replication_Automatic{}}}

	sec, err := c.CreateSecret(ctx, &secretmanagerpb.CreateSecretRequest{
		Parent:   "projects/other-project",
		SecretId: "keys",
		Secret:   &secretmanagerpb.Secret{Replication: repl},
	})
	if err != nil {
		t.Fatalf("CreateSecret: %v", err)
	}
	if want := "projects/other-project/secrets/keys"; sec.GetName() != want {
		t.Errorf("CreateSecret name = %q, want %q", sec.GetName(), want)
	}
	if _, err := c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: sec.GetName()}); err != nil {
		t.Errorf("GetSecret: %v", err)
	}
	_, err = c.CreateSecret(ctx, &secretmanagerpb.CreateSecretRequest{Parent: "projects/other-project", SecretId: "keys", Secret: &secretmanagerpb.Secret{Replication: repl}})
	if status.Code(err) != codes.AlreadyExists {
		t.Errorf("second CreateSecret code = %v, want AlreadyExists", status.Code(err))
	}
	_, err = c.CreateSecret(ctx, &secretmanagerpb.CreateSecretRequest{Parent: "projects/other-project", SecretId: "norepl", Secret: &secretmanagerpb.Secret{}})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("CreateSecret without replication code = %v, want InvalidArgument", status.Code(err))
	}

	crc := int64(crc32.Checksum([]byte("k1"), crc32.MakeTable(crc32.Castagnoli)))
	v, err := c.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{
		Parent:  sec.GetName(),
		Payload: &secretmanagerpb.SecretPayload{Data: []byte("k1"), DataCrc32C: &crc},
	})
	if err != nil {
		t.Fatalf("AddSecretVersion: %v", err)
	}
	if v.GetState() != secretmanagerpb.SecretVersion_ENABLED || !v.GetClientSpecifiedPayloadChecksum() {
		t.Errorf("AddSecretVersion = %v, want enabled with client checksum", v)
	}
	got, err := c.GetSecretVersion(ctx, &secretmanagerpb.GetSecretVersionRequest{Name: sec.GetName() + "/versions/latest"})
	if err != nil || got.GetName() != v.GetName() {
		t.Errorf("GetSecretVersion(latest) = %v, %v; want %s", got, err, v.GetName())
	}
}

func TestAddSecretVersion_RejectsBadPayload(t *testing.T) {
	wrong := int64(1)
	tests := []struct {
		name    string
		payload *secretmanagerpb.SecretPayload
	}{
		{"missing payload", nil},
		{"checksum mismatch", &secretmanagerpb.SecretPayload{Data: []byte("x"), DataCrc32C: &wrong}},
		{"too large", &secretmanagerpb.SecretPayload{Data: make([]byte, 64<<10+1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fakesecretmanager.Start(t)
			srv.AddVersion("oauth-client", []byte("one"))
			ctx := t.Context()
			_, err := srv.Client(ctx, t).AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{Parent: secretName, Payload: tt.payload})
			if status.Code(err) != codes.InvalidArgument {
				t.Errorf("AddSecretVersion code = %v, want InvalidArgument", status.Code(err))
			}
		})
	}
}

func TestDestroySecretVersion_CannotBeEnabled(t *testing.T) {
	srv := fakesecretmanager.Start(t)
	name := srv.AddVersion("oauth-client", []byte("one"))
	ctx := t.Context()
	c := srv.Client(ctx, t)
	v, err := c.DestroySecretVersion(ctx, &secretmanagerpb.DestroySecretVersionRequest{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	if v.GetState() != secretmanagerpb.SecretVersion_DESTROYED || v.GetDestroyTime() == nil {
		t.Errorf("DestroySecretVersion = %v, want destroyed with destroy time", v)
	}
	_, err = c.EnableSecretVersion(ctx, &secretmanagerpb.EnableSecretVersionRequest{Name: name})
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("EnableSecretVersion code = %v, want FailedPrecondition", status.Code(err))
	}
}

func TestListSecretVersions_NewestFirstAcrossPages(t *testing.T) {
	srv := fakesecretmanager.Start(t)
	for _, d := range []string{"a", "b", "c"} {
		srv.AddVersion("oauth-client", []byte(d))
	}
	ctx := t.Context()
	it := srv.Client(ctx, t).ListSecretVersions(ctx, &secretmanagerpb.ListSecretVersionsRequest{Parent: secretName, PageSize: 2})
	var got []string
	for {
		v, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, v.GetName())
	}
	want := []string{secretName + "/versions/3", secretName + "/versions/2", secretName + "/versions/1"}
	if len(got) != len(want) {
		t.Fatalf("versions = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("versions[%d] = %s, want %s", i, got[i], want[i])
		}
	}
}

func TestFailNext_FailsExactlyNCalls(t *testing.T) {
	srv := fakesecretmanager.Start(t)
	name := srv.AddVersion("oauth-client", []byte("one"))
	srv.FailNext(codes.PermissionDenied, 2)
	for i := range 2 {
		if _, err := access(t, srv, name); status.Code(err) != codes.PermissionDenied {
			t.Errorf("call %d code = %v, want PermissionDenied", i+1, status.Code(err))
		}
	}
	if _, err := access(t, srv, name); err != nil {
		t.Errorf("call 3: %v, want success", err)
	}
	if got := srv.AccessCount(); got != 3 {
		t.Errorf("AccessCount = %d, want 3", got)
	}
}

func TestSetDown_FailsUnavailableUntilUp(t *testing.T) {
	srv := fakesecretmanager.Start(t)
	name := srv.AddVersion("oauth-client", []byte("one"))
	ctx := t.Context()
	c := srv.Client(ctx, t)

	srv.SetDown(true)
	_, err := c.GetSecretVersion(ctx, &secretmanagerpb.GetSecretVersionRequest{Name: name})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("GetSecretVersion while down: code = %v, want Unavailable", status.Code(err))
	}
	// The client retries AccessSecretVersion on Unavailable; a short
	// deadline ends it.
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := c.AccessSecretVersion(short, &secretmanagerpb.AccessSecretVersionRequest{Name: name}); err == nil {
		t.Error("AccessSecretVersion while down succeeded")
	}

	srv.SetDown(false)
	if _, err := c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: name}); err != nil {
		t.Errorf("AccessSecretVersion after up: %v", err)
	}
}

func TestSetHanging_WaitsForDeadlineOrRelease(t *testing.T) {
	srv := fakesecretmanager.Start(t)
	name := srv.AddVersion("oauth-client", []byte("one"))
	ctx := t.Context()
	c := srv.Client(ctx, t)
	req := &secretmanagerpb.AccessSecretVersionRequest{Name: name}

	srv.SetHanging(true)
	const deadline = 200 * time.Millisecond
	begin := time.Now() // before the deadline is set: it is measured from then
	short, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	_, err := c.AccessSecretVersion(short, req)
	if status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("AccessSecretVersion while hanging: %v, want DeadlineExceeded", err)
	}
	if d := time.Since(begin); d < deadline {
		t.Errorf("AccessSecretVersion while hanging returned after %v, before its %v deadline", d, deadline)
	}

	// A call waiting when the hang ends goes through.
	done := make(chan error, 1)
	go func() {
		_, err := c.AccessSecretVersion(ctx, req)
		done <- err
	}()
	for srv.AccessCount() < 2 {
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("AccessSecretVersion answered while hanging: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	srv.SetHanging(false)
	if err := <-done; err != nil {
		t.Errorf("AccessSecretVersion released from the hang: %v", err)
	}
}
