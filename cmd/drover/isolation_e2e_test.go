package main

import (
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// reachableDir is a new data folder that step users can reach: t.TempDir's parent is
// 0700, which would keep them out (the server then runs steps as itself).
func reachableDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
		t.Fatal(err)
	}
	return dir
}

// processesOf lists the command lines of the live (not zombie) processes of uids.
func processesOf(uids ...int) []string {
	var out []string
	pids, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range pids {
		stat, err := os.ReadFile(p + "/stat")
		fi, err2 := os.Stat(p)
		if err != nil || err2 != nil {
			continue
		}
		// The state follows the command name in parentheses: "PID (comm) S ...".
		if i := strings.LastIndexByte(string(stat), ')'); i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' {
			continue
		}
		if slices.Contains(uids, int(fi.Sys().(*syscall.Stat_t).Uid)) {
			cmdline, _ := os.ReadFile(p + "/cmdline")
			out = append(out, strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
	return out
}

// probeInstance deploys websvc to staging as project svc and asks an instance what it
// can reach: it must not read the admin token nor write into its release.
func probeInstance(t *testing.T, s *testServer) (uid string) {
	t.Helper()
	bin, err := websvcBin()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(bin), 0o755); err != nil { // step users copy it
		t.Fatal(err)
	}
	repo := gitRepo(t, servicePipeline(bin, "svc", "v1", "", ""))
	git(t, repo, "push", "-q", s.pushURL("svc"), "main")
	if r := s.waitRun("svc", 1, finished); r.Status != "success" {
		t.Fatalf("svc run 1: %+v\n%s", r, s.log)
	}
	code, body, err := s.viaProxy("svc", "staging", "/probe?read="+filepath.Join(s.Data, "admin-token")+"&write=planted")
	if err != nil || code != 200 {
		t.Fatalf("probe the instance: %d %v %s", code, err, body)
	}
	if strings.Contains(body, ": <nil>") {
		t.Errorf("an instance reached what it must not:\n%s", body)
	}
	uid, _, _ = strings.Cut(strings.TrimPrefix(body, "uid="), "\n")
	return uid
}

// requireRoot skips where the test cannot switch users, except in CI, which runs as root.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("CI runs as root, and this test needs it: it runs steps as other users")
		}
		t.Skip("run as root: steps run as users of their own only when the server is root")
	}
}

