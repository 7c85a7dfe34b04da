// Package sandbox keeps the steps Drover runs away from the server and from each other.
// Where the server runs as root, each worker slot runs its steps as an unprivileged
// user of its own, from a configured range of uids: the step cannot read the server's
// data folder (private to the server, see internal/datadir), another run's workspace or
// another project's home, and cannot signal the server or other runs' processes.
package sandbox

import (
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
)

// Range is a range of user ids, both ends included; a uid's group id is the same number.
type Range struct{ First, Last int }

// ParseRange reads "20000-20063".
func ParseRange(s string) (Range, error) {
	a, b, ok := strings.Cut(s, "-")
	first, err1 := strconv.Atoi(strings.TrimSpace(a))
	last, err2 := strconv.Atoi(strings.TrimSpace(b))
	switch {
	case !ok || err1 != nil || err2 != nil:
		return Range{}, fmt.Errorf("uid range %q: write FIRST-LAST, like 20000-20063", s)
	case first < 1000 || last < first || last > 1<<31-2:
		return Range{}, fmt.Errorf("uid range %q: use uids from 1000 up, FIRST no greater than LAST, that no account of this machine uses", s)
	}
	return Range{first, last}, nil
}

// Len is how many uids r holds.
func (r Range) Len() int { return r.Last - r.First + 1 }

func (r Range) String() string { return fmt.Sprintf("%d-%d", r.First, r.Last) }

// StepUsers gives each worker slot a user of its own. It needs root: it hands
// workspaces and homes over with chown and starts processes as other users.
type StepUsers struct {
	// UIDs are the slots' users: slot i runs as UIDs.First+i.
	UIDs Range
	// Home is the folder the users' homes go in, one per user and project:
	// Home/<uid>/<project>. It must be a passage of the data folder (0711).
	Home string
}

// Steps isolates a run's steps: StepUsers (root) or StepConfiner (Landlock).
type Steps interface {
	// SharedCheckout reports whether a run's checkout may borrow the server's
	// repository objects (git clone --shared) rather than copy them.
	SharedCheckout() bool
	// Lease isolates the steps of a run of project, checked out in workspace from the
	// bare repository repo, on worker slot (from 0). end undoes it once the run's steps
	// are over: it stops whatever they left running.
	Lease(slot int, project, workspace, repo string) (l *Lease, end func(), err error)
}

var (
	_ Steps = (*StepUsers)(nil)
	_ Steps = (*StepConfiner)(nil)
)

// Lease is what a run's steps get.
type Lease struct {
	UID, GID int // who they run as; 0 for the server's user
	// Launcher starts their shells confined (StepConfiner); nil for none.
	Launcher []string
	// Env points HOME, GOCACHE, GOMODCACHE and GOPATH into a home for the project, so
	// that no project can poison another's build cache.
	Env []string
}

// homeEnv is the environment of a step whose home is home.
func homeEnv(home string) []string {
	return []string{
		"HOME=" + home,
		"GOPATH=" + filepath.Join(home, "go"),
		"GOCACHE=" + filepath.Join(home, ".cache", "go-build"),
		"GOMODCACHE=" + filepath.Join(home, "go", "pkg", "mod"),
	}
}

// SharedCheckout is false: a step user cannot read the server's repositories.
func (s *StepUsers) SharedCheckout() bool { return false }

// Lease hands slot's user the workspace (every entry in it becomes theirs) and its
// home for project, which only that user, and only during this run, can enter. end
// takes the home back and stops every process the user left running (one that escaped
// its step's process group); call it once the run's steps are over.
func (s *StepUsers) Lease(slot int, project, workspace, _ string) (l *Lease, end func(), err error) {
	if slot < 0 || slot >= s.UIDs.Len() {
		return nil, nil, fmt.Errorf("worker slot %d has no uid in %s", slot, s.UIDs)
	}
	if err := homeName(project); err != nil {
		return nil, nil, err
	}
	uid := s.UIDs.First + slot
	if err := chownTree(workspace, uid, uid); err != nil {
		return nil, nil, fmt.Errorf("hand the workspace to uid %d: %w", uid, err)
	}
	userDir := filepath.Join(s.Home, strconv.Itoa(uid))
	if err := os.MkdirAll(userDir, 0o711); err != nil {
		return nil, nil, err
	}
	if err := os.Chmod(userDir, 0o711); err != nil {
		return nil, nil, err
	}
	home := filepath.Join(userDir, project)
	if err := os.Mkdir(home, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, nil, err
	}
	// Only the top folder changes hands: what is inside stays the user's between runs,
	// and while the folder is root's (between runs of the project) no user can enter.
	if err := os.Lchown(home, uid, uid); err != nil {
		return nil, nil, err
	}
	if err := os.Chmod(home, 0o700); err != nil {
		return nil, nil, err
	}
	// A temporary folder of the run's own: /tmp is shared by every project the slot runs.
	tmp := workspace + ".tmp"
	if err := os.Mkdir(tmp, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, nil, err
	}
	if err := os.Lchown(tmp, uid, uid); err != nil {
		return nil, nil, err
	}
	end = func() {
		KillAll(uid)
		_ = os.Lchown(home, 0, 0)
		_ = os.RemoveAll(tmp)
		// What the run left in the shared temporary folders would meet the slot's next
		// project (a cache keyed by uid in /tmp).
		for _, shared := range slices.Compact([]string{filepath.Clean(os.TempDir()), "/tmp", "/var/tmp", "/dev/shm"}) {
			removeOwned(shared, uid)
		}
	}
	env := append(homeEnv(home), "USER=drover-"+strconv.Itoa(uid), "TMPDIR="+tmp)
	return &Lease{UID: uid, GID: uid, Env: env}, end, nil
}

// homeName says why project cannot name a home folder, or returns nil.
func homeName(project string) error {
	if project == "" || strings.ContainsAny(project, `/\`) || strings.HasPrefix(project, ".") {
		return fmt.Errorf("project %q cannot name a home folder", project)
	}
	return nil
}

// removeOwned removes what uid owns under dir, looking into the folders anyone may
// write in (where uid can have put something); it never follows a symbolic link.
func removeOwned(dir string, uid int) {
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		switch {
		case !ok:
			return nil
		case int(st.Uid) == uid && path != dir:
			_ = os.RemoveAll(path)
			if d.IsDir() {
				return fs.SkipDir
			}
		case d.IsDir() && path != dir && info.Mode().Perm()&0o002 == 0:
			return fs.SkipDir // uid cannot have written in there
		}
		return nil
	})
}

// chownTree makes every entry under dir (dir too) owned by uid:gid, never following a
// symbolic link.
func chownTree(dir string, uid, gid int) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid)
	})
}

// KillAll sends SIGKILL to every process of uid, from a shell running as uid: kill -1
// reaches every process the sender may signal, which for an unprivileged user is its own.
func KillAll(uid int) {
	cmd := exec.Command("/bin/sh", "-c", "kill -9 -1 2>/dev/null; exit 0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid), Groups: []uint32{}}}
	_ = cmd.Run()
}

// Unreachable returns the first folder on the way to dir (dir included) that other
// users may not enter, or "" when they all may: step and instance users reach their
// workspaces and releases only through folders with the execute bit for others.
func Unreachable(dir string) string {
	for p := filepath.Clean(dir); ; p = filepath.Dir(p) {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm()&0o001 == 0 {
			return p
		}
		if p == filepath.Dir(p) {
			return ""
		}
	}
}
