// Package procgroup records the process groups a server starts, one file per group in a
// folder, so that the server, restarted after a crash, can kill the groups the crashed
// one left running: groups of their own outlive the process that started them.
//
// A record names a process group id, and ids are reused: a group is killed only if one
// of its live members has, in its environment, a marker the server gives everything it
// starts (Registry.Match). Members are found by scanning /proc, so a group whose leader
// exited is still found through its other members, but a process that left its group
// (setsid) is not. Without /proc (systems other than Linux) nothing can be found.
package procgroup

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

// Registry is a folder of records, one file per process group, named by the group's id
// and holding a label. The zero value is not usable: set Dir, and Match before calling
// KillLeftovers. Two servers must not share a Dir.
type Registry struct {
	// Dir is the folder of the records, created by Record.
	Dir string
	// Match reports whether a process's environment (the content of /proc/PID/environ:
	// KEY=VALUE entries, each followed by a NUL byte) carries the marker, e.g.
	// EnvEntry or EnvPrefix.
	Match func(environ []byte) bool
}

// Leftover is a recorded group that KillLeftovers found running.
type Leftover struct {
	PGID  int
	Label string // as given to Record; "" if it could not be read
	Err   error  // from kill(2): nil when the group was sent SIGKILL
}

// ProcError is the error KillLeftovers returns when /proc cannot be read (it is missing
// on systems other than Linux); the records are then kept. Its message is the cause's.
type ProcError struct{ Err error }

func (e *ProcError) Error() string { return e.Err.Error() }
func (e *ProcError) Unwrap() error { return e.Err }

// Record writes the record of group pgid, creating Dir if needed. label (e.g. what runs
// in the group) comes back in the Leftover that KillLeftovers reports; "" leaves the
// record empty.
func (r *Registry) Record(pgid int, label string) error {
	if err := os.MkdirAll(r.Dir, 0o700); err != nil {
		return err
	}
	var content []byte
	if label != "" {
		content = []byte(label + "\n")
	}
	return os.WriteFile(r.file(pgid), content, 0o600)
}

// Forget removes the record of group pgid, if any: the group ended.
func (r *Registry) Forget(pgid int) {
	_ = os.Remove(r.file(pgid))
}

func (r *Registry) file(pgid int) string {
	return filepath.Join(r.Dir, strconv.Itoa(pgid))
}

// KillLeftovers sends SIGKILL to every recorded group that has a live (not zombie)
// member whose environment Match accepts, and forgets the records. It reports the groups
// it found, each with the result of its kill; a group found without members, or only
// with members Match refuses (its id was reused), is forgotten and not reported.
//
// skip, when not nil, is called for each record after Dir was read: the records of the
// groups it accepts (e.g. the caller's own live groups) are left alone. So are files in
// Dir that are not records (a name that is not a group id above 1). A missing Dir is no
// records. When /proc cannot be read it returns a *ProcError and keeps the records.
func (r *Registry) KillLeftovers(skip func(pgid int) bool) ([]Leftover, error) {
	entries, err := os.ReadDir(r.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	recorded := map[int]string{} // pgid → record file
	for _, e := range entries {
		pgid, err := strconv.Atoi(e.Name())
		if err != nil || pgid <= 1 || (skip != nil && skip(pgid)) {
			continue
		}
		recorded[pgid] = filepath.Join(r.Dir, e.Name())
	}
	if len(recorded) == 0 {
		return nil, nil
	}
	live, err := markedGroups(recorded, r.Match)
	if err != nil {
		return nil, &ProcError{Err: err}
	}
	var found []Leftover
	for pgid, file := range recorded {
		if live[pgid] {
			label, _ := os.ReadFile(file)
			found = append(found, Leftover{
				PGID:  pgid,
				Label: strings.TrimSpace(string(label)),
				Err:   syscall.Kill(-pgid, syscall.SIGKILL),
			})
		}
		_ = os.Remove(file)
	}
	return found, nil
}

// markedGroups returns which of the recorded groups have a live (not zombie) member
// whose environment match accepts, by scanning /proc: the process group is the fifth
// field of /proc/PID/stat. A process that cannot be read (gone meanwhile, another
// user's) is not a member.
func markedGroups(recorded map[int]string, match func(environ []byte) bool) (map[int]bool, error) {
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
		pgid, ok := groupOf(pid)
		if _, rec := recorded[pgid]; !ok || !rec || found[pgid] {
			continue
		}
		if env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid)); err == nil && match(env) {
			found[pgid] = true
		}
	}
	return found, nil
}

// groupOf returns the process group of pid, and false if pid is gone or a zombie.
func groupOf(pid int) (int, bool) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// The command name in parentheses may hold spaces: count fields after it.
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(fields) < 3 || fields[0] == "Z" {
		return 0, false
	}
	pgid, err := strconv.Atoi(fields[2])
	return pgid, err == nil
}

// EnvEntry is a Match that accepts an environment holding entry (KEY=VALUE) exactly.
func EnvEntry(entry string) func(environ []byte) bool {
	return func(environ []byte) bool {
		for kv := range bytes.SplitSeq(environ, []byte{0}) {
			if string(kv) == entry {
				return true
			}
		}
		return false
	}
}

// EnvPrefix is a Match that accepts an environment with an entry that starts with
// prefix, e.g. "DROVER_WORKSPACE=/data/work/" for any workspace under that folder.
func EnvPrefix(prefix string) func(environ []byte) bool {
	return func(environ []byte) bool {
		for kv := range bytes.SplitSeq(environ, []byte{0}) {
			if bytes.HasPrefix(kv, []byte(prefix)) {
				return true
			}
		}
		return false
	}
}
