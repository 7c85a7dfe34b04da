package process

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Leftovers records the process groups of running steps in a folder, one empty file per
// group named by its id, so that a server killed with SIGKILL can stop, when it starts
// again, the steps it left running (they are in groups of their own and outlive it).
type Leftovers struct {
	Dir string
	// Marker is a KEY=VALUE every step of this server has in its environment, e.g.
	// DROVER_WORKSPACE's prefix; a group is killed only if its leader still has it, so a
	// reused process id is never hit.
	Marker string
}

func (l *Leftovers) add(pgid int) {
	if l == nil {
		return
	}
	_ = os.MkdirAll(l.Dir, 0o755)
	if f, err := os.Create(filepath.Join(l.Dir, strconv.Itoa(pgid))); err == nil {
		f.Close()
	}
}

func (l *Leftovers) remove(pgid int) {
	if l != nil {
		_ = os.Remove(filepath.Join(l.Dir, strconv.Itoa(pgid)))
	}
}

// Kill stops every recorded group that still has a member carrying Marker, and forgets
// all records. It returns how many groups it killed. A group whose leader (the step's
// shell) already exited is still found through its other members.
func (l *Leftovers) Kill() (int, error) {
	entries, err := os.ReadDir(l.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", l.Dir, err)
	}
	recorded := map[int]bool{}
	for _, e := range entries {
		if pgid, err := strconv.Atoi(e.Name()); err == nil && pgid > 1 {
			recorded[pgid] = true
		}
		_ = os.Remove(filepath.Join(l.Dir, e.Name()))
	}
	if len(recorded) == 0 {
		return 0, nil
	}
	ours := l.groups(recorded)
	killed := 0
	for pgid := range ours {
		if syscall.Kill(-pgid, syscall.SIGKILL) == nil {
			killed++
		}
	}
	return killed, nil
}

// groups returns the recorded groups that have a live member with Marker, by scanning
// /proc: the process group is the fifth field of /proc/PID/stat.
func (l *Leftovers) groups(recorded map[int]bool) map[int]bool {
	found := map[int]bool{}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return found
	}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// The command name in parentheses may hold spaces: count fields after it.
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) < 3 || fields[0] == "Z" {
			continue
		}
		pgid, err := strconv.Atoi(fields[2])
		if err == nil && recorded[pgid] && !found[pgid] && l.ours(pid) {
			found[pgid] = true
		}
	}
	return found
}

// ours reports whether process pid has Marker in its environment.
func (l *Leftovers) ours(pid int) bool {
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return false
	}
	for _, kv := range bytes.Split(env, []byte{0}) {
		if bytes.HasPrefix(kv, []byte(l.Marker)) {
			return true
		}
	}
	return false
}
