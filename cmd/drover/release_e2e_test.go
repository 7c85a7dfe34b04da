package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// releasePipeline builds a file and a test report; the gate fails when FAIL_GATE is in
// the repository.
const releasePipeline = `
steps:
  - name: build
    run: |
      mkdir -p dist
      echo "app built from $DROVER_COMMIT" > dist/app.txt
      echo notes > dist/NOTES.md
      cat > report.xml <<'XML'
      <testsuite name="s" tests="3"><testcase name="a"/><testcase name="b"/><testcase name="c"><skipped/></testcase></testsuite>
      XML
    artifacts: [dist]
    reports: {junit: report.xml}
  - name: check
    needs: [build]
    run: test ! -f FAIL_GATE
`

type apiRelease struct {
	Run      int      `json:"run"`
	Tag      string   `json:"tag"`
	Release  bool     `json:"release"`
	Digest   string   `json:"digest"`
	Image    string   `json:"image"`
	Commit   string   `json:"commit"`
	Branch   string   `json:"branch"`
	Size     int64    `json:"size"`
	Coverage *float64 `json:"coverage"`
	Tests    *struct {
		Passed, Failed, Skipped int
	} `json:"tests"`
	Files []struct {
		Path, Digest, URL string
		Size              int64
	} `json:"files"`
}

