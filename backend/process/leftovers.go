package process

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
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

// Kill stops every recorded group whose leader still carries Marker and forgets all
// records. It returns how many groups it killed.
func (l *Leftovers) Kill() (int, error) {
	entries, err := os.ReadDir(l.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", l.Dir, err)
	}
	killed := 0
	for _, e := range entries {
		pgid, err := strconv.Atoi(e.Name())
		if err == nil && pgid > 1 && l.ours(pgid) && syscall.Kill(-pgid, syscall.SIGKILL) == nil {
			killed++
		}
		_ = os.Remove(filepath.Join(l.Dir, e.Name()))
	}
	return killed, nil
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
