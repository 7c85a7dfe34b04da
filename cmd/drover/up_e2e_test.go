package main

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// A second drover up pushes a folder edited since the first as a new commit, and leaves
// an unedited one alone.
func TestUpPushesEditedFolders(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, "tiny")
	os.MkdirAll(dir, 0o755)
	write := func(v string) {
		os.WriteFile(filepath.Join(dir, "drover.yml"), []byte("steps:\n  - {name: hi, run: echo "+v+"}\n"), 0o644)
	}
	write("v1")
	args := []string{root, "--data", filepath.Join(t.TempDir(), "data"), "--listen", "127.0.0.1:0", "--proxy-listen", "127.0.0.1:0",
		"--step-uids", "off", "--service-uids", "off"}
	up := startUp(t, args...)
	up.until(regexp.MustCompile(`^tiny +#1 +hi +success`), time.Minute)
	up.until(regexp.MustCompile(`^The system is up`), time.Minute)
	up.stop()
	// Ctrl-C says what it does and when it is done.
	if out := up.out.String(); !strings.Contains(out, "Stopping: ") || !strings.Contains(out, "Stopped. drover up again picks up") {
		t.Errorf("drover up's Ctrl-C said nothing:\n%s", out)
	}

	write("v2")
	again := startUp(t, args...)
	again.until(regexp.MustCompile(`^tiny +pushed your changes in .* as a new commit`), time.Minute)
	again.until(regexp.MustCompile(`^tiny +#2 +hi +success`), time.Minute)
	again.until(regexp.MustCompile(`^The system is up`), time.Minute)
	again.stop()

	third := startUp(t, args...)
	third.until(regexp.MustCompile(`^The system is up`), time.Minute)
	third.stop()
	if out := third.out.String(); !strings.Contains(out, "tiny       already here: unchanged") || strings.Contains(out, "#3") {
		t.Errorf("an unedited folder was pushed again:\n%s", out)
	}
}

// A drover up whose server cannot start (its port is taken) leaves no data folder.
func TestUpThatCannotStartLeavesNoDataFolder(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	data := filepath.Join(t.TempDir(), "data")
	folder := filepath.Join(t.TempDir(), "tiny")
	os.MkdirAll(folder, 0o755)
	os.WriteFile(filepath.Join(folder, "drover.yml"), []byte("steps:\n  - {name: hi, run: echo hi}\n"), 0o644)
	res := drover(t, "", "up", folder, "--data", data, "--listen", ln.Addr().String(), "--step-uids", "off", "--service-uids", "off")
	if res.code == 0 || !strings.Contains(res.stderr, ln.Addr().String()) {
		t.Errorf("drover up on a taken port: %s", res)
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Errorf("the data folder is left behind (%v)", err)
	}
}

// After a restart, drover up lists every run still waiting for an approval, also one a
// newer, failed run of its project hides.
func TestUpListsEveryWaitingRun(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, "gated")
	os.MkdirAll(dir, 0o755)
	write := func(check string) {
		os.WriteFile(filepath.Join(dir, "drover.yml"), []byte("steps:\n  - {name: check, run: "+check+"}\n"+
			"  - {name: go-live, approval: {role: release-manager}}\n"), 0o644)
	}
	write("'true'")
	args := []string{root, "--data", filepath.Join(t.TempDir(), "data"), "--listen", "127.0.0.1:0", "--proxy-listen", "127.0.0.1:0",
		"--step-uids", "off", "--service-uids", "off"}
	up := startUp(t, args...)
	up.until(regexp.MustCompile(`^  drover approve gated 1`), time.Minute)
	up.stop()

	write("'false'")
	again := startUp(t, args...)
	again.until(regexp.MustCompile(`^gated +#2 +check +failure`), time.Minute)
	again.until(regexp.MustCompile(`^  drover approve gated 1`), time.Minute)
	again.stop()
}
