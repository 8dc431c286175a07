package fakesecretmanager

import (
	"hash/crc32"
	"slices"
	"strconv"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checksum returns the CRC32C of data as Secret Manager encodes it.
func checksum(data []byte) int64 { return int64(crc32.Checksum(data, castagnoli)) }

// secret is one stored secret; the caller holds Server.mu.
type secret struct {
	pb       *secretmanagerpb.Secret
	versions []*version // versions[i] is version i+1
}

type version struct {
	name        string
	data        []byte
	crc         int64
	clientCRC   bool
	state       secretmanagerpb.SecretVersion_State
	created     time.Time
	destroyedAt time.Time
}

func newSecret(name string, tmpl *secretmanagerpb.Secret) *secret {
	pb := &secretmanagerpb.Secret{}
	if tmpl != nil {
		pb = proto.Clone(tmpl).(*secretmanagerpb.Secret)
	}
	pb.Name = name
	pb.CreateTime = timestamppb.Now()
	if pb.Replication == nil {
		pb.Replication = &secretmanagerpb.Replication{
			Replication: &secretmanagerpb.Replication_Automatic_{Automatic: &secretmanagerpb.Replication_Automatic{}},
		}
	}
	return &secret{pb: pb}
}

func (s *secret) add(data []byte) *version {
	v := &version{
		name:    s.pb.Name + "/versions/" + strconv.Itoa(len(s.versions)+1),
		data:    append([]byte(nil), data...),
		crc:     checksum(data),
		state:   secretmanagerpb.SecretVersion_ENABLED,
		created: time.Now(),
	}
	s.versions = append(s.versions, v)
	return v
}

// resolve finds the version named by id: "latest" (the newest enabled
// version), a number, or an alias set on the secret.
func (s *secret) resolve(id string) (*version, error) {
	if id == "latest" {
		for _, v := range slices.Backward(s.versions) {
			if v.state == secretmanagerpb.SecretVersion_ENABLED {
				return v, nil
			}
		}
		return nil, status.Errorf(codes.NotFound, "Secret [%s] has no enabled versions", s.pb.Name)
	}
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		var ok bool
		if n, ok = s.pb.GetVersionAliases()[id]; !ok {
			return nil, status.Errorf(codes.NotFound, "Secret Version alias [%s] not found for secret [%s]", id, s.pb.Name)
		}
	}
	if n < 1 || n > int64(len(s.versions)) {
		return nil, status.Errorf(codes.NotFound, "Secret Version [%s/versions/%s] not found", s.pb.Name, id)
	}
	return s.versions[n-1], nil
}

func (v *version) proto() *secretmanagerpb.SecretVersion {
	pb := &secretmanagerpb.SecretVersion{
		Name:                           v.name,
		CreateTime:                     timestamppb.New(v.created),
		State:                          v.state,
		ClientSpecifiedPayloadChecksum: v.clientCRC,
	}
	if !v.destroyedAt.IsZero() {
		pb.DestroyTime = timestamppb.New(v.destroyedAt)
	}
	return pb
}

func (s *secret) proto() *secretmanagerpb.Secret {
	return proto.Clone(s.pb).(*secretmanagerpb.Secret)
}
