package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// waitEnded polls run n of project p until it has ended (neither queued, running nor
// waiting), failing after within.
func (s *testServer) waitEnded(p string, n int, within time.Duration) apiRun {
	s.t.Helper()
	var run apiRun
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if code := s.api("GET", fmt.Sprintf("/api/v1/projects/%s/runs/%d", p, n), "", nil, &run); code == 200 &&
			finished(run) && run.Status != "waiting" {
			return run
		}
	}
	s.t.Fatalf("run %s #%d did not end within %s; last: %+v\nserver log:\n%s", p, n, within, run, s.log)
	return run
}

func stepOf(run apiRun, name string) (status, reason string) {
	for _, st := range run.Steps {
		if st.Name == name {
			return st.Status, st.Reason
		}
	}
	return "", ""
}

func auditOf(s *testServer) []auditJSONEntry {
	var out []auditJSONEntry
	if code := s.api("GET", "/api/v1/audit", "", nil, &out); code != 200 {
		s.t.Fatalf("audit: %d", code)
	}
	return out
}

type auditJSONEntry struct {
	Actor   string `json:"actor"`
	Action  string `json:"action"`
	Project string `json:"project"`
	Run     int    `json:"run"`
	Result  string `json:"result"`
	Message string `json:"message"`
}

// An approval decided while other steps of the run still run resumes the run once they
// end, instead of leaving it waiting for ever.
func TestApprovalDecidedWhileRunStillRunningResumes(t *testing.T) {
	s := startServer(t, t.TempDir(), "")
	repo := gitRepo(t, `
steps:
  - name: build
    run: echo built
  - name: slow-tests
    needs: [build]
    run: sleep 4
  - name: go-live
    needs: [build]
    approval: {role: release-manager}
  - name: after
    needs: [go-live]
    run: echo after
`)
	git(t, repo, "push", "-q", s.pushURL("app"), "main")
	// The approval is asked for while slow-tests still runs.
	var code int
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		code = s.api("POST", "/api/v1/projects/app/runs/1/approve", "", map[string]string{"step": "go-live"}, nil)
		if code == 200 {
			break
		}
	}
	if code != 200 {
		t.Fatalf("approve: %d", code)
	}
	run := s.waitRun("app", 1, func(apiRun) bool { return true })
	if run.Status != "running" {
		t.Logf("note: the approval came when the run was already %s", run.Status)
	}
	run = s.waitEnded("app", 1, 30*time.Second)
	if st, _ := stepOf(run, "after"); run.Status != "success" || st != "success" {
		t.Errorf("run approved while running: %+v", run)
	}
}

// An approval timing out while other steps of the run still run ends the run as
// rejected, and the timeout's rejection is in the audit log.
func TestApprovalTimeoutWhileRunStillRunningEndsRun(t *testing.T) {
	s := startServer(t, t.TempDir(), "")
	repo := gitRepo(t, `
steps:
  - name: build
    run: echo built
  - name: slow-tests
    needs: [build]
    run: sleep 4
  - name: go-live
    needs: [build]
    approval: {role: release-manager, timeout: 1s}
  - name: after
    needs: [go-live]
    run: echo after
`)
	git(t, repo, "push", "-q", s.pushURL("app"), "main")
	run := s.waitEnded("app", 1, 30*time.Second)
	if run.Status != "failure" || !strings.Contains(run.Reason, "rejected by drover") {
		t.Errorf("run whose approval timed out while running: %+v", run)
	}
	found := false
	for _, e := range auditOf(s) {
		found = found || (e.Actor == "drover" && e.Action == "reject" && e.Project == "app" && e.Run == 1 &&
			strings.Contains(e.Message, "go-live"))
	}
	if !found {
		t.Errorf("no audit entry for the timed-out approval: %+v\n%+v\n%s", auditOf(s), run, s.log)
	}
}

// A re-run from a deploy step keeps the earlier run's approval: the kept approval step
// still lets the release into the approval-gated environment.
func TestRerunFromDeployKeepsApproval(t *testing.T) {
	bin, err := websvcBin()
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, t.TempDir(), "")
	envFile := filepath.Join(t.TempDir(), "environments.yml")
	os.WriteFile(envFile, []byte("environments:\n  production: { approval: release-manager }\n"), 0o644)
	if res := drover(t, "", "env", "apply", envFile, "--server", s.URL, "--token", s.Token); res.code != 0 {
		t.Fatalf("env apply: %s", res)
	}
	repo := gitRepo(t, fmt.Sprintf(`
service:
  name: shop
  command: ./dist/websvc
  health: {path: /healthz, interval: 100ms}
steps:
  - name: build
    run: mkdir -p dist && cp %s dist/websvc && echo v1 > dist/version
    artifacts: [dist]
  - name: go-live
    approval: {role: release-manager}
  - name: production
    deploy: production
`, bin))
	git(t, repo, "push", "-q", s.pushURL("shop"), "main")
	s.waitRun("shop", 1, func(r apiRun) bool { return r.Status == "waiting" })
	if code := s.api("POST", "/api/v1/projects/shop/runs/1/approve", "", map[string]string{}, nil); code != 200 {
		t.Fatalf("approve %d", code)
	}
	if run := s.waitEnded("shop", 1, 60*time.Second); run.Status != "success" {
		t.Fatalf("run 1 %+v", run)
	}
	if code := s.api("POST", "/api/v1/projects/shop/runs/1/rerun", "", map[string]string{"from_step": "production"}, nil); code != 201 {
		t.Fatalf("rerun: %d", code)
	}
	run := s.waitEnded("shop", 2, 60*time.Second)
	if st, reason := stepOf(run, "go-live"); run.Status != "success" || st != "success" || !strings.Contains(reason, "kept from run #1") {
		t.Errorf("re-run of the production step after an approved go-live: %+v", run)
	}
}

