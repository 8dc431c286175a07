package secrets

import (
	"bytes"
	"context"
	"errors"
	"hash/crc32"
	"log/slog"
	"os"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
)

// ErrChecksum is the cause when a Secret Manager payload does not match
// the CRC32C checksum sent with it.
var ErrChecksum = errors.New("payload checksum mismatch")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// SecretManager reads one secret version through a Secret Manager client.
type SecretManager struct {
	Client *secretmanager.Client
	// Name is the version's resource name,
	// projects/P/secrets/S/versions/latest or a pinned version.
	Name string
}

// Fetch accesses the version and returns its payload. It verifies the
// payload's CRC32C checksum when the response carries one.
func (s SecretManager) Fetch(ctx context.Context) ([]byte, error) {
	if err := ValidateName(s.Name); err != nil {
		return nil, &Error{Name: s.Name, Err: err}
	}
	if s.Client == nil {
		return nil, &Error{Name: s.Name, Err: errors.New("no Secret Manager client")}
	}
	resp, err := s.Client.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: s.Name})
	if err != nil {
		return nil, &Error{Name: s.Name, Err: err}
	}
	data, err := verify(resp.GetPayload())
	if err != nil {
		return nil, &Error{Name: s.Name, Err: err}
	}
	return data, nil
}

// verify returns the payload's data after checking its CRC32C checksum,
// when there is one.
func verify(p *secretmanagerpb.SecretPayload) ([]byte, error) {
	if p == nil {
		return nil, errors.New("response has no payload")
	}
	if p.DataCrc32C != nil && int64(crc32.Checksum(p.GetData(), castagnoli)) != p.GetDataCrc32C() {
		return nil, ErrChecksum
	}
	return p.GetData(), nil
}

// String returns the version's resource name.
func (s SecretManager) String() string { return s.Name }

// File reads a local file.
type File struct {
	Path string
}

// Fetch returns the file's content.
func (f File) Fetch(ctx context.Context) ([]byte, error) {
	b, err := os.ReadFile(f.Path)
	if err != nil {
		return nil, &Error{Name: f.Path, Err: err}
	}
	return b, nil
}

// String returns the file's path.
func (f File) String() string { return f.Path }

// Static is a secret held in memory: a generated development value, or a
// test fixture. Its String, GoString and LogValue methods hide the content.
type Static []byte

// Fetch returns a copy of s.
func (s Static) Fetch(ctx context.Context) ([]byte, error) { return bytes.Clone(s), nil }

// String returns "static", never the content.
func (s Static) String() string { return "static" }

// GoString returns "secrets.Static{...}", never the content.
func (s Static) GoString() string { return "secrets.Static{...}" }

// LogValue keeps the content out of structured logs.
func (s Static) LogValue() slog.Value { return slog.StringValue("[REDACTED]") }
