package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drover-cd/drover/internal/proctest"
)

func TestPushStartsARunAndLogsAreStored(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), "")
	repo := gitRepo(t, `
steps:
  - {name: hello, run: 'echo "hello from $DROVER_BRANCH"; echo second line'}
  - name: build
    run: mkdir -p dist && echo binary > dist/app
    artifacts: [dist/]
`)
	git(t, repo, "push", "-q", s.pushURL("shop"), "main")
	run := s.waitRun("shop", 1, finished)
	if run.Status != "success" || run.Commit != git(t, repo, "rev-parse", "HEAD") || run.Branch != "main" || run.Trigger != "admin" {
		t.Fatalf("run: %+v", run)
	}
	if got := s.text("/api/v1/projects/shop/runs/1/steps/hello/log"); got != "hello from main\nsecond line\n" {
		t.Errorf("log %q", got)
	}
	metrics := s.text("/metrics")
	for _, want := range []string{`drover_runs{status="success"} 1`, "drover_queue_length 0", "drover_step_duration_seconds_count 2"} {
		if !strings.Contains(metrics, want+"\n") {
			t.Errorf("/metrics lacks %q:\n%s", want, metrics)
		}
	}
	if health := s.text("/healthz"); !strings.Contains(health, `"status": "ok"`) {
		t.Errorf("/healthz: %s", health)
	}
	// A second branch is a second run (multibranch), and clone works.
	git(t, repo, "checkout", "-q", "-b", "feature")
	git(t, repo, "commit", "-q", "--allow-empty", "-m", "feature work")
	git(t, repo, "push", "-q", s.pushURL("shop"), "feature")
	if run := s.waitRun("shop", 2, finished); run.Branch != "feature" || run.Status != "success" {
		t.Errorf("feature run: %+v", run)
	}
	clone := filepath.Join(t.TempDir(), "clone")
	git(t, t.TempDir(), "clone", "-q", s.pushURL("shop"), clone)
	if _, err := os.Stat(filepath.Join(clone, "drover.yml")); err != nil {
		t.Errorf("clone: %v", err)
	}
}

func TestAuthRoles(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), "")
	if code := s.api("GET", "/api/v1/projects", "-", nil, nil); code != http.StatusUnauthorized {
		t.Errorf("anonymous: %d, want 401", code)
	}
	if code := s.api("GET", "/api/v1/projects", "drover_wrong", nil, nil); code != http.StatusUnauthorized {
		t.Errorf("wrong token: %d, want 401", code)
	}
	var viewer struct{ Token string }
	if code := s.api("POST", "/api/v1/tokens", "", map[string]string{"role": "viewer"}, &viewer); code != http.StatusCreated {
		t.Fatalf("create token: %d", code)
	}
	if code := s.api("GET", "/api/v1/projects", viewer.Token, nil, nil); code != http.StatusOK {
		t.Errorf("viewer reads: %d", code)
	}
	if code := s.api("POST", "/api/v1/tokens", viewer.Token, map[string]string{"role": "admin"}, nil); code != http.StatusForbidden {
		t.Errorf("viewer creates a token: %d, want 403", code)
	}
	repo := gitRepo(t, "steps: [{name: a, run: 'true'}]\n")
	viewerURL := strings.Replace(s.URL, "http://", "http://v:"+viewer.Token+"@", 1) + "/git/x.git"
	cmd := []string{"push", "-q", viewerURL, "main"}
	if out, err := gitErr(repo, cmd...); err == nil || !strings.Contains(out, "403") {
		t.Errorf("a viewer pushed: %v %s", err, out)
	}
}

// With --public, anonymous users read, and git still gets the 401 challenge it needs to
// send the token of a push.
func TestPublicServerStillTakesPushes(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), "", "--public")
	if code := s.api("GET", "/api/v1/projects", "-", nil, nil); code != http.StatusOK {
		t.Errorf("anonymous read with --public: %d", code)
	}
	if code := s.api("POST", "/api/v1/tokens", "-", map[string]string{"role": "admin"}, nil); code != http.StatusUnauthorized {
		t.Errorf("anonymous write with --public: %d, want 401", code)
	}
	repo := gitRepo(t, "steps: [{name: a, run: 'true'}]\n")
	git(t, repo, "push", "-q", s.pushURL("pub"), "main")
	if run := s.waitRun("pub", 1, finished); run.Status != "success" {
		t.Errorf("run: %+v", run)
	}
}

func TestKillMidRunAndRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startServer(t, dir, "", "--workers", "1")
	marker := filepath.Join(t.TempDir(), "started")
	repo := gitRepo(t, fmt.Sprintf(`
steps:
  - name: long
    run: |
      echo acknowledged line
      touch %s
      sleep 60
`, marker))
	git(t, repo, "push", "-q", s.pushURL("app"), "main")
	waitForFile(t, marker)
	time.Sleep(2 * 50 * time.Millisecond)                                   // two log flush periods: the line is acknowledged
	shellPid, err := strconv.Atoi(onlyEntry(t, filepath.Join(dir, "pids"))) // the step's process group
	if err != nil {
		t.Fatal(err)
	}
	// A second run is queued behind the first (one worker).
	git(t, repo, "commit", "-q", "--allow-empty", "-m", "second")
	git(t, repo, "push", "-q", s.pushURL("app"), "main")
	s.waitRun("app", 2, func(r apiRun) bool { return r.Status == "pending" })
	s.stop(syscall.SIGKILL)

	os.Remove(marker)
	s.start("--workers", "1")
	if proctest.Alive(shellPid) {
		syscall.Kill(-shellPid, syscall.SIGKILL)
		t.Errorf("the step the killed server left running (group %d) still runs after the restart", shellPid)
	}
	// Nothing run 1 did reached outside its workspace: it is queued again and starts
	// over, ahead of run 2; its log keeps the first attempt's lines and says why.
	waitForFile(t, marker)
	first := s.waitRun("app", 1, func(r apiRun) bool { return r.Status == "running" })
	if got := s.text("/api/v1/projects/app/runs/1/steps/long/log"); !strings.Contains(got, "acknowledged line") ||
		!strings.Contains(got, "interrupted: the server stopped while this step ran; the run was queued again") {
		t.Errorf("the re-queued run's log: %q", got)
	}
	if second := s.waitRun("app", 2, func(apiRun) bool { return true }); second.Status != "pending" {
		t.Errorf("run 2 overtook the re-queued run 1: %+v %+v", first, second)
	}
	for n := 1; n <= 2; n++ {
		if code := s.api("POST", fmt.Sprintf("/api/v1/projects/app/runs/%d/cancel", n), "", nil, nil); code != http.StatusAccepted {
			t.Fatalf("cancel run %d: %d", n, code)
		}
		if run := s.waitRun("app", n, finished); run.Status != "cancelled" {
			t.Errorf("run %d: %+v", n, run)
		}
	}
}

// A run stopped while it deploys has reached outside its workspace: after the restart it
// ends in error saying what it had started and to re-run it, and its step says it was
// interrupted, not cancelled, on every view.
func TestStopMidDeployEndsTheRun(t *testing.T) {
	t.Parallel()
	bin, err := websvcBin()
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, t.TempDir(), "")
	// Its instances never become healthy: the deploy waits for them until the stop.
	repo := gitRepo(t, servicePipeline(bin, "app", "v1", "", "&& touch dist/unhealthy"))
	git(t, repo, "push", "-q", s.pushURL("app"), "main")
	s.waitRun("app", 1, func(r apiRun) bool { return len(r.Steps) == 2 && r.Steps[1].Status == "running" })
	time.Sleep(300 * time.Millisecond)
	s.stop(syscall.SIGTERM)
	s.start()
	run := s.waitRun("app", 1, finished)
	want := "interrupted: the server stopped while it ran, after its step staging had started deploying to staging; re-run it"
	if run.Status != "error" || !strings.Contains(run.Reason, want) {
		t.Errorf("run stopped mid-deploy: %+v", run)
	}
	if st := run.Steps[1]; st.Status != "error" || st.Reason != "interrupted: the server stopped while this step ran" {
		t.Errorf("its deploy step: %+v", st)
	}
}

func TestRerunFromAFailedStep(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), "")
	flag := filepath.Join(t.TempDir(), "fixed")
	// late does not depend on flaky, but is skipped in run 1 because flaky failed first:
	// the re-run must run it, not keep its skip.
	repo := gitRepo(t, fmt.Sprintf(`
steps:
  - {name: prepare, run: echo prepared; sleep 1}
  - {name: flaky, needs: [], run: test -f %s}
  - {name: after, needs: [flaky], run: echo after}
  - {name: late, needs: [prepare], run: echo late}
`, flag))
	git(t, repo, "push", "-q", s.pushURL("re"), "main")
	if run := s.waitRun("re", 1, finished); run.Status != "failure" {
		t.Fatalf("first run: %+v", run)
	}
	os.WriteFile(flag, nil, 0o644)
	if code := s.api("POST", "/api/v1/projects/re/runs/1/rerun", "", map[string]string{"from_step": "flaky"}, nil); code != http.StatusCreated {
		t.Fatalf("rerun: %d", code)
	}
	run := s.waitRun("re", 2, finished)
	if run.Status != "success" || run.Steps[0].Reason != "kept from run #1" {
		t.Errorf("rerun: %+v", run)
	}
	if got := s.text("/api/v1/projects/re/runs/2/steps/late/log"); got != "late\n" {
		t.Errorf("a step skipped in run 1 because of the failure was not run again: log %q", got)
	}
	if got := s.text("/api/v1/projects/re/runs/2/steps/prepare/log"); got != "" {
		t.Errorf("the kept step ran again: %q", got)
	}
}