// Cancelling a waiting run closes its approval: the approval is rejected in the
// canceller's name, the step no longer shows as waiting, and nobody can decide it later.
func TestCancelWaitingRunClosesItsApproval(t *testing.T) {
	s := startServer(t, t.TempDir(), "")
	repo := gitRepo(t, `
steps:
  - name: build
    run: echo built
  - name: go-live
    needs: [build]
    approval: {role: release-manager}
  - name: after
    needs: [go-live]
    run: echo after
`)
	git(t, repo, "push", "-q", s.pushURL("app"), "main")
	s.waitRun("app", 1, func(r apiRun) bool { return r.Status == "waiting" })
	if code := s.api("POST", "/api/v1/projects/app/runs/1/cancel", "", map[string]string{}, nil); code != 202 {
		t.Fatalf("cancel: %d", code)
	}
	run := s.waitEnded("app", 1, 10*time.Second)
	if st, _ := stepOf(run, "go-live"); run.Status != "cancelled" || st == "waiting" || st == "pending" {
		t.Errorf("cancelled waiting run: %+v", run)
	}
	if code := s.api("POST", "/api/v1/projects/app/runs/1/approve", "", map[string]string{"step": "go-live"}, nil); code != 409 {
		t.Errorf("approving a cancelled run: %d, want 409", code)
	}
	time.Sleep(500 * time.Millisecond)
	if run := s.waitRun("app", 1, func(apiRun) bool { return true }); run.Status != "cancelled" {
		t.Errorf("the cancelled run went on: %+v", run)
	}
	found := false
	for _, e := range auditOf(s) {
		found = found || (e.Action == "reject" && e.Run == 1 && e.Actor != "drover" && strings.Contains(e.Message, "run cancelled"))
	}
	if !found {
		t.Errorf("no audit entry for the approval the cancel rejected: %+v", auditOf(s))
	}
}

// A run that ended while its approval was still asked for (another step failed) does
// not take a decision any more.
func TestApprovalOfEndedRunIsRefused(t *testing.T) {
	s := startServer(t, t.TempDir(), "")
	repo := gitRepo(t, `
steps:
  - name: build
    run: echo built
  - name: tests
    needs: [build]
    run: sleep 2 && exit 1
  - name: go-live
    needs: [build]
    approval: {role: release-manager}
`)
	git(t, repo, "push", "-q", s.pushURL("app"), "main")
	run := s.waitEnded("app", 1, 30*time.Second)
	if st, _ := stepOf(run, "go-live"); run.Status != "failure" || st == "waiting" {
		t.Errorf("failed run: %+v", run)
	}
	if code := s.api("POST", "/api/v1/projects/app/runs/1/approve", "", map[string]string{"step": "go-live"}, nil); code != 409 {
		t.Errorf("approving a failed run: %d, want 409", code)
	}
}

// A run resuming after its approval keeps every step that had finished: an allowed
// failure is not run again, a step skipped by its when: stays skipped.
func TestResumedRunKeepsFinishedSteps(t *testing.T) {
	s := startServer(t, t.TempDir(), "")
	counter := filepath.Join(t.TempDir(), "flaky-ran")
	repo := gitRepo(t, fmt.Sprintf(`
steps:
  - name: flaky
    run: echo ran >> %s && exit 1
    allow_failure: true
  - name: release-only
    when: {branch: release}
    run: echo release
  - name: go-live
    needs: [flaky, release-only]
    approval: {role: release-manager}
  - name: after
    needs: [go-live]
    run: echo after
`, counter))
	git(t, repo, "push", "-q", s.pushURL("app"), "main")
	s.waitRun("app", 1, func(r apiRun) bool { return r.Status == "waiting" })
	if code := s.api("POST", "/api/v1/projects/app/runs/1/approve", "", map[string]string{}, nil); code != 200 {
		t.Fatalf("approve: %d", code)
	}
	run := s.waitEnded("app", 1, 30*time.Second)
	if run.Status != "success" {
		t.Errorf("resumed run: %+v", run)
	}
	if st, _ := stepOf(run, "flaky"); st != "failure" {
		t.Errorf("flaky after the resume: %s", st)
	}
	if st, reason := stepOf(run, "release-only"); st != "skipped" || !strings.Contains(reason, "branch") {
		t.Errorf("release-only after the resume: %s (%s)", st, reason)
	}
	data, _ := os.ReadFile(counter)
	if n := strings.Count(string(data), "ran"); n != 1 {
		t.Errorf("the allowed failure ran %d times, want once", n)
	}
}
