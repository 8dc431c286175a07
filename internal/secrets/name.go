package secrets

import (
	"fmt"
	"regexp"
	"strings"
)

// The patterns have no counted repetitions: regexp compiles x{0,255} into
// 255 copies of x, which cost a third of a megabyte of heap for the life of
// the instance. The lengths are checked apart, in validProject, validSecretID
// and validVersion.
var (
	projectRE  = regexp.MustCompile(`^(?:[a-z0-9.-]+:)?([a-z][a-z0-9-]*[a-z0-9]|[1-9][0-9]*)$`)
	secretIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	versionRE  = regexp.MustCompile(`^(?:latest|([1-9][0-9]*)|([A-Za-z][A-Za-z0-9_-]*))$`)
)

// validProject reports whether p is a project ID (6 to 30 characters, with
// an optional domain: prefix) or a project number.
func validProject(p string) bool {
	m := projectRE.FindStringSubmatch(p)
	if m == nil {
		return false
	}
	id := m[1]
	return id[0] <= '9' || 6 <= len(id) && len(id) <= 30
}

// validSecretID reports whether id is a secret ID: letters, digits, - and
// _, at most 255.
func validSecretID(id string) bool {
	return len(id) <= 255 && secretIDRE.MatchString(id)
}

// validVersion reports whether v is "latest", a version number (at most
// 19 digits) or an alias (at most 63 characters).
func validVersion(v string) bool {
	m := versionRE.FindStringSubmatch(v)
	return m != nil && len(m[1]) <= 19 && len(m[2]) <= 63
}

// ValidateName reports whether name is a Secret Manager version resource
// name, projects/PROJECT/secrets/SECRET/versions/VERSION, where VERSION is
// "latest", a version number or an alias. The error says what is wrong.
func ValidateName(name string) error {
	const want = "want projects/PROJECT/secrets/SECRET/versions/VERSION"
	p := strings.Split(name, "/")
	switch {
	case name == "":
		return fmt.Errorf("secret version name is empty: %s", want)
	case len(p) == 4 && p[0] == "projects" && p[2] == "secrets":
		return fmt.Errorf("secret version name %q names a secret, not a version: append /versions/latest or a version number", name)
	case len(p) != 6 || p[0] != "projects" || p[2] != "secrets" || p[4] != "versions":
		return fmt.Errorf("secret version name %q: %s", name, want)
	case !validProject(p[1]):
		return fmt.Errorf("secret version name %q: invalid project %q", name, p[1])
	case !validSecretID(p[3]):
		return fmt.Errorf("secret version name %q: invalid secret id %q (letters, digits, - and _, at most 255)", name, p[3])
	case !validVersion(p[5]):
		return fmt.Errorf("secret version name %q: invalid version %q (latest, a number from 1, or an alias)", name, p[5])
	}
	return nil
}
