package server

import (
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/drover-cd/drover/backend/process"
	"github.com/drover-cd/drover/internal/browsertest"
	"github.com/drover-cd/drover/notify"
	"github.com/drover-cd/drover/release"
	"github.com/drover-cd/drover/runner"
	"github.com/drover-cd/drover/source"
	"github.com/drover-cd/drover/steplog"
	"github.com/drover-cd/drover/store"
	"github.com/drover-cd/drover/store/sqlstore"
)

// webLiveServer is the whole server as drover server wires it: store, logs, artifacts,
// hosting, a started runner with the process backend, on 127.0.0.1.
type webLiveServer struct {
	st  store.Store
	url string
}

func startWebLiveServer(t *testing.T) *webLiveServer {
	t.Helper()
	dir := t.TempDir()
	ctx, stop := context.WithCancel(context.Background())
	st, err := sqlstore.Open(ctx, filepath.Join(dir, "drover.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	logs, err := steplog.New(filepath.Join(dir, "logs"))
	if err != nil {
		t.Fatal(err)
	}
	reg := newTestRegistry(t, dir)
	hub := &notify.Hub{}
	hosting := &source.Hosting{Root: filepath.Join(dir, "git")}
	run := runner.New(runner.Config{Store: st, Logs: logs, Hub: hub, Publisher: &release.Publisher{Registry: reg}, Repos: hosting.RepoPath,
		WorkDir: filepath.Join(dir, "work"), Backend: &process.Backend{Grace: time.Second}, Workers: 2})
	srv := New(Config{Store: st, Runner: run, Logs: logs, Hub: hub, Hosting: hosting, Started: time.Now(),
		Registry: reg, Releases: &release.Catalog{Registry: reg}})
	hosting.OnPush, hosting.AllowCreate = srv.OnPush, srv.AllowCreate
	if err := run.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(run.Wait)
	ts := httptest.NewUnstartedServer(srv)
	ts.Config.BaseContext = func(net.Listener) context.Context { return ctx } // stopping ends event streams
	ts.Start()
	t.Cleanup(ts.Close)
	t.Cleanup(stop)
	return &webLiveServer{st: st, url: ts.URL}
}

// webGitPush commits files to a new repository and pushes it to url's main.
func webGitPush(t *testing.T, url string, files map[string]string) {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "."},
		{"-c", "user.name=Dev", "-c", "user.email=dev@example.com", "commit", "-q", "-m", "Add the pipeline"},
		{"push", "-q", url, "main"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// webWaitFor polls cond until it holds or the timeout passes.
func webWaitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(timeout); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// webStepStatus is a step's status in the store, "" when it cannot be read.
func webStepStatus(st store.Store, project string, number int, step string) string {
	run, err := st.Run(context.Background(), project, number)
	if err != nil {
		return ""
	}
	steps, err := st.Steps(context.Background(), run.ID)
	if err != nil {
		return ""
	}
	for _, s := range steps {
		if s.Name == step {
			return s.Status
		}
	}
	return ""
}

// newWebBrowser starts headless Chromium, or skips the test without it.
func newWebBrowser(t *testing.T) context.Context { return browsertest.New(t) }

func browserShot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	browsertest.Shot(t, ctx, dir, name)
}

func browserUntil(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	browsertest.Until(t, ctx, what, expr)
}

func browserEval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	return browsertest.Eval[T](t, ctx, expr)
}

func browserDo(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	browsertest.Do(t, ctx, what, actions...)
}

// webArtifactsDir is where the test saves screenshots: $DROVER_TEST_ARTIFACTS or a temporary folder.
func webArtifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("DROVER_TEST_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// webPipelineYAML waits for release1 before the graph goes on, and for release2 in the
// middle of the log step's output.
func webPipelineYAML(release1, release2 string) string {
	return fmt.Sprintf(`steps:
  - name: lint
    needs: []
    run: echo lint is happy
  - name: wait
    needs: []
    run: |
      while [ ! -f '%s' ]; do sleep 0.05; done
      echo released
  - name: print
    needs: [lint, wait]
    run: |
      printf '\033[1;32mstarting\033[0m\n'
      for i in 1 2 3; do echo "early line $i"; done
      while [ ! -f '%s' ]; do sleep 0.05; done
      for i in $(seq 1 20); do echo "late line $i"; sleep 0.02; done
      printf '\033[31mdone\033[0m\n'
`, release1, release2)
}
