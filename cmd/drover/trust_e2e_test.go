package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drover-cd/drover/store"
	"github.com/drover-cd/drover/store/sqlstore"
)

// tokenWithRole creates a token of role through the API and returns it.
func (s *testServer) tokenWithRole(role string) string {
	s.t.Helper()
	var tok struct{ Token string }
	if code := s.api("POST", "/api/v1/tokens", "", map[string]string{"role": role, "name": role + "-token"}, &tok); code != http.StatusCreated {
		s.t.Fatalf("create a %s token: %d", role, code)
	}
	return tok.Token
}

// doAs sends a request with token and returns the status and the body.
func (s *testServer) doAs(token, method, path string, body []byte, contentType string) (int, string) {
	s.t.Helper()
	req, _ := http.NewRequest(method, s.URL+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

const ociManifest = "application/vnd.oci.image.manifest.v1+json"

// pushImage pushes a one-blob manifest to repo:tag with token and returns the status and body
// of the last request that answered (the blob's, when that failed).
func (s *testServer) pushImage(token, repo, tag, content string) (int, string) {
	s.t.Helper()
	d := fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(content)))
	if code, body := s.doAs(token, "POST", "/v2/"+repo+"/blobs/uploads/?digest="+d, []byte(content), "application/octet-stream"); code != http.StatusCreated {
		return code, body
	}
	m, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": ociManifest,
		"config": map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": d, "size": len(content)}, "layers": []any{}})
	return s.doAs(token, "PUT", "/v2/"+repo+"/manifests/"+tag, m, ociManifest)
}

// Issue 13's findings, as a developer-token attacker on a server started as the README
// says: releases cannot be forged or broken, names cannot collide.
func TestTrustRegistryWriteRulesAndProjectNames(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), "")
	dev, viewer := s.tokenWithRole("developer"), s.tokenWithRole("viewer")
	repo := gitRepo(t, releasePipeline)
	git(t, repo, "push", "-q", s.pushURL("app"), "main")
	if run := s.waitRun("app", 1, finished); run.Status != "success" {
		t.Fatalf("run 1: %+v\n%s", run, s.log)
	}
	code, r1 := s.doAs(s.Token, "GET", "/v2/app/manifests/r1", nil, "")
	if code != http.StatusOK {
		t.Fatalf("GET r1: %d %s", code, r1)
	}
	forged := strings.Replace(r1, `"annotations": {`, `"annotations": {"forged": "yes", `, 1)
	forged = strings.Replace(forged, `"annotations":{`, `"annotations":{"forged":"yes",`, 1)
	if forged == r1 {
		t.Fatalf("the release manifest has no annotations to forge: %s", r1)
	}

	t.Run("releases and run tags cannot be forged", func(t *testing.T) {
		for _, c := range []struct{ who, token, tag string }{
			{"developer", dev, "r2"}, {"developer", dev, "1"}, {"developer", dev, "r99"}, {"admin", s.Token, "r2"},
		} {
			code, body := s.doAs(c.token, "PUT", "/v2/app/manifests/"+c.tag, []byte(forged), ociManifest)
			if code != http.StatusForbidden || !strings.Contains(body, "DENIED") || !strings.Contains(body, "belongs to project app") {
				t.Errorf("%s PUT app:%s: %d %s; want 403 DENIED naming project app", c.who, c.tag, code, body)
			}
		}
		if code, body := s.pushImage(dev, "app/image", "latest", "fake image"); code != http.StatusForbidden {
			t.Errorf("developer pushes app/image: %d %s; want 403", code, body)
		}
		// The project's next run publishes its own release r2, not a forgery.
		os.WriteFile(filepath.Join(repo, "second"), []byte("2"), 0o644)
		git(t, repo, "add", ".")
		git(t, repo, "commit", "-q", "-m", "second")
		git(t, repo, "push", "-q", s.pushURL("app"), "main")
		if run := s.waitRun("app", 2, finished); run.Status != "success" {
			t.Fatalf("run 2: %+v\n%s", run, s.log)
		}
		if _, m := s.doAs(dev, "GET", "/v2/app/manifests/r2", nil, ""); strings.Contains(m, "forged") {
			t.Errorf("r2 is the forged manifest: %s", m)
		}
		res := drover(t, "", "artifact", "list", "--server", s.URL, "--token", dev, "app")
		if res.code != 0 || strings.Contains(res.stdout, "r99") || !strings.Contains(res.stdout, "r2") {
			t.Errorf("artifact list:\n%s", res)
		}
	})

	t.Run("other repositories take pushes by role", func(t *testing.T) {
		if code, body := s.pushImage(dev, "base/busybox", "1", "busybox config"); code != http.StatusCreated {
			t.Errorf("developer pushes base/busybox:1: %d %s; want 201", code, body)
		}
		if code, body := s.pushImage(viewer, "base/busybox", "2", "viewer's"); code != http.StatusForbidden {
			t.Errorf("viewer pushes base/busybox:2: %d %s; want 403", code, body)
		}
	})

	t.Run("what a release references cannot be deleted", func(t *testing.T) {
		var m struct {
			Layers []struct{ Digest string }
		}
		if err := json.Unmarshal([]byte(r1), &m); err != nil || len(m.Layers) == 0 {
			t.Fatalf("r1's layers: %v %s", err, r1)
		}
		resp := s.do("HEAD", "/v2/app/manifests/r1", nil, nil)
		for _, c := range []struct{ who, token, path string }{
			{"developer", dev, "/v2/app/blobs/" + m.Layers[0].Digest},
			{"admin", s.Token, "/v2/app/blobs/" + m.Layers[0].Digest},
			{"developer", dev, "/v2/app/manifests/" + resp.Header.Get("Docker-Content-Digest")},
			{"developer", dev, "/v2/app/manifests/1"},
		} {
			if code, body := s.doAs(c.token, "DELETE", c.path, nil, ""); code != http.StatusForbidden || !strings.Contains(body, "garbage collection") {
				t.Errorf("%s DELETE %s: %d %s; want 403 naming retention and garbage collection", c.who, c.path, code, body)
			}
		}
		res := drover(t, "", "artifact", "pull", "--server", s.URL, "--token", dev, "app:r1", t.TempDir())
		if res.code != 0 {
			t.Errorf("artifact pull app:r1 after the deletes:\n%s", res)
		}
	})

	t.Run("one name rule for projects", func(t *testing.T) {
		for _, c := range []struct{ name, want string }{
			{"App", `project "app" has that name in another case`},
			{"x-", `project name "x-": use lower-case letters and digits`},
			{"a..b", `such as "a-b"`},
			{"base", "the registry holds images under base/"},
		} {
			out, err := gitErr(repo, "push", "-q", s.pushURL(c.name), "main")
			if err == nil || !strings.Contains(out, "remote: ") || !strings.Contains(out, c.want) {
				t.Errorf("git push to %s.git: %v\n%s\nwant a remote: line with %q", c.name, err, out, c.want)
			}
			if code := s.api("GET", "/api/v1/projects/"+c.name+"/runs", "", nil, nil); code != http.StatusNotFound {
				t.Errorf("project %s exists after a refused push: %d", c.name, code)
			}
		}
		for _, c := range []struct {
			name string
			code int
		}{{"x-", 400}, {"APP", 409}, {"base", 409}, {"app", 409}, {"tools", 201}} {
			if code := s.api("POST", "/api/v1/projects", "", map[string]string{"name": c.name, "url": repo}, nil); code != c.code {
				t.Errorf("POST /api/v1/projects %q: %d, want %d", c.name, code, c.code)
			}
		}
		// The project tools now owns tools/...: a token cannot put images there.
		if code, body := s.pushImage(dev, "tools/lint", "1", "lint"); code != http.StatusForbidden {
			t.Errorf("developer pushes tools/lint after project tools exists: %d %s; want 403", code, body)
		}
		if n := s.waitRun("app", 2, finished).Number; n != 2 {
			t.Errorf("app's runs changed: %d", n)
		}
	})
}

