package process

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/drover-cd/drover/internal/proctest"
)

// startGroup starts `sleep 60` as the leader of a new process group with env.
func startGroup(t *testing.T, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

func TestLeftoversKillsOnlyMarkedGroups(t *testing.T) {
	l := &Leftovers{Dir: filepath.Join(t.TempDir(), "pids"), Marker: "DROVER_WORKSPACE=/data/work/"}
	ours := startGroup(t, "DROVER_WORKSPACE=/data/work/7")
	reused := startGroup(t, "DROVER_WORKSPACE=/elsewhere/7") // a reused id: not ours
	l.add(ours.Process.Pid)
	l.add(reused.Process.Pid)
	n, err := l.Kill()
	if err != nil || n != 1 {
		t.Fatalf("Kill: %d, %v; want 1 group killed", n, err)
	}
	if err := ours.Wait(); err == nil {
		t.Error("the marked group was not killed")
	}
	if !proctest.Alive(reused.Process.Pid) {
		t.Error("a group without the marker was killed")
	}
	if entries, _ := os.ReadDir(l.Dir); len(entries) != 0 {
		t.Errorf("%d records left; Kill forgets them all", len(entries))
	}
}

// A group whose leader exited (the shell finished, a background child lives on) is still
// found through the child.
func TestLeftoversFindsGroupsWhoseLeaderExited(t *testing.T) {
	dir := t.TempDir()
	l := &Leftovers{Dir: filepath.Join(dir, "pids"), Marker: "DROVER_WORKSPACE=/data/work/"}
	cmd := exec.Command("sh", "-c", "sleep 60 & echo $! > "+filepath.Join(dir, "child"))
	cmd.Env = []string{"DROVER_WORKSPACE=/data/work/9", "PATH=" + os.Getenv("PATH")}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Run(); err != nil { // the leader exits at once
		t.Fatal(err)
	}
	l.add(cmd.Process.Pid)
	data, err := os.ReadFile(filepath.Join(dir, "child"))
	if err != nil {
		t.Fatal(err)
	}
	child, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	t.Cleanup(func() { _ = syscall.Kill(child, syscall.SIGKILL) })
	if n, err := l.Kill(); err != nil || n != 1 {
		t.Fatalf("Kill: %d, %v; want the orphaned group killed", n, err)
	}
	if proctest.Alive(child) {
		t.Error("the child of an exited leader survived")
	}
}
