package runner_test

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-cd/drover/engine"
	"github.com/drover-cd/drover/internal/pgtest"
	"github.com/drover-cd/drover/runner"
	"github.com/drover-cd/drover/steplog"
	"github.com/drover-cd/drover/store"
	"github.com/drover-cd/drover/store/sqlstore"
)

// countingBackend runs nothing: it counts the steps each run executed, by the run's
// number, and takes a moment over each so that the runners overlap.
type countingBackend struct {
	mu   sync.Mutex
	runs map[string]int
}

func (b *countingBackend) Exec(ctx context.Context, spec *engine.Spec, out io.Writer) (int, error) {
	for _, kv := range spec.Env {
		if n, ok := strings.CutPrefix(kv, "DROVER_RUN="); ok {
			b.mu.Lock()
			b.runs[n]++
			b.mu.Unlock()
		}
	}
	time.Sleep(5 * time.Millisecond)
	return 0, nil
}

// Two servers' runners on one PostgreSQL take runs from one queue: each run is
// dispatched once, by one of them.
func TestTwoRunnersOnOnePostgreSQLDispatchEachRunOnce(t *testing.T) {
	dsn, _ := pgtest.Schema(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	st, err := sqlstore.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	repo := bareRepo(t, "steps:\n  - {name: only, run: echo hi}\n")
	if err := st.CreateProject(ctx, &store.Project{Name: "p"}); err != nil {
		t.Fatal(err)
	}
	backend := &countingBackend{runs: map[string]int{}}
	var runners []*runner.Runner
	for i := range 2 {
		logs, err := steplog.New(filepath.Join(t.TempDir(), "logs"))
		if err != nil {
			t.Fatal(err)
		}
		// Each opens the database itself, as a second server would.
		own, err := sqlstore.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer own.Close()
		r := runner.New(runner.Config{Store: own, Logs: logs, Repos: func(string) string { return repo },
			WorkDir: filepath.Join(t.TempDir(), "work"), Backend: backend, Workers: 3 + i})
		runners = append(runners, r)
	}
	const n = 40
	for i := range n {
		// Queued through either runner, before and while both run.
		if i == n/2 {
			for _, r := range runners {
				if err := r.Start(ctx); err != nil {
					t.Fatal(err)
				}
			}
		}
		if _, err := runners[i%2].Enqueue(ctx, runner.Request{Project: "p", Branch: "main", Event: "push", Trigger: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	// A runner only looks at the queue when woken: the other server's runs wake it by
	// its own poll, which this test leaves out. Each Enqueue woke its own runner.
	deadline := time.Now().Add(60 * time.Second)
	for {
		runs, err := st.Runs(ctx, store.RunFilter{Project: "p", Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		done := 0
		for _, r := range runs {
			if r.Status == "success" {
				done++
			}
		}
		if done == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d runs passed after 60s", done, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	for _, r := range runners {
		r.Wait()
	}
	backend.mu.Lock()
	defer backend.mu.Unlock()
	if len(backend.runs) != n {
		t.Errorf("%d runs executed, want %d", len(backend.runs), n)
	}
	for run, times := range backend.runs {
		if times != 1 {
			t.Errorf("run %s executed %d times", run, times)
		}
	}
}

// bareRepo makes a bare repository whose main branch holds drover.yml.
func bareRepo(t *testing.T, yml string) string {
	t.Helper()
	work, bare := t.TempDir(), filepath.Join(t.TempDir(), "p.git")
	if err := os.WriteFile(filepath.Join(work, "drover.yml"), []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"init", "-q", "-b", "main", work},
		{"-C", work, "add", "."},
		{"-C", work, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "pipeline"},
		{"clone", "-q", "--bare", work, bare},
	} {
		if out, err := exec.Command("git", args...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	return bare
}