// Issue 14's first finding: a step read the admin token and the database and could
// signal the server. Run as root, the server gives each worker a user of its own.
func TestStepsCannotTouchTheServerOrEachOther(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	s := startServer(t, reachableDir(t), "", "--workers", "2", "--step-uids", "20900-20901", "--service-uids", "21000-21099")
	// The first run waits, holding a file in its workspace, until the second has looked.
	slow := gitRepo(t, `
steps:
  - name: hold
    run: |
      echo secret > mine.txt
      setsid sleep 600 > /dev/null 2>&1 < /dev/null &
      echo planted > /tmp/drover-isolation-cache-$(id -u)
      case "$TMPDIR" in "$DROVER_WORKSPACE".tmp) ;; *) echo "TMPDIR=$TMPDIR is not the run's own"; exit 1;; esac
      for i in $(seq 300); do [ -f "$HOME/../../go-on" ] && break; sleep 0.1; done
`)
	git(t, slow, "push", "-q", s.pushURL("slow"), "main")
	s.waitRun("slow", 1, func(r apiRun) bool { return r.Status == "running" })

	probe := gitRepo(t, fmt.Sprintf(`
steps:
  - name: probe
    run: |
      data=$(dirname "$(dirname "$DROVER_WORKSPACE")")
      echo "uid=$(id -u)"
      test "$(id -u)" != 0
      for f in "$data/admin-token" "$data/drover.db" "$data/git/slow.git/config" "$(dirname "$DROVER_WORKSPACE")/1/mine.txt"; do
        if cat "$f" > /dev/null 2>&1; then echo "READ $f"; exit 1; fi
      done
      for d in "$data" "$data/logs" "$data/work" "$data/git" "$(dirname "$DROVER_WORKSPACE")/1"; do
        if ls "$d/" > /dev/null 2>&1; then echo "LISTED $d"; exit 1; fi
      done
      if kill -0 %d 2>/dev/null; then echo "SIGNALLED the server"; exit 1; fi
      git log --oneline -1
      touch "$HOME/cache-entry"
      case "$GOCACHE" in "$HOME"/*) ;; *) echo "GOCACHE=$GOCACHE is not in HOME=$HOME"; exit 1;; esac
      echo isolated
`, s.cmd.Process.Pid))
	git(t, probe, "push", "-q", s.pushURL("probe"), "main")
	run := s.waitRun("probe", 1, finished)
	log := s.text("/api/v1/projects/probe/runs/1/steps/probe/log")
	if run.Status != "success" || !strings.Contains(log, "isolated") || strings.Contains(log, "uid=0") {
		t.Errorf("the probe step: %s\n%s", run.Status, log)
	}

	// The first run goes on; what it started outside its step's process group dies with
	// the run, and its home is closed to every step user again.
	home := filepath.Join(s.Data, "home")
	if err := os.WriteFile(filepath.Join(home, "go-on"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := s.waitRun("slow", 1, finished); r.Status != "success" {
		t.Fatalf("the slow run: %+v", r)
	}
	if uid := probeInstance(t, s); uid == "0" {
		t.Error("a service instance runs as root")
	}
	for _, uid := range []string{"20900", "20901"} {
		if _, err := os.Stat("/tmp/drover-isolation-cache-" + uid); err == nil {
			t.Errorf("a file the slow run left in /tmp as uid %s outlived the run", uid)
		}
	}
	if left := processesOf(20900, 20901); len(left) > 0 {
		t.Errorf("processes of the step users outlived their runs: %q", left)
	}
	for _, p := range []string{"20900/slow", "20901/slow", "20900/probe", "20901/probe"} {
		fi, err := os.Stat(filepath.Join(home, p))
		if err != nil {
			continue // that slot did not run that project
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || fi.Mode().Perm() != 0o700 {
			t.Errorf("home %s after its run: uid %d, mode %v; want root's, 0700", p, st.Uid, fi.Mode().Perm())
		}
	}

	// A branch other than the default gets a home of its own: what main's run left in
	// its home is not there to read or poison.
	git(t, probe, "checkout", "-q", "-b", "feature")
	os.WriteFile(filepath.Join(probe, "drover.yml"), []byte(`
steps:
  - name: branch
    run: |
      case "$HOME" in */probe+branches) ;; *) echo "HOME=$HOME is main's"; exit 1;; esac
      if [ -e "$HOME/cache-entry" ]; then echo "main's cache entry is here"; exit 1; fi
      echo own home
`), 0o644)
	git(t, probe, "commit", "-q", "-am", "branch")
	git(t, probe, "push", "-q", s.pushURL("probe"), "feature")
	if r := s.waitRun("probe", 2, finished); r.Status != "success" {
		t.Errorf("the feature branch's run: %+v\n%s", r, s.text("/api/v1/projects/probe/runs/2/steps/branch/log"))
	}
}

// Issue 14's second finding: the database, its WAL and the logs were 0644, folders 0755.
// Whatever the umask, the data folder is 0711 and what is the server's alone is 0700 and
// 0600; an existing folder is tightened at start.
func TestDataFolderIsPrivate(t *testing.T) {
	t.Parallel()
	dir := reachableDir(t)
	os.MkdirAll(filepath.Join(dir, "logs", "old"), 0o755)
	os.WriteFile(filepath.Join(dir, "logs", "old", "1.log"), []byte("old log\n"), 0o644)
	os.Chmod(dir, 0o755)
	s := startServer(t, dir, "", "--step-uids", "20920-20929")
	if !strings.Contains(s.log.String(), "tightened the data folder") {
		t.Errorf("the server did not say it tightened an existing folder:\n%s", s.log)
	}
	repo := gitRepo(t, releasePipeline)
	git(t, repo, "push", "-q", s.pushURL("app"), "main")
	if run := s.waitRun("app", 1, finished); run.Status != "success" {
		t.Fatalf("run 1: %+v\n%s", run, s.log)
	}
	passages := map[string]bool{".": true, "work": true, "home": true, "deploy": true, "deploy/releases": true}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil // gone meanwhile
		}
		perm := fi.Mode().Perm()
		switch {
		case passages[rel]:
			if perm != 0o711 {
				t.Errorf("%s: %v, want 0711", rel, perm)
			}
		case strings.HasPrefix(rel, "work/") || strings.HasPrefix(rel, "home/") || strings.HasPrefix(rel, "deploy/releases/"):
			return fs.SkipDir // the steps' and instances' own
		case perm&0o077 != 0:
			t.Errorf("%s: %v; others may read or enter it", rel, perm)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"drover.db", "drover.db-wal", "admin-token"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want 0600", f, fi, err)
		}
	}
}

// A server that is not root confines its steps with Landlock: they run as the server's
// own user, so file modes do not keep them out of its data folder; the sandbox does.
func TestNonRootServerConfinesSteps(t *testing.T) {
	requireRoot(t) // to start the server as another user
	t.Parallel()
	const uid = 20990
	dir := reachableDir(t)
	if err := os.Chown(dir, uid, uid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(droverBin), 0o755); err != nil {
		t.Fatal(err)
	}
	s := &testServer{t: t, Data: dir, log: &syncBuffer{}, uid: uid}
	// In the docker group, as a server that runs container steps would be: the Docker
	// Engine's socket must still be out of the steps' reach (Landlock alone does not
	// confine connecting to it; found in review).
	if g, err := user.LookupGroup("docker"); err == nil {
		s.groups = append(s.groups, g.Gid)
	}
	s.start("--workers", "2")
	if !strings.Contains(s.log.String(), "steps run confined by Landlock") {
		t.Fatalf("the server does not say it confines steps:\n%s", s.log)
	}
	other := gitRepo(t, "steps: [{name: a, run: 'echo secret > mine.txt'}]\n")
	git(t, other, "push", "-q", s.pushURL("other"), "main")
	if r := s.waitRun("other", 1, finished); r.Status != "success" {
		t.Fatalf("run 1: %+v\n%s", r, s.log)
	}
	probe := gitRepo(t, fmt.Sprintf(`
steps:
  - name: probe
    run: |
      data=$(dirname "$(dirname "$DROVER_WORKSPACE")")
      test "$(id -u)" = %d
      for f in "$data/admin-token" "$data/drover.db" "$data/git/other.git/config"; do
        if cat "$f" > /dev/null 2>&1; then echo "READ $f"; exit 1; fi
      done
      for d in "$data" "$data/logs" "$data/home/other"; do
        if ls "$d/" > /dev/null 2>&1; then echo "LISTED $d"; exit 1; fi
      done
      if echo x > "$data/planted" 2>/dev/null; then echo "WROTE the data folder"; exit 1; fi
      if kill -0 %d 2>/dev/null; then echo "SIGNALLED the server"; exit 1; fi
      if [ -S /var/run/docker.sock ] && curl -s -m 5 --unix-socket /var/run/docker.sock http://docker/version > /dev/null; then
        echo "REACHED the Docker Engine"; exit 1
      fi
      git log --oneline -1
      touch "$HOME/cache-entry" "$TMPDIR/scratch"
      echo confined
`, uid, s.cmd.Process.Pid))
	git(t, probe, "push", "-q", s.pushURL("probe"), "main")
	run := s.waitRun("probe", 1, finished)
	if log := s.text("/api/v1/projects/probe/runs/1/steps/probe/log"); run.Status != "success" || !strings.Contains(log, "confined") {
		t.Errorf("the probe step: %s\n%s\nserver log:\n%s", run.Status, log, s.log)
	}
	if _, err := os.Stat(filepath.Join(dir, "planted")); err == nil {
		t.Error("a step wrote into the data folder")
	}
	probeInstance(t, s)
}

// A data folder the step users cannot reach (in /root, 0700; here a test's temporary
// folder) still gets steps users of their own: workspaces, homes and releases move to a
// folder of the server's in /var/tmp (found in review: steps ran as root there).
func TestStepsAreIsolatedWhenTheDataFolderIsClosed(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	s := startServer(t, t.TempDir(), "", "--workers", "2", "--step-uids", "20930-20931", "--service-uids", "21200-21299")
	m := regexp.MustCompile(`folder=(/var/tmp/drover-\S+)`).FindStringSubmatch(s.log.String())
	if m == nil {
		t.Fatalf("the server does not say where workspaces went:\n%s", s.log)
	}
	t.Cleanup(func() { os.RemoveAll(m[1]) })
	repo := gitRepo(t, `steps: [{name: probe, run: 'test "$(id -u)" != 0 && case "$DROVER_WORKSPACE" in /var/tmp/drover-*) echo isolated;; esac'}]`+"\n")
	git(t, repo, "push", "-q", s.pushURL("app"), "main")
	run := s.waitRun("app", 1, finished)
	if log := s.text("/api/v1/projects/app/runs/1/steps/probe/log"); run.Status != "success" || !strings.Contains(log, "isolated") {
		t.Errorf("the step: %s\n%s\nserver log:\n%s", run.Status, log, s.log)
	}
	if strings.Contains(s.log.String(), "not isolated") {
		t.Errorf("the server says steps are not isolated:\n%s", s.log)
	}
}
