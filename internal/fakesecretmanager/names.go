package fakesecretmanager

import (
	"regexp"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var (
	projectRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9.:-]*[a-z0-9]$`)
	secretIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)
	versionRE  = regexp.MustCompile(`^(latest|[1-9][0-9]{0,18}|[A-Za-z][A-Za-z0-9_-]{0,62})$`)
)

// parseProject parses "projects/P".
func parseProject(name string) (string, error) {
	p, ok := strings.CutPrefix(name, "projects/")
	if !ok || !projectRE.MatchString(p) {
		return "", status.Errorf(codes.InvalidArgument, "invalid resource name %q: want projects/*", name)
	}
	return name, nil
}

// parseSecret parses "projects/P/secrets/S".
func parseSecret(name string) (string, error) {
	parts := strings.Split(name, "/")
	if len(parts) != 4 || parts[0] != "projects" || !projectRE.MatchString(parts[1]) ||
		parts[2] != "secrets" || !secretIDRE.MatchString(parts[3]) {
		return "", status.Errorf(codes.InvalidArgument, "invalid resource name %q: want projects/*/secrets/*", name)
	}
	return name, nil
}

// parseVersion parses "projects/P/secrets/S/versions/V" into the secret's
// name and V.
func parseVersion(name string) (secret, version string, err error) {
	secret, version, ok := strings.Cut(name, "/versions/")
	if !ok || !versionRE.MatchString(version) {
		return "", "", status.Errorf(codes.InvalidArgument, "invalid resource name %q: want projects/*/secrets/*/versions/*", name)
	}
	if _, err := parseSecret(secret); err != nil {
		return "", "", status.Errorf(codes.InvalidArgument, "invalid resource name %q: want projects/*/secrets/*/versions/*", name)
	}
	return secret, version, nil
}
