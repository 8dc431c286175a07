package secrets

import (
	"errors"
	"hash/crc32"
	"testing"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
)

func TestVerify_ChecksPayloadChecksum(t *testing.T) {
	good := int64(crc32.Checksum([]byte("data"), castagnoli))
	bad := good + 1
	tests := []struct {
		name    string
		payload *secretmanagerpb.SecretPayload
		wantErr error
	}{
		{"matching checksum", &secretmanagerpb.SecretPayload{Data: []byte("data"), DataCrc32C: &good}, nil},
		{"no checksum", &secretmanagerpb.SecretPayload{Data: []byte("data")}, nil},
		{"mismatched checksum", &secretmanagerpb.SecretPayload{Data: []byte("data"), DataCrc32C: &bad}, ErrChecksum},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := verify(tt.payload)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("verify error = %v, want %v", err, tt.wantErr)
			}
			if err == nil && string(got) != "data" {
				t.Errorf("verify = %q, want data", got)
			}
		})
	}
	if _, err := verify(nil); err == nil {
		t.Error("verify(nil) succeeded")
	}
}
