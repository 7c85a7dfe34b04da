package main

import (
	"fmt"
	"strings"
	"testing"
)

// A run waiting for the approval before its production deploy says on its page that
// production lacks what its release requires; approved anyway, its deploy is refused
// naming what is missing, and production runs nothing of it.
func TestApprovalPageNamesMissingRequires(t *testing.T) {
	bin, err := websvcBin()
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, t.TempDir(), "")
	repo := gitRepo(t, fmt.Sprintf(`
service:
  name: web
  command: ./dist/websvc
  health: {path: /healthz, interval: 100ms}
  requires: [api, stock]
steps:
  - name: build
    run: mkdir -p dist && cp %s dist/websvc && echo v1 > dist/version
    artifacts: [dist]
  - name: go-live
    approval: {role: release-manager}
  - name: production
    deploy: production
`, bin))
	git(t, repo, "push", "-q", s.pushURL("web"), "main")
	s.waitRun("web", 1, func(r apiRun) bool { return r.Status == "waiting" })
	page := s.text("/p/web/runs/1")
	if !strings.Contains(page, `data-missing="production"`) || !strings.Contains(page, "production lacks api and stock, which this release requires") {
		t.Errorf("the approval page does not name what production lacks:\n%s", page)
	}
	if res := s.as(s.Token, "approve", "web", "1"); res.code != 0 {
		t.Fatalf("approve: %s", res)
	}
	run := s.waitRun("web", 1, finished)
	if run.Status != "failure" || !strings.Contains(run.Steps[2].Reason, "web requires api and stock, which do not run in production") {
		t.Errorf("the approved run's deploy: %+v", run)
	}
	if e := s.env("production"); len(e.Services) != 0 {
		t.Errorf("production runs %+v after a refused deploy", e.Services)
	}
}
