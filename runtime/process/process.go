// Package process is the runtime that runs each instance as a supervised local process:
// `sh -c COMMAND` as the leader of a process group of its own, so that stopping the
// instance, or its leader exiting, stops everything it started. Optionally it records
// the groups it runs in a folder so that a restarted server can kill the instances a
// crashed one left running (KillLeftovers).
//
// With Runtime.State set, instances are detached instead: each runs under a shim of its
// own (RunShim, the same binary re-executed), which writes its masked output to the log
// file, so that the instance outlives the server and a restarted server adopts it
// (Adopt).
package process

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/drover-cd/drover/runtime"
)

var _ runtime.Adopter = (*Runtime)(nil)

// MarkerEnv is the variable that marks the processes of a Runtime with Leftovers set:
// each instance gets MarkerEnv=<Leftovers folder> in its environment.
const MarkerEnv = "DROVER_INSTANCE_MARKER"

// defaultDrain bounds how long output is still read after an instance's group was
// killed, for a process that left the group (setsid) and kept the output open.
const defaultDrain = 2 * time.Second

// Runtime starts instances as local process groups. The zero value is ready to use and
// records nothing; a Runtime must not be copied after first use.
type Runtime struct {
	// Leftovers is a folder (absolute) where the process group of every running instance
	// is recorded, one file per group named by its id, so that KillLeftovers in a
	// restarted server can stop those a crashed one left running. Two servers must not
	// share it. Default "": nothing is recorded.
	Leftovers string
	// State is a folder (absolute) that makes instances detached: each runs under a
	// supervisor of its own, a shim (see RunShim), in a session of its own, writes its
	// output to its log file through the shim and not through the server, and is
	// recorded here, one file per instance, so that it outlives the server and a
	// restarted server adopts it (Adopt). Start's ctx then bounds only the start.
	// Spec.LogFile "" puts the log in this folder, removed with the instance's record.
	// Two servers must not share it. Default "": instances are the server's children and
	// end with it; Leftovers applies to those only.
	State string
	// Shim is the command line that runs RunShim, for State. Default: this program
	// (os.Executable) with the argument ShimCommand.
	Shim []string
	// Log receives what the runtime does on its own: leftovers killed, log files that
	// cannot be written. Default: discarded.
	Log *slog.Logger

	drain time.Duration // defaultDrain when 0; shortened by tests

	mu      sync.Mutex
	running map[int]bool // the process groups of this Runtime's live instances
	// live holds the names of the detached instances this Runtime watches, started or
	// adopted, so that Adopt does not adopt them twice.
	live map[string]bool
}

// Start runs spec.Command with `sh -c` in spec.Dir as the leader of a new process group;
// see runtime.Runtime.
func (r *Runtime) Start(ctx context.Context, spec runtime.Spec) (runtime.Instance, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("start %s: %w", spec.Name, context.Cause(ctx))
	}
	if r.State != "" {
		return r.startDetached(ctx, spec)
	}
	port := spec.Port
	if port == 0 {
		var err error
		if port, err = runtime.FreePort(); err != nil {
			return nil, fmt.Errorf("start %s: %w", spec.Name, err)
		}
	}
	logFile, err := openLog(spec.LogFile)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.Name, err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		closeLog(logFile)
		return nil, fmt.Errorf("start %s: output pipe: %w", spec.Name, err)
	}
	argv := append(slices.Clip(spec.Launcher), "/bin/sh", "-c", spec.Command)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = spec.Dir
	// exec keeps the last of duplicate keys: PORT and the marker win over Spec.Env's.
	cmd.Env = append(slices.Clip(spec.Env), "PORT="+strconv.Itoa(port))
	if r.Leftovers != "" {
		cmd.Env = append(cmd.Env, r.marker())
	}
	// One pipe for stdout and stderr keeps their lines in the order they were written.
	cmd.Stdout, cmd.Stderr = pw, pw
	// A group of its own: signals reach every process the instance started, and a Ctrl-C
	// in drover's terminal does not reach the instances.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if spec.UID != 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(spec.UID), Gid: uint32(spec.GID), Groups: []uint32{}}
	}
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		closeLog(logFile)
		return nil, fmt.Errorf("start %s: %w", spec.Name, err)
	}
	pw.Close()
	pgid := cmd.Process.Pid
	// A crash between cmd.Start and this record leaves the group unrecorded; the window
	// is a few system calls wide.
	if err := r.track(pgid, spec.Name); err != nil {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		_ = cmd.Wait()
		pr.Close()
		closeLog(logFile)
		return nil, fmt.Errorf("start %s: %w", spec.Name, err)
	}

	inst := &instance{
		stopper: stopper{name: spec.Name, pid: pgid, timeout: spec.Timeout(), done: make(chan struct{})},
		addr:    net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		out:     runtime.NewRing(tailLines),
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		inst.copyOutput(pr, logFile, spec.Masker, r.logger())
	}()
	// The instance lives on ctx: when it ends, stop it as Stop would.
	unlink := context.AfterFunc(ctx, func() { _ = inst.Stop(context.WithoutCancel(ctx)) })
	go func() {
		inst.wait(cmd, pr, copied, r.drainTimeout())
		unlink()
		r.untrack(pgid)
		close(inst.done)
	}()
	return inst, nil
}

func (r *Runtime) logger() *slog.Logger {
	if r.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Log
}

func (r *Runtime) drainTimeout() time.Duration {
	if r.drain <= 0 {
		return defaultDrain
	}
	return r.drain
}

// openLog opens path for appending, creating it and its folders; "" gives nil.
func openLog(path string) (*os.File, error) {
	if path == "" {
		return nil, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	return f, nil
}

func closeLog(f *os.File) {
	if f != nil {
		_ = f.Close()
	}
}

// exitError says why a process exited; never nil.
func exitError(ps *os.ProcessState, waitErr error) error {
	var exitErr *exec.ExitError
	switch {
	case errors.As(waitErr, &exitErr):
		return exitErr // "exit status 3", "signal: killed"
	case waitErr != nil:
		return fmt.Errorf("wait: %w", waitErr)
	case ps != nil:
		return errors.New(ps.String()) // "exit status 0"
	}
	return errors.New("exited")
}
