package process

import (
	"errors"
	"fmt"
	"path/filepath"
	"syscall"

	"github.com/drover-cd/drover/procgroup"
)

// marker is the environment entry every instance of r carries when Leftovers is set.
func (r *Runtime) marker() string {
	dir, err := filepath.Abs(r.Leftovers)
	if err != nil {
		dir = r.Leftovers
	}
	return MarkerEnv + "=" + dir
}

// registry is r.Leftovers as a procgroup.Registry: a group is r's if a member has r's
// marker as an entry of its environment, exactly.
func (r *Runtime) registry() *procgroup.Registry {
	return &procgroup.Registry{Dir: r.Leftovers, Match: procgroup.EnvEntry(r.marker())}
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
	// The record holds the instance's name, for KillLeftovers' log only.
	if err := r.registry().Record(pgid, name); err != nil {
		r.untrack(pgid)
		return fmt.Errorf("record the process group for leftovers: %w", err)
	}
	return nil
}

// untrack forgets an ended group: the record goes first, then the running entry (the
// reverse of track).
func (r *Runtime) untrack(pgid int) {
	if r.Leftovers != "" {
		r.registry().Forget(pgid)
	}
	r.mu.Lock()
	delete(r.running, pgid)
	r.mu.Unlock()
}

// isRunning reports whether pgid is the group of a live instance of r.
func (r *Runtime) isRunning(pgid int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.running[pgid]
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
	// The running set is consulted after the records are read: see track.
	found, err := r.registry().KillLeftovers(r.isRunning)
	if err != nil {
		return 0, fmt.Errorf("leftovers: %w", err)
	}
	killed := 0
	for _, g := range found {
		switch {
		case g.Err == nil:
			killed++
			r.logger().Info("killed an instance a previous server left running",
				"instance", g.Label, "pgid", g.PGID)
		case !errors.Is(g.Err, syscall.ESRCH):
			r.logger().Warn("kill a leftover instance", "pgid", g.PGID, "err", g.Err)
		}
	}
	return killed, nil
}
