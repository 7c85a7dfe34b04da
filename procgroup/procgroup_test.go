package procgroup

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const marker = "DROVER_TEST_MARKER=/srv/a"

// startGroup starts `sleep 60` as the leader of a new process group with exactly env.
func startGroup(t *testing.T, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	cmd.Env = append([]string{}, env...) // never nil: nil would inherit ours
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

// alive reports whether pid exists and is not a zombie, giving a kill a second to land.
func alive(pid int) bool {
	for range 100 {
		if _, ok := groupOf(pid); !ok {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// running reports whether pid exists and is not a zombie, now.
func running(pid int) bool {
	_, ok := groupOf(pid)
	return ok
}

func records(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// A recorded group with the marker is killed and reported; recorded ids now used by
// processes without the marker (exactly) are left alone; the records are forgotten,
// except those skip keeps and files that are not records.
func TestKillLeftovers(t *testing.T) {
	r := &Registry{Dir: filepath.Join(t.TempDir(), "groups"), Match: EnvEntry(marker)}
	ours := startGroup(t, "A=1", marker, "B=2")
	strangers := []*exec.Cmd{
		startGroup(t),                     // no environment at all
		startGroup(t, "A=1"),              // no marker
		startGroup(t, marker+"/other"),    // the marker as a prefix only
		startGroup(t, "X"+marker),         // the marker inside another entry
		startGroup(t, "DROVER_TEST_MARK"), // a part of it
	}
	kept := startGroup(t, marker) // the caller's own, live group: skipped
	for i, cmd := range append([]*exec.Cmd{ours, kept}, strangers...) {
		if err := r.Record(cmd.Process.Pid, "group "+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(r.Dir, "notes"), nil, 0o644); err != nil {
		t.Fatal(err)
	}

	var skipped []int
	found, err := r.KillLeftovers(func(pgid int) bool {
		skipped = append(skipped, pgid)
		return pgid == kept.Process.Pid
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []Leftover{{PGID: ours.Process.Pid, Label: "group 0"}}
	if !slices.Equal(found, want) {
		t.Fatalf("KillLeftovers = %+v, want %+v", found, want)
	}
	if len(skipped) != 2+len(strangers) {
		t.Errorf("skip called for %v; want every record", skipped)
	}
	if err := ours.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("the marked group: %v, want it killed", err)
	}
	for _, cmd := range append(strangers, kept) { // the kill above has landed by now
		if !running(cmd.Process.Pid) {
			t.Errorf("process %d (env %q) was killed", cmd.Process.Pid, cmd.Env)
		}
	}
	if got, want := records(t, r.Dir), []string{strconv.Itoa(kept.Process.Pid), "notes"}; !slices.Equal(got, want) {
		t.Errorf("files left: %v, want %v", got, want)
	}

	// Forgotten: a second call finds nothing, even without skip.
	r.Forget(kept.Process.Pid)
	if found, err := r.KillLeftovers(nil); err != nil || found != nil {
		t.Errorf("KillLeftovers again: %+v, %v; want nothing", found, err)
	}
	if !running(kept.Process.Pid) {
		t.Error("a forgotten group was killed")
	}
}

// A group whose leader exited (a shell left a background child) is found through the
// child; every member of the group is killed.
func TestKillLeftoversFindsGroupsWhoseLeaderExited(t *testing.T) {
	dir := t.TempDir()
	r := &Registry{Dir: filepath.Join(dir, "groups"), Match: EnvPrefix("DROVER_TEST_WORK=/data/")}
	cmd := exec.Command("sh", "-c", "sleep 60 & echo $! > "+filepath.Join(dir, "child"))
	cmd.Env = []string{"DROVER_TEST_WORK=/data/9", "PATH=" + os.Getenv("PATH")}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Run(); err != nil { // the leader exits at once
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "child"))
	if err != nil {
		t.Fatal(err)
	}
	child, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	t.Cleanup(func() { _ = syscall.Kill(child, syscall.SIGKILL) })
	// The shell reports the child as soon as it forks; until the child has become
	// sleep, /proc may show it mid-exec, without its environment.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", child)); strings.TrimSpace(string(comm)) == "sleep" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the background child never became sleep")
		}
	}
	if err := r.Record(cmd.Process.Pid, ""); err != nil {
		t.Fatal(err)
	}

	found, err := r.KillLeftovers(nil)
	if err != nil || len(found) != 1 || found[0].PGID != cmd.Process.Pid || found[0].Err != nil {
		t.Fatalf("KillLeftovers: %+v, %v; want the orphaned group killed", found, err)
	}
	if alive(child) {
		t.Error("the child of an exited leader survived")
	}
	if got := records(t, r.Dir); len(got) != 0 {
		t.Errorf("records left: %v", got)
	}
}

// A record of a group that has no member any more is forgotten, not reported.
func TestKillLeftoversForgetsEndedGroups(t *testing.T) {
	r := &Registry{Dir: t.TempDir(), Match: EnvEntry(marker)}
	cmd := exec.Command("true")
	cmd.Env = []string{marker}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if err := r.Record(cmd.Process.Pid, "ended"); err != nil {
		t.Fatal(err)
	}
	if found, err := r.KillLeftovers(nil); err != nil || found != nil {
		t.Errorf("KillLeftovers: %+v, %v; want nothing found", found, err)
	}
	if got := records(t, r.Dir); len(got) != 0 {
		t.Errorf("records left: %v", got)
	}
}

func TestKillLeftoversWithoutRecords(t *testing.T) {
	match := func([]byte) bool { t.Error("Match called without records"); return false }
	for _, dir := range []string{filepath.Join(t.TempDir(), "missing"), t.TempDir()} {
		r := &Registry{Dir: dir, Match: match}
		if found, err := r.KillLeftovers(nil); found != nil || err != nil {
			t.Errorf("KillLeftovers in %s: %+v, %v", dir, found, err)
		}
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r := &Registry{Dir: file, Match: match}
	if _, err := r.KillLeftovers(nil); err == nil || errors.As(err, new(*ProcError)) {
		t.Errorf("KillLeftovers in a file: %v, want the folder's error", err)
	}
}

func TestRecordAndForget(t *testing.T) {
	r := &Registry{Dir: filepath.Join(t.TempDir(), "a", "b")}
	if err := r.Record(1234, "web-1"); err != nil {
		t.Fatal(err)
	}
	if err := r.Record(1235, ""); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{"1234": "web-1\n", "1235": ""} {
		if data, err := os.ReadFile(filepath.Join(r.Dir, file)); err != nil || string(data) != want {
			t.Errorf("record %s: %q, %v; want %q", file, data, err, want)
		}
	}
	r.Forget(1234)
	r.Forget(1234) // already gone
	if got := records(t, r.Dir); !slices.Equal(got, []string{"1235"}) {
		t.Errorf("records after Forget: %v", got)
	}

	blocked := &Registry{Dir: filepath.Join(r.Dir, "1235", "sub")} // under a file
	if err := blocked.Record(1, "x"); err == nil {
		t.Error("Record under a file succeeded")
	}
}

func TestMatch(t *testing.T) {
	env := func(entries ...string) []byte {
		var b bytes.Buffer
		for _, e := range entries {
			b.WriteString(e)
			b.WriteByte(0)
		}
		return b.Bytes()
	}
	for _, c := range []struct {
		match   func([]byte) bool
		environ []byte
		want    bool
	}{
		{EnvEntry("K=/a"), env("A=1", "K=/a", "B=2"), true},
		{EnvEntry("K=/a"), env("K=/a"), true},
		{EnvEntry("K=/a"), env("K=/a/b"), false},
		{EnvEntry("K=/a"), env("XK=/a"), false},
		{EnvEntry("K=/a"), env("K=/"), false},
		{EnvEntry("K=/a"), nil, false},
		{EnvPrefix("K=/a/"), env("A=1", "K=/a/7"), true},
		{EnvPrefix("K=/a/"), env("K=/a/"), true},
		{EnvPrefix("K=/a/"), env("K=/a"), false},
		{EnvPrefix("K=/a/"), env("XK=/a/7"), false},
		{EnvPrefix("K=/a/"), nil, false},
	} {
		if got := c.match(c.environ); got != c.want {
			t.Errorf("match(%q) = %v, want %v", c.environ, got, c.want)
		}
	}
}

func TestGroupOf(t *testing.T) {
	if pgid, ok := groupOf(os.Getpid()); !ok || pgid != syscall.Getpgrp() {
		t.Errorf("groupOf(self) = %d, %v; want %d", pgid, ok, syscall.Getpgrp())
	}
	if _, ok := groupOf(-1); ok {
		t.Error("groupOf(-1) found a process")
	}
}

func TestProcError(t *testing.T) {
	cause := &fs.PathError{Op: "open", Path: "/proc", Err: fs.ErrNotExist}
	var err error = &ProcError{Err: cause}
	if err.Error() != cause.Error() || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ProcError: %q, want %q wrapped", err, cause)
	}
}
