package main

import (
	"fmt"
	"testing"
)

// Two environment: ephemeral steps of one run each get an environment of their own: the
// first to finish does not tear down the other's.
func TestTwoEphemeralStepsGetEnvironmentsOfTheirOwn(t *testing.T) {
	bin, err := websvcBin()
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, t.TempDir(), "", "--health-timeout", "5s")
	repo := gitRepo(t, fmt.Sprintf(`
service:
  name: web
  command: ./dist/websvc
  health: {path: /healthz, interval: 100ms}
steps:
  - name: build
    run: mkdir -p dist && cp %[1]s dist/websvc && echo v1 > dist/version
    artifacts: [dist]
  - name: api-tests
    needs: [build]
    environment: ephemeral
    run: sleep 1 && %[1]s get "$WEB_URL/"
  - name: ui-tests
    needs: [build]
    environment: ephemeral
    run: sleep 4 && %[1]s get "$WEB_URL/"
`, bin))
	git(t, repo, "push", "-q", s.pushURL("web"), "main")
	run := s.waitRun("web", 1, finished)
	t.Logf("%s %s %+v", run.Status, run.Reason, run.Steps)
	if run.Status != "success" {
		t.Errorf("two ephemeral steps in parallel: run %s (%s)", run.Status, run.Reason)
	}
}