func TestWebhookSignatures(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), "")
	upstream := gitRepo(t, "steps: [{name: a, run: echo from upstream}]\n")
	in := map[string]string{"name": "ext", "url": upstream, "webhook_secret": "s3cret", "poll_interval": "1h"}
	if code := s.api("POST", "/api/v1/projects", "", in, nil); code != http.StatusCreated {
		t.Fatalf("add project: %d", code)
	}
	s.waitRun("ext", 1, finished) // the first fetch runs the current head
	git(t, upstream, "commit", "-q", "--allow-empty", "-m", "new")
	body := `{"ref":"refs/heads/main","before":"0","after":"` + git(t, upstream, "rev-parse", "HEAD") + `","repository":{"clone_url":"x"}}`
	post := func(secret string) int {
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte(body))
		req, _ := http.NewRequest("POST", s.URL+"/hooks/ext", strings.NewReader(body))
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("wrong"); code != http.StatusUnauthorized {
		t.Errorf("bad signature: %d, want 401", code)
	}
	if code := post("s3cret"); code != http.StatusAccepted {
		t.Fatalf("good signature: %d, want 202", code)
	}
	if run := s.waitRun("ext", 2, finished); run.Status != "success" || run.Commit != git(t, upstream, "rev-parse", "HEAD") {
		t.Errorf("webhook run: %+v", run)
	}
	if !strings.Contains(s.log.String(), "bad signature") {
		t.Error("the refused webhook was not logged")
	}
}

func TestAutoCancelSupersedesOlderRunsOfTheBranch(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), "")
	started := filepath.Join(t.TempDir(), "started")
	repo := gitRepo(t, fmt.Sprintf(`
auto_cancel: true
steps:
  - {name: slow, run: "touch %s; sleep 30"}
`, started))
	git(t, repo, "push", "-q", s.pushURL("ac"), "main")
	waitForFile(t, started)
	git(t, repo, "commit", "-q", "--allow-empty", "-m", "newer")
	git(t, repo, "push", "-q", s.pushURL("ac"), "main")
	first := s.waitRun("ac", 1, finished)
	if first.Status != "cancelled" || first.Reason != "superseded by run #2" {
		t.Errorf("older run: %+v", first)
	}
	s.api("POST", "/api/v1/projects/ac/runs/2/cancel", "", nil, nil)
	if second := s.waitRun("ac", 2, finished); second.Status != "cancelled" || !strings.Contains(second.Reason, "cancelled by admin") {
		t.Errorf("newer run: %+v", second)
	}
}

// onlyEntry is the name of the single entry of dir.
func onlyEntry(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 {
		t.Fatalf("%s: %v, %d entries; want one", dir, err, len(entries))
	}
	return entries[0].Name()
}

func TestTokenAndProjectCommands(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), "")
	r := drover(t, t.TempDir(), "token", "create", "--server", s.URL, "--token", s.Token, "--role", "viewer", "--name", "dashboard")
	token := strings.TrimSpace(r.stdout)
	if r.code != 0 || !strings.HasPrefix(token, "drover_") {
		t.Fatalf("token create:\n%s", r)
	}
	if code := s.api("GET", "/api/v1/projects", token, nil, nil); code != http.StatusOK {
		t.Errorf("the new token reads: %d", code)
	}
	upstream := gitRepo(t, "steps: [{name: a, run: echo followed}]\n")
	r = drover(t, t.TempDir(), "project", "add", "ext", "--url", upstream, "--server", s.URL, "--token", s.Token)
	if r.code != 0 || !strings.Contains(r.stdout, "following") {
		t.Fatalf("project add:\n%s", r)
	}
	if run := s.waitRun("ext", 1, finished); run.Status != "success" {
		t.Errorf("the followed project's first run: %+v", run)
	}
	r = drover(t, t.TempDir(), "token", "create", "--server", s.URL, "--token", token, "--role", "admin")
	if r.code == 0 || !strings.Contains(r.stderr, "403") {
		t.Errorf("a viewer created a token:\n%s", r)
	}
}
