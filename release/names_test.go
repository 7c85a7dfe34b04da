package release

import (
	"strings"
	"testing"
)

func TestCheckProjectName(t *testing.T) {
	for _, name := range []string{"app", "shop-api", "a.b", "a_b", "x1", "0", strings.Repeat("a", 100)} {
		if err := CheckProjectName(name); err != nil {
			t.Errorf("CheckProjectName(%q) = %v, want nil", name, err)
		}
	}
	for name, suggest := range map[string]string{
		"App": `"app"`, "x-": `"x"`, "a..b": `"a-b"`, "-a": `"a"`, "a--b": `"a-b"`, "a/b": `"a-b"`,
		"": "", ".hidden": `"hidden"`, "my app": `"my-app"`, strings.Repeat("a", 101): `"` + strings.Repeat("a", 100) + `"`,
	} {
		err := CheckProjectName(name)
		if err == nil {
			t.Errorf("CheckProjectName(%q) = nil, want an error", name)
			continue
		}
		if !strings.Contains(err.Error(), "lower-case letters and digits") || suggest != "" && !strings.Contains(err.Error(), "such as "+suggest) {
			t.Errorf("CheckProjectName(%q) = %q; want the rule and the suggestion %s", name, err, suggest)
		}
	}
}
