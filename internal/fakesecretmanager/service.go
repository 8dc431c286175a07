package fakesecretmanager

import (
	"context"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// maxPayload is the largest secret payload Secret Manager accepts.
const maxPayload = 64 << 10

// service implements the gRPC methods over the Server's state.
type service struct {
	secretmanagerpb.UnimplementedSecretManagerServiceServer
	s *Server
}

// lookup returns the secret named name; the caller holds s.mu.
func (svc *service) lookup(name string) (*secret, error) {
	sec := svc.s.secrets[name]
	if sec == nil {
		return nil, status.Errorf(codes.NotFound, "Secret [%s] not found or has no versions.", name)
	}
	return sec, nil
}

// lookupVersion resolves a version name; the caller holds s.mu.
func (svc *service) lookupVersion(name string) (*version, error) {
	secName, id, err := parseVersion(name)
	if err != nil {
		return nil, err
	}
	sec, err := svc.lookup(secName)
	if err != nil {
		return nil, err
	}
	return sec.resolve(id)
}

func (svc *service) CreateSecret(ctx context.Context, req *secretmanagerpb.CreateSecretRequest) (*secretmanagerpb.Secret, error) {
	parent, err := parseProject(req.GetParent())
	if err != nil {
		return nil, err
	}
	if !secretIDRE.MatchString(req.GetSecretId()) {
		return nil, status.Errorf(codes.InvalidArgument, "invalid secret id %q", req.GetSecretId())
	}
	if req.GetSecret().GetReplication() == nil {
		return nil, status.Error(codes.InvalidArgument, "Secret.replication is required")
	}
	name := parent + "/secrets/" + req.GetSecretId()
	svc.s.mu.Lock()
	defer svc.s.mu.Unlock()
	if svc.s.secrets[name] != nil {
		return nil, status.Errorf(codes.AlreadyExists, "Secret [%s] already exists.", name)
	}
	sec := newSecret(name, req.GetSecret())
	svc.s.secrets[name] = sec
	return sec.proto(), nil
}

func (svc *service) GetSecret(ctx context.Context, req *secretmanagerpb.GetSecretRequest) (*secretmanagerpb.Secret, error) {
	name, err := parseSecret(req.GetName())
	if err != nil {
		return nil, err
	}
	svc.s.mu.Lock()
	defer svc.s.mu.Unlock()
	sec, err := svc.lookup(name)
	if err != nil {
		return nil, err
	}
	return sec.proto(), nil
}

func (svc *service) AddSecretVersion(ctx context.Context, req *secretmanagerpb.AddSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	name, err := parseSecret(req.GetParent())
	if err != nil {
		return nil, err
	}
	p := req.GetPayload()
	switch {
	case p == nil:
		return nil, status.Error(codes.InvalidArgument, "SecretVersion.payload is required")
	case len(p.GetData()) > maxPayload:
		return nil, status.Errorf(codes.InvalidArgument, "SecretPayload.data is %d bytes, at most %d allowed", len(p.GetData()), maxPayload)
	case p.DataCrc32C != nil && *p.DataCrc32C != checksum(p.GetData()):
		return nil, status.Error(codes.InvalidArgument, "Checksum mismatch: SecretPayload.data_crc32c does not match the data")
	}
	svc.s.mu.Lock()
	defer svc.s.mu.Unlock()
	sec, err := svc.lookup(name)
	if err != nil {
		return nil, err
	}
	v := sec.add(p.GetData())
	v.clientCRC = p.DataCrc32C != nil
	return v.proto(), nil
}

func (svc *service) GetSecretVersion(ctx context.Context, req *secretmanagerpb.GetSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	svc.s.mu.Lock()
	defer svc.s.mu.Unlock()
	v, err := svc.lookupVersion(req.GetName())
	if err != nil {
		return nil, err
	}
	return v.proto(), nil
}

func (svc *service) AccessSecretVersion(ctx context.Context, req *secretmanagerpb.AccessSecretVersionRequest) (*secretmanagerpb.AccessSecretVersionResponse, error) {
	svc.s.mu.Lock()
	defer svc.s.mu.Unlock()
	v, err := svc.lookupVersion(req.GetName())
	if err != nil {
		return nil, err
	}
	if v.state != secretmanagerpb.SecretVersion_ENABLED {
		return nil, status.Errorf(codes.FailedPrecondition, "Secret Version [%s] is in %s state.", v.name, v.state)
	}
	crc := v.crc
	return &secretmanagerpb.AccessSecretVersionResponse{
		Name: v.name,
		Payload: &secretmanagerpb.SecretPayload{
			Data:       append([]byte(nil), v.data...),
			DataCrc32C: &crc,
		},
	}, nil
}

func (svc *service) DisableSecretVersion(ctx context.Context, req *secretmanagerpb.DisableSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	return svc.transition(req.GetName(), secretmanagerpb.SecretVersion_DISABLED)
}

func (svc *service) EnableSecretVersion(ctx context.Context, req *secretmanagerpb.EnableSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	return svc.transition(req.GetName(), secretmanagerpb.SecretVersion_ENABLED)
}

func (svc *service) DestroySecretVersion(ctx context.Context, req *secretmanagerpb.DestroySecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	return svc.transition(req.GetName(), secretmanagerpb.SecretVersion_DESTROYED)
}

// transition moves a version to state. A destroyed version cannot change.
func (svc *service) transition(name string, state secretmanagerpb.SecretVersion_State) (*secretmanagerpb.SecretVersion, error) {
	svc.s.mu.Lock()
	defer svc.s.mu.Unlock()
	v, err := svc.lookupVersion(name)
	if err != nil {
		return nil, err
	}
	if v.state == secretmanagerpb.SecretVersion_DESTROYED {
		return nil, status.Errorf(codes.FailedPrecondition, "Secret Version [%s] is in DESTROYED state.", v.name)
	}
	v.state = state
	if state == secretmanagerpb.SecretVersion_DESTROYED {
		v.data = nil
		v.destroyedAt = time.Now()
	}
	return v.proto(), nil
}

// ListSecretVersions lists versions newest first. The only filters
// understood are "state:ENABLED", "state:DISABLED" and "state:DESTROYED";
// page tokens are offsets.
func (svc *service) ListSecretVersions(ctx context.Context, req *secretmanagerpb.ListSecretVersionsRequest) (*secretmanagerpb.ListSecretVersionsResponse, error) {
	name, err := parseSecret(req.GetParent())
	if err != nil {
		return nil, err
	}
	var want secretmanagerpb.SecretVersion_State
	if f := req.GetFilter(); f != "" {
		s, ok := strings.CutPrefix(f, "state:")
		want = secretmanagerpb.SecretVersion_State(secretmanagerpb.SecretVersion_State_value[strings.ToUpper(s)])
		if !ok || want == secretmanagerpb.SecretVersion_STATE_UNSPECIFIED {
			return nil, status.Errorf(codes.InvalidArgument, "fakesecretmanager: unsupported filter %q", f)
		}
	}
	start := 0
	if t := req.GetPageToken(); t != "" {
		if start, err = strconv.Atoi(t); err != nil || start < 0 {
			return nil, status.Errorf(codes.InvalidArgument, "invalid page token %q", t)
		}
	}

	svc.s.mu.Lock()
	defer svc.s.mu.Unlock()
	sec, err := svc.lookup(name)
	if err != nil {
		return nil, err
	}
	var all []*secretmanagerpb.SecretVersion
	for i := len(sec.versions) - 1; i >= 0; i-- {
		if v := sec.versions[i]; want == 0 || v.state == want {
			all = append(all, v.proto())
		}
	}
	resp := &secretmanagerpb.ListSecretVersionsResponse{TotalSize: int32(len(all))}
	if start > len(all) {
		start = len(all)
	}
	end := len(all)
	if n := int(req.GetPageSize()); n > 0 && start+n < end {
		end = start + n
		resp.NextPageToken = strconv.Itoa(end)
	}
	resp.Versions = all[start:end]
	return resp, nil
}
