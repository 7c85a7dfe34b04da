package proctest

import (
	"os"
	"os/exec"
	"testing"
)

func TestRunningAndAlive(t *testing.T) {
	if !Running(os.Getpid()) || !Alive(os.Getpid()) {
		t.Fatal("this test's own process does not count as running")
	}
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	cmd.Process.Kill()
	// Killed but not yet reaped: a zombie, which does not run.
	if Alive(pid) {
		t.Errorf("pid %d killed with SIGKILL still counts as alive", pid)
	}
	cmd.Wait()
	if Running(pid) {
		t.Errorf("pid %d reaped still counts as running", pid)
	}
}
