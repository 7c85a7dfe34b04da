package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pushFolder makes the example folder dir a git repository of its own (a copy) and
// pushes it to project name.
func (s *testServer) pushFolder(dir, name string) {
	s.t.Helper()
	repo := s.t.TempDir()
	if out, err := exec.Command("cp", "-R", dir+"/.", repo).CombinedOutput(); err != nil {
		s.t.Fatalf("copy %s: %v\n%s", dir, err, out)
	}
	git(s.t, repo, "init", "-q", "-b", "main")
	git(s.t, repo, "add", ".")
	git(s.t, repo, "commit", "-q", "-m", "import "+name)
	git(s.t, repo, "push", "-q", s.pushURL(name), "main")
}

// TestExampleShop delivers examples/shop: three services and the system project, through
// their own pipelines, from push to production.
func TestExampleShop(t *testing.T) {
	if testing.Short() {
		t.Skip("builds three Go services in their pipelines")
	}
	shop, err := filepath.Abs("../../examples/shop")
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, t.TempDir(), "", "--health-timeout", "30s")
	waiting := func(r apiRun) bool { return r.Status != "pending" && r.Status != "running" }

	s.pushFolder(filepath.Join(shop, "system"), "system")
	if run := s.waitRun("system", 1, finished); run.Status != "success" {
		t.Fatalf("system: %+v\n%s", run, s.log)
	}
	for _, svc := range []string{"catalog", "stock", "web"} {
		s.pushFolder(filepath.Join(shop, svc), svc)
		run := s.waitRun(svc, 1, waiting)
		if run.Status != "waiting" {
			t.Fatalf("%s: %+v\n%s\napi-test log:\n%s", svc, run, s.log, s.text("/api/v1/projects/"+svc+"/runs/1/steps/api-test/log"))
		}
	}
	code, page, err := s.viaProxy("web", "staging", "/")
	if code != 200 || !strings.Contains(page, "Cast-iron teapot") || !strings.Contains(page, "<td>3</td>") || !strings.Contains(page, "staging") {
		t.Fatalf("staging's front end: %d %v\n%s", code, err, page)
	}
	for _, svc := range []string{"catalog", "stock", "web"} {
		if code := s.api("POST", "/api/v1/projects/"+svc+"/runs/1/approve", "", map[string]string{"message": "tour"}, nil); code != 200 {
			t.Fatalf("approve %s: %d", svc, code)
		}
	}
	for _, svc := range []string{"catalog", "stock", "web"} {
		if run := s.waitRun(svc, 1, finished); run.Status != "success" {
			t.Fatalf("%s after the approval: %+v", svc, run)
		}
	}
	var last string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		code, page, _ := s.viaProxy("web", "production", "/")
		if code == 200 && strings.Contains(page, "Cast-iron teapot") && strings.Contains(page, "<p>production</p>") {
			break
		}
		if last = page; time.Now().After(deadline) {
			t.Fatalf("production's front end never showed both back ends: %d\n%s", code, last)
		}
	}
}
