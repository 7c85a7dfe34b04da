package process

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drover-cd/drover/engine"
	"github.com/drover-cd/drover/internal/proctest"
	"github.com/drover-cd/drover/pipeline"
)

func spec(t *testing.T, script string) *engine.Spec {
	return &engine.Spec{Name: "t", Step: &pipeline.Step{Name: "t"}, Script: script, Dir: t.TempDir(),
		Env: []string{"PATH=" + os.Getenv("PATH"), "GREETING=hi"}, Attempt: 1}
}

func TestOutputExitCodeEnvAndDir(t *testing.T) {
	var out bytes.Buffer
	s := spec(t, `echo "$GREETING"; echo to-stderr >&2; pwd; exit 4`)
	code, err := (&Backend{}).Exec(context.Background(), s, &out)
	if err != nil || code != 4 {
		t.Fatalf("code %d err %v; want 4, nil", code, err)
	}
	want := "hi\nto-stderr\n" + s.Dir + "\n"
	if got := out.String(); got != want {
		t.Errorf("output %q, want %q", got, want)
	}
}

func TestScriptsRunWithErrexit(t *testing.T) {
	var out bytes.Buffer
	code, err := (&Backend{}).Exec(context.Background(), spec(t, "false\necho not reached"), &out)
	if err != nil || code != 1 || out.Len() != 0 {
		t.Fatalf("code %d err %v output %q: sh -e must stop at the first failing command", code, err, out.String())
	}
}

// A child that ignores SIGTERM must still be gone when Exec returns after a cancel.
func TestCancelKillsTheWholeGroupEvenWhenTERMIsIgnored(t *testing.T) {
	s := spec(t, `trap '' TERM; sh -c 'trap "" TERM; echo $$ > child.pid; sleep 60' & echo $$ > shell.pid; wait`)
	ctx, cancel := context.WithCancelCause(context.Background())
	go func() {
		for !fileExists(filepath.Join(s.Dir, "child.pid")) {
			time.Sleep(5 * time.Millisecond)
		}
		cancel(errors.New("stop"))
	}()
	start := time.Now()
	_, err := (&Backend{Grace: 200 * time.Millisecond}).Exec(ctx, s, &bytes.Buffer{})
	if err == nil || err.Error() != "stop" {
		t.Fatalf("err %v, want the cancel cause", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Exec took %s to stop", d)
	}
	for _, f := range []string{"child.pid", "shell.pid"} {
		pid := readPid(t, filepath.Join(s.Dir, f))
		if proctest.Alive(pid) {
			t.Errorf("%s %d is still alive after Exec returned", f, pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func TestBackgroundProcessesDieWithTheStep(t *testing.T) {
	s := spec(t, `sleep 60 & echo $! > bg.pid; echo done`)
	var out bytes.Buffer
	start := time.Now()
	code, err := (&Backend{}).Exec(context.Background(), s, &out)
	if err != nil || code != 0 || out.String() != "done\n" {
		t.Fatalf("code %d err %v out %q", code, err, out.String())
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Exec waited %s for a background process holding the output", d)
	}
	if pid := readPid(t, filepath.Join(s.Dir, "bg.pid")); proctest.Alive(pid) {
		t.Errorf("background process %d outlived its step", pid)
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

func TestKilledBySignalReportsShellStyleCode(t *testing.T) {
	code, err := (&Backend{}).Exec(context.Background(), spec(t, `kill -9 $$`), &bytes.Buffer{})
	if err != nil || code != 137 {
		t.Fatalf("code %d err %v, want 137", code, err)
	}
}

func TestMissingShellIsAnError(t *testing.T) {
	_, err := (&Backend{Shell: "/nonexistent/sh"}).Exec(context.Background(), spec(t, "true"), &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/sh") {
		t.Fatalf("err %v", err)
	}
}

func TestSupportsRefusesContainerSteps(t *testing.T) {
	b := &Backend{}
	if err := b.Supports(&pipeline.Step{Image: "golang"}); err == nil || !strings.Contains(err.Error(), "Docker") {
		t.Errorf("image step: %v", err)
	}
	if err := b.Supports(&pipeline.Step{Run: "x"}); err != nil {
		t.Errorf("plain step: %v", err)
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func readPid(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}
