package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestApprovalGates(t *testing.T) {
	bin, err := websvcBin()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := startServer(t, dir, "")
	pipeline := func(version, timeout string) string {
		return fmt.Sprintf(`
service:
  name: shop
  command: ./dist/websvc
  health: {path: /healthz, interval: 100ms}
steps:
  - name: build
    run: mkdir -p dist && cp %s dist/websvc && echo %s > dist/version
    artifacts: [dist]
  - name: go-live
    approval: {role: release-manager%s}
  - name: production
    deploy: production
`, bin, version, timeout)
	}
	client, mint := s.as, s.mint
	dev := mint("--role", "developer", "--name", "dev")
	rm := mint("--role", "developer", "--name", "rita", "--approves", "release-manager")

	repo := gitRepo(t, pipeline("v1", ""))
	git(t, repo, "push", "-q", s.pushURL("shop"), "main")
	run := s.waitRun("shop", 1, func(r apiRun) bool { return r.Status == "waiting" })
	if !strings.Contains(run.Reason, "go-live") || !strings.Contains(run.Reason, "release-manager") || run.Steps[2].Status != "pending" {
		t.Errorf("waiting run: %+v", run)
	}
	if page := s.text("/p/shop/runs/1"); !strings.Contains(page, "Waiting for approval: go-live") {
		t.Errorf("the run page does not say it waits")
	}
	if page := s.text("/pipeline"); !strings.Contains(page, `data-waiting="1"`) || !strings.Contains(page, `value="approve"`) {
		t.Errorf("the pipeline overview does not offer the waiting approval:\n%s", page)
	}
	// Without the role: refused, and the run still waits.
	if res := client(dev, "approve", "shop", "1"); res.code == 0 || !strings.Contains(res.stderr, "release-manager approval role") {
		t.Errorf("approval by a developer without the role: %s", res)
	}
	if res := client(rm, "approve", "shop", "1", "-m", "checked staging"); res.code != 0 {
		t.Fatalf("approve: %s", res)
	}
	run = s.waitRun("shop", 1, finished)
	if run.Status != "success" || !strings.Contains(run.Steps[1].Reason, "approved by rita: checked staging") {
		t.Errorf("approved run: %+v", run)
	}
	s.waitBody("shop", "production", "v1 production")
	// Run 1, deployed mid-run, reads as #1 and, now it passed, release r1.
	page := s.text("/pipeline")
	if !strings.Contains(page, `<a href="/env/production">production</a>`) || !strings.Contains(page, `#1</a> <code>r1</code>`) {
		t.Errorf("the pipeline overview does not show production's release:\n%s", page)
	}

	// A waiting run survives a restart; a rejection fails it and nothing is deployed.
	s.commitPipeline(repo, "shop", pipeline("v2", ""))
	s.waitRun("shop", 2, func(r apiRun) bool { return r.Status == "waiting" })
	s.stop(syscall.SIGKILL)
	s.start()
	if run := s.waitRun("shop", 2, func(apiRun) bool { return true }); run.Status != "waiting" {
		t.Fatalf("after a restart: %+v", run)
	}
	if res := client(rm, "approve", "shop", "2", "--reject", "-m", "not on a Friday"); res.code != 0 {
		t.Fatalf("reject: %s", res)
	}
	run = s.waitRun("shop", 2, finished)
	if run.Status != "failure" || !strings.Contains(run.Reason, "rejected by rita: not on a Friday") || run.Steps[2].Status != "skipped" {
		t.Errorf("rejected run: %+v", run)
	}
	s.waitBody("shop", "production", "v1 production")

	// Nobody decides before the timeout: rejected by drover.
	s.commitPipeline(repo, "shop", pipeline("v3", ", timeout: 1s"))
	run = s.waitRun("shop", 3, func(r apiRun) bool { return finished(r) && r.Status != "waiting" })
	if run.Status != "failure" || !strings.Contains(run.Reason, "rejected by drover") {
		t.Errorf("timed-out run: %+v", run)
	}

	// separation: true: whoever pushed the change does not approve it.
	envFile := filepath.Join(t.TempDir(), "environments.yml")
	os.WriteFile(envFile, []byte("environments:\n  production: { separation: true }\n"), 0o644)
	if res := client(s.Token, "env", "apply", envFile); res.code != 0 {
		t.Fatalf("env apply: %s", res)
	}
	os.WriteFile(filepath.Join(repo, "drover.yml"), []byte(pipeline("v4", "")), 0o644)
	git(t, repo, "commit", "-q", "-am", "v4")
	git(t, repo, "push", "-q", strings.Replace(s.URL, "http://", "http://rita:"+rm+"@", 1)+"/git/shop.git", "main")
	s.waitRun("shop", 4, func(r apiRun) bool { return r.Status == "waiting" })
	if res := client(rm, "approve", "shop", "4"); res.code == 0 || !strings.Contains(res.stderr, "rita pushed this change") {
		t.Errorf("the pusher approving her own change: %s", res)
	}
	if res := client(s.Token, "approve", "shop", "4", "-m", "second pair of eyes"); res.code != 0 {
		t.Fatalf("approval by someone else: %s", res)
	}
	s.waitBody("shop", "production", "v4 production")
	// Nor does she deploy it there around the gate. (Once run 4 has ended: its release
	// tag r4, the newest release deploy takes, comes after its production step.)
	if run := s.waitEnded("shop", 4, time.Minute); run.Status != "success" {
		t.Fatalf("run 4: %+v", run)
	}
	if res := client(rm, "deploy", "shop", "--env", "production"); res.code == 0 || !strings.Contains(res.stderr, "rita pushed this change") {
		t.Errorf("the pusher deploying her own change to a separated environment: %s", res)
	}

	audit := client(s.Token, "audit")
	for _, want := range []string{"rita         approve", "rita         reject", "checked staging", "not on a Friday"} {
		if !strings.Contains(audit.stdout, want) {
			t.Errorf("audit log lacks %q:\n%s", want, audit.stdout)
		}
	}
}
