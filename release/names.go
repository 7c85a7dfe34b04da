package release

import (
	"fmt"
	"strings"

	"github.com/drover-cd/drover/registry"
)

// maxProjectName bounds project names; hosted repositories allow no longer ones.
const maxProjectName = 100

// CheckProjectName says why name cannot name a new project, or returns nil. A project's
// name is also its registry repository, so it is one OCI path component in lower case:
// letters and digits, separated by single '.', '_' or '-'. Projects made before this rule
// keep their names; Repository maps them to lower case.
func CheckProjectName(name string) error {
	if name != "" && len(name) <= maxProjectName && !strings.Contains(name, "/") && registry.ValidRepository(name) {
		return nil
	}
	msg := fmt.Sprintf("project name %q: use lower-case letters and digits, separated by single '.', '_' or '-' (at most %d characters; the name is also the project's registry repository)", name, maxProjectName)
	if s := SuggestProjectName(name); s != "" && s != name {
		msg += fmt.Sprintf(", such as %q", s)
	}
	return fmt.Errorf("%s", msg)
}

// SuggestProjectName returns the valid project name closest to name: lower case,
// runs of other characters made one '-', no separator at either end; "" when nothing
// of name is left.
func SuggestProjectName(name string) string {
	var b strings.Builder
	sep := false
	for _, c := range strings.ToLower(name) {
		switch {
		case c >= 'a' && c <= 'z' || c >= '0' && c <= '9':
			if sep && b.Len() > 0 {
				b.WriteByte('-')
			}
			sep = false
			b.WriteRune(c)
		default:
			sep = true
		}
	}
	s := b.String()
	if len(s) > maxProjectName {
		s = strings.TrimRight(s[:maxProjectName], "-")
	}
	return s
}
