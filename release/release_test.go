package release

import "testing"

func TestReleaseTags(t *testing.T) {
	for tag, want := range map[string]bool{"r1": true, "r123": true, "r": false, "1": false, "rc1": false, "r1a": false} {
		if got := IsReleaseTag(tag); got != want {
			t.Errorf("IsReleaseTag(%q) = %v", tag, got)
		}
	}
	if Tag(7) != "r7" {
		t.Errorf("Tag(7) = %q", Tag(7))
	}
}

func TestRepositoryOfAProject(t *testing.T) {
	for project, want := range map[string]string{"shop": "shop", "Shop": "shop", "my-app.v2": "my-app.v2"} {
		if got, err := Repository(project); err != nil || got != want {
			t.Errorf("Repository(%q) = %q, %v", project, got, err)
		}
	}
	for _, bad := range []string{"a..b", "app-", "_app"} {
		if _, err := Repository(bad); err == nil {
			t.Errorf("Repository(%q) did not fail", bad)
		}
	}
}
