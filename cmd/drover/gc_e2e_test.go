package main

import (
	"fmt"
	"strings"
	"testing"
)

func TestRetentionAndGarbageCollection(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), "", "--gc-grace", "1ms", "--gc-every", "0")
	repo := gitRepo(t, `
steps:
  - name: build
    run: mkdir -p dist && echo "run $DROVER_RUN" > dist/app.txt && head -c 100000 /dev/urandom > dist/blob
    artifacts: [dist]
`)
	git(t, repo, "push", "-q", s.pushURL("gcp"), "main")
	s.waitRun("gcp", 1, finished)
	for n := 2; n <= 3; n++ {
		if code := s.api("POST", "/api/v1/projects/gcp/runs", "", map[string]string{"branch": "main"}, nil); code != 201 {
			t.Fatalf("start run %d: %d", n, code)
		}
		if run := s.waitRun("gcp", n, finished); run.Status != "success" {
			t.Fatalf("run %d: %+v", n, run)
		}
	}
	client := []string{"--server", s.URL, "--token", s.Token}
	if res := drover(t, "", append([]string{"project", "set", "gcp", "--keep-runs", "1", "--keep-for", "1ms"}, client...)...); res.code != 0 {
		t.Fatalf("project set: %s", res)
	}
	tags := func() string {
		var list struct{ Tags []string }
		s.api("GET", "/v2/gcp/tags/list", "", nil, &list)
		return strings.Join(list.Tags, " ")
	}
	before := tags()

	dry := drover(t, "", append([]string{"registry", "gc", "--dry-run"}, client...)...)
	if dry.code != 0 || !strings.Contains(dry.stdout, "tag       gcp:r1") || !strings.Contains(dry.stdout, "tag       gcp:2") ||
		strings.Contains(dry.stdout, "gcp:r3") || !strings.Contains(dry.stdout, "would remove 4 tags, 2 manifests") {
		t.Fatalf("dry run: %s", dry)
	}
	if got := tags(); got != before {
		t.Errorf("the dry run changed tags: %q, was %q", got, before)
	}

	res := drover(t, "", append([]string{"registry", "gc"}, client...)...)
	if res.code != 0 || !strings.Contains(res.stdout, "removed 4 tags, 2 manifests, 4 blobs") {
		t.Fatalf("gc: %s", res)
	}
	if got := tags(); strings.Contains(got, "r1") || strings.Contains(got, "r2") || !strings.Contains(got, "r3") {
		t.Errorf("tags after gc: %q", got)
	}
	var rels []apiRelease
	if s.api("GET", "/api/v1/projects/gcp/releases", "", nil, &rels); len(rels) != 1 || rels[0].Tag != "r3" {
		t.Errorf("releases after gc: %+v", rels)
	}
	for n, want := range map[int]int{1: 404, 3: 200} {
		if resp := s.do("GET", fmt.Sprintf("/artifacts/gcp/%d/dist/app.txt", n), nil, nil); resp.StatusCode != want {
			t.Errorf("run %d's file after gc: %d, want %d", n, resp.StatusCode, want)
		}
	}
	// The run page says where its artifact went.
	if page := s.text("/p/gcp/runs/1"); !strings.Contains(page, "no longer stored") {
		t.Errorf("run 1's page does not say its artifact is gone")
	}
}