// Projects named before the name rule keep working, and the server says how to rename them.
func TestProjectsWithOldNamesKeepWorking(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	st, err := sqlstore.Open(t.Context(), filepath.Join(dir, "drover.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"Legacy.App", "x-"} {
		if err := st.CreateProject(t.Context(), &store.Project{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	s := startServer(t, dir, "")
	for _, want := range []string{`project=Legacy.App`, `suggested=legacy-app`, `project=x-`, `suggested=x`, "rename it"} {
		if !strings.Contains(s.log.String(), want) {
			t.Errorf("the start log does not say %q:\n%s", want, s.log)
		}
	}
	repo := gitRepo(t, releasePipeline)
	git(t, repo, "push", "-q", s.pushURL("Legacy.App"), "main")
	if run := s.waitRun("Legacy.App", 1, finished); run.Status != "success" {
		t.Fatalf("the old-named project's run: %+v\n%s", run, s.log)
	}
	if code, _ := s.doAs(s.Token, "GET", "/v2/legacy.app/manifests/r1", nil, ""); code != http.StatusOK {
		t.Errorf("Legacy.App's release r1 is not in legacy.app: %d", code)
	}
}

// A developer's push of the system project cannot declare environments: otherwise
// `production: {}` would drop its release-manager approval (found in review).
func TestDeveloperCannotDeclareEnvironments(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), "")
	dev := s.tokenWithRole("developer")
	repo := gitRepo(t, "steps: [{name: check, run: 'true'}]\n")
	os.WriteFile(filepath.Join(repo, "environments.yml"), []byte("environments:\n  production: {strategy: blue-green}\n"), 0o644)
	git(t, repo, "add", ".")
	git(t, repo, "commit", "-q", "-m", "declare production without approval")
	devURL := strings.Replace(s.URL, "http://", "http://dev:"+dev+"@", 1) + "/git/system.git"
	git(t, repo, "push", "-q", devURL, "main")
	run := s.waitRun("system", 1, finished)
	log := s.text("/api/v1/projects/system/runs/1/steps/environments/log")
	if run.Status != "failure" || !strings.Contains(log+run.Reason, "only an admin may do") {
		t.Errorf("a developer's environments.yml: run %+v, log:\n%s", run, log)
	}
	var env struct{ Approval string }
	if code := s.api("GET", "/api/v1/environments/production", "", nil, &env); code == 200 && env.Approval == "" {
		t.Errorf("production lost its approval role after a developer's push")
	}
	// The same commit, re-run by an admin, applies.
	if code := s.api("POST", "/api/v1/projects/system/runs/1/rerun", "", map[string]string{}, nil); code != 201 {
		t.Fatalf("rerun: %d", code)
	}
	if run := s.waitRun("system", 2, finished); run.Status != "success" {
		t.Errorf("the admin's re-run: %+v\n%s", run, s.log)
	}
}
