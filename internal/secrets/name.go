package secrets

import (
	"fmt"
	"regexp"
	"strings"
)

var (
	projectRE  = regexp.MustCompile(`^([a-z][a-z0-9-]{4,28}[a-z0-9]|[a-z0-9.-]+:[a-z][a-z0-9-]{4,28}[a-z0-9]|[1-9][0-9]*)$`)
	secretIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)
	versionRE  = regexp.MustCompile(`^(latest|[1-9][0-9]{0,18}|[A-Za-z][A-Za-z0-9_-]{0,62})$`)
)

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
	case !projectRE.MatchString(p[1]):
		return fmt.Errorf("secret version name %q: invalid project %q", name, p[1])
	case !secretIDRE.MatchString(p[3]):
		return fmt.Errorf("secret version name %q: invalid secret id %q (letters, digits, - and _, at most 255)", name, p[3])
	case !versionRE.MatchString(p[5]):
		return fmt.Errorf("secret version name %q: invalid version %q (latest, a number from 1, or an alias)", name, p[5])
	}
	return nil
}
