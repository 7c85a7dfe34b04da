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

// The records follow backend/process.Leftovers (one file per process group, named by
// its id, and a marker in the environment), which is not reused as is: its records are
// written by unexported methods, it matches the marker as a prefix, and importing it
// would tie the deploy runtime to the CI engine.

// marker is the environment entry every instance of r carries when Leftovers is set.
func (r *Runtime) marker() string {
	dir, err := filepath.Abs(r.Leftovers)
	if err != nil {
		dir = r.Leftovers
	}
	return MarkerEnv + "=" + dir
}

// track remembers a started group, on disk when Leftovers is set. The group joins the
// running set before its record is written, so KillLeftovers never sees a record of
// a live instance of r without seeing it running.
func (r *Runtime) track(pgid int, name string) error {
	r.mu.Lock()
	if r.running == nil {
		r.running = map[int]bool{}
	}
	r.running[pgid] = true
	r.mu.Unlock()
	if r.Leftovers == "" {
		return nil
	}
	err := os.MkdirAll(r.Leftovers, 0o755)
	if err == nil {
		// The content is the instance's name, for KillLeftovers' log only.
		err = os.WriteFile(filepath.Join(r.Leftovers, strconv.Itoa(pgid)), []byte(name+"\n"), 0o644)
	}
	if err != nil {
		r.untrack(pgid)
		return fmt.Errorf("record the process group for leftovers: %w", err)
	}
	return nil
}

// untrack forgets an ended group: the record goes first, then the running entry (the
// reverse of track).
func (r *Runtime) untrack(pgid int) {
	if r.Leftovers != "" {
		_ = os.Remove(filepath.Join(r.Leftovers, strconv.Itoa(pgid)))
	}
	r.mu.Lock()
	delete(r.running, pgid)
	r.mu.Unlock()
}

// KillLeftovers kills, with SIGKILL, every recorded process group that is not an
// instance of r and still has a live member whose environment holds r's marker
// (MarkerEnv=Leftovers), and forgets those records. It returns how many groups it
// killed. Call it when the server starts, before deploying: instances left running by
// a server that crashed are found even when their leader exited and only children
// remain, and a process id reused by an unrelated process (without the marker) is never
// hit. A process that left its group (setsid) is not found. With Leftovers unset it
// does nothing.
func (r *Runtime) KillLeftovers() (int, error) {
	if r.Leftovers == "" {
		return 0, nil
	}
	entries, err := os.ReadDir(r.Leftovers)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("leftovers: %w", err)
	}
	r.mu.Lock()
	recorded := map[int]string{} // pgid → record file
	for _, e := range entries {
		pgid, err := strconv.Atoi(e.Name())
		if err != nil || pgid <= 1 || r.running[pgid] {
			continue
		}
		recorded[pgid] = filepath.Join(r.Leftovers, e.Name())
	}
	r.mu.Unlock()
	if len(recorded) == 0 {
		return 0, nil
	}
	live, err := markedGroups(recorded, []byte(r.marker()))
	if err != nil {
		return 0, fmt.Errorf("leftovers: %w", err)
	}
	killed := 0
	for pgid, file := range recorded {
		if live[pgid] {
			if err := syscall.Kill(-pgid, syscall.SIGKILL); err == nil {
				killed++
				name, _ := os.ReadFile(file)
				r.logger().Info("killed an instance a previous server left running",
					"instance", strings.TrimSpace(string(name)), "pgid", pgid)
			} else if !errors.Is(err, syscall.ESRCH) {
				r.logger().Warn("kill a leftover instance", "pgid", pgid, "err", err)
			}
		}
		_ = os.Remove(file)
	}
	return killed, nil
}

// markedGroups returns which of the recorded groups have a live (not zombie) member
// with marker as an entry of its environment, by scanning /proc: the process group is
// the fifth field of /proc/PID/stat.
func markedGroups(recorded map[int]string, marker []byte) (map[int]bool, error) {
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	found := map[int]bool{}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue // gone meanwhile
		}
		// The command name in parentheses may hold spaces: count fields after it.
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) < 3 || fields[0] == "Z" {
			continue
		}
		pgid, err := strconv.Atoi(fields[2])
		if err != nil || found[pgid] {
			continue
		}
		if _, ok := recorded[pgid]; ok && hasEnv(pid, marker) {
			found[pgid] = true
		}
	}
	return found, nil
}

// hasEnv reports whether process pid has entry (KEY=VALUE, exactly) in its environment.
// Another user's process cannot be read, and is not ours.
func hasEnv(pid int, entry []byte) bool {
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return false
	}
	for kv := range bytes.SplitSeq(env, []byte{0}) {
		if bytes.Equal(kv, entry) {
			return true
		}
	}
	return false
}
