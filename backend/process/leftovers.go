package process

import (
	"errors"
	"fmt"

	"github.com/drover-cd/drover/procgroup"
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

// registry is l as a procgroup.Registry: Marker is the prefix of an environment entry.
func (l *Leftovers) registry() *procgroup.Registry {
	return &procgroup.Registry{Dir: l.Dir, Match: procgroup.EnvPrefix(l.Marker)}
}

func (l *Leftovers) add(pgid int) {
	if l != nil {
		_ = l.registry().Record(pgid, "")
	}
}

func (l *Leftovers) remove(pgid int) {
	if l != nil {
		l.registry().Forget(pgid)
	}
}

// Kill stops every recorded group that still has a member carrying Marker, and forgets
// the records. It returns how many groups it killed. A group whose leader (the step's
// shell) already exited is still found through its other members. Without /proc (not
// Linux) it finds nothing.
func (l *Leftovers) Kill() (int, error) {
	found, err := l.registry().KillLeftovers(nil)
	if _, ok := errors.AsType[*procgroup.ProcError](err); ok {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", l.Dir, err)
	}
	killed := 0
	for _, g := range found {
		if g.Err == nil {
			killed++
		}
	}
	return killed, nil
}