func TestRunsPublishReleasesToTheRegistry(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), "")
	repo := gitRepo(t, releasePipeline)
	commit := git(t, repo, "rev-parse", "HEAD")
	git(t, repo, "push", "-q", s.pushURL("shop"), "main")
	if run := s.waitRun("shop", 1, finished); run.Status != "success" {
		t.Fatalf("run 1: %+v\n%s", run, s.log)
	}

	// The release is listed with its commit, tests and files.
	var rels []apiRelease
	if code := s.api("GET", "/api/v1/projects/shop/releases", "", nil, &rels); code != 200 || len(rels) != 1 {
		t.Fatalf("releases: %d %+v", code, rels)
	}
	r1 := rels[0]
	if r1.Tag != "r1" || !r1.Release || r1.Commit != commit || r1.Branch != "main" || r1.Size == 0 ||
		r1.Tests == nil || r1.Tests.Passed != 2 || r1.Tests.Skipped != 1 || !strings.HasPrefix(r1.Digest, "sha256:") {
		t.Errorf("release: %+v", r1)
	}
	if ls := s.as(s.Token, "artifact", "list", "shop"); ls.code != 0 || !strings.Contains(ls.stdout, "COVERAGE") || !strings.Contains(ls.stdout, "r1 ") {
		t.Errorf("drover artifact list:\n%s", ls)
	}
	var full apiRelease
	s.api("GET", "/api/v1/projects/shop/releases/r1", "", nil, &full)
	if len(full.Files) != 2 || full.Files[0].Path != "dist/NOTES.md" || full.Files[1].URL != "/artifacts/shop/1/dist/app.txt" {
		t.Fatalf("files: %+v", full.Files)
	}

	// The registry holds it under the run number, the release tag and the commit, all
	// one digest. The list is in lexical order, where the commit may sort first.
	var tags struct{ Tags []string }
	s.api("GET", "/v2/shop/tags/list", "", nil, &tags)
	want := []string{"1", commit, "r1"}
	slices.Sort(want)
	if !slices.Equal(tags.Tags, want) {
		t.Errorf("tags: %v", tags.Tags)
	}
	for _, ref := range []string{"1", "r1", commit} {
		resp := s.do("HEAD", "/v2/shop/manifests/"+ref, nil, nil)
		if got := resp.Header.Get("Docker-Content-Digest"); got != r1.Digest {
			t.Errorf("%s names %s, want %s", ref, got, r1.Digest)
		}
	}

	// A file downloads with its digest as ETag, and 304 once the client has it.
	resp := s.do("GET", "/artifacts/shop/r1/dist/app.txt", nil, nil)
	body, _ := io.ReadAll(resp.Body)
	etag := resp.Header.Get("ETag")
	if resp.StatusCode != 200 || string(body) != "app built from "+commit+"\n" || etag != `"`+full.Files[1].Digest+`"` {
		t.Errorf("download: %d %q etag %s", resp.StatusCode, body, etag)
	}
	if resp := s.do("GET", "/artifacts/shop/1/dist/app.txt", nil, http.Header{"If-None-Match": {etag}}); resp.StatusCode != 304 {
		t.Errorf("conditional download: %d, want 304", resp.StatusCode)
	}
	if resp := s.do("GET", "/artifacts/shop/1/dist/nope", nil, nil); resp.StatusCode != 404 {
		t.Errorf("missing file: %d, want 404", resp.StatusCode)
	}

	// Release tags are immutable, and the project's repository is written by its runs
	// only: moving or deleting r1 is refused, even for an admin.
	var manifest map[string]any
	s.api("GET", "/v2/shop/manifests/r1", "", nil, &manifest)
	manifest["annotations"].(map[string]any)["forged"] = "yes"
	data, _ := json.Marshal(manifest)
	resp = s.do("PUT", "/v2/shop/manifests/r1", bytes.NewReader(data), http.Header{"Content-Type": {"application/vnd.oci.image.manifest.v1+json"}})
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 403 || !strings.Contains(string(msg), "only its runs write there") {
		t.Errorf("moving r1: %d %s", resp.StatusCode, msg)
	}
	if resp := s.do("DELETE", "/v2/shop/manifests/r1", nil, nil); resp.StatusCode != 403 {
		t.Errorf("deleting r1: %d, want 403", resp.StatusCode)
	}

	// drover artifact pull fetches it over the registry API, verified.
	out := t.TempDir()
	res := drover(t, "", "artifact", "pull", "--server", s.URL, "--token", s.Token, "shop", out)
	if res.code != 0 || !strings.Contains(res.stdout, "shop:r1 is in") {
		t.Fatalf("artifact pull: %s", res)
	}
	if got, _ := os.ReadFile(filepath.Join(out, "dist", "app.txt")); string(got) != "app built from "+commit+"\n" {
		t.Errorf("pulled file: %q", got)
	}

	// A run that fails its gate publishes under its run number only: no release.
	os.WriteFile(filepath.Join(repo, "FAIL_GATE"), nil, 0o644)
	git(t, repo, "add", ".")
	git(t, repo, "commit", "-q", "-m", "break")
	git(t, repo, "push", "-q", s.pushURL("shop"), "main")
	if run := s.waitRun("shop", 2, finished); run.Status != "failure" {
		t.Fatalf("run 2: %+v", run)
	}
	s.api("GET", "/v2/shop/tags/list", "", nil, &tags)
	if strings.Contains(strings.Join(tags.Tags, " "), "r2") || !strings.Contains(strings.Join(tags.Tags, " "), "2") {
		t.Errorf("tags after a failed run: %v", tags.Tags)
	}
	var two apiRelease
	if s.api("GET", "/api/v1/projects/shop/releases/2", "", nil, &two); two.Release || two.Tag != "2" {
		t.Errorf("run 2's artifact: %+v", two)
	}

	// Re-running it from the failed step keeps build's artifact and publishes a release.
	os.Remove(filepath.Join(repo, "FAIL_GATE"))
	if code := s.api("POST", "/api/v1/projects/shop/runs/1/rerun", "", map[string]string{"from_step": "check"}, nil); code != 201 {
		t.Fatalf("rerun: %d", code)
	}
	if run := s.waitRun("shop", 3, finished); run.Status != "success" {
		t.Fatalf("run 3: %+v\n%s", run, s.log)
	}
	var three apiRelease
	s.api("GET", "/api/v1/projects/shop/releases/r3", "", nil, &three)
	if !three.Release || len(three.Files) != 2 || three.Files[1].Digest != full.Files[1].Digest {
		t.Errorf("re-run's release: %+v", three)
	}
}

// do sends an authenticated request and returns the response, its body unread.
func (s *testServer) do(method, path string, body io.Reader, h http.Header) *http.Response {
	s.t.Helper()
	req, _ := http.NewRequest(method, s.URL+path, body)
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+s.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	s.t.Cleanup(func() { resp.Body.Close() })
	return resp
}
