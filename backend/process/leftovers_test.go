package process

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
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
	if !alive(reused.Process.Pid) {
		t.Error("a group without the marker was killed")
	}
	if entries, _ := os.ReadDir(l.Dir); len(entries) != 0 {
		t.Errorf("%d records left; Kill forgets them all", len(entries))
	}
}
