// Package process is the embedded step backend: each step's script runs as `sh -e` in a
// process group of its own on this machine, so that stopping a step stops everything the
// script started.
package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"time"

	"github.com/drover-cd/drover/engine"
	"github.com/drover-cd/drover/pipeline"
)

var (
	_ engine.Backend   = (*Backend)(nil)
	_ engine.Supporter = (*Backend)(nil)
)

// Backend runs steps as local processes. The zero value is ready to use.
type Backend struct {
	// Shell runs the scripts, with -e -c SCRIPT. Default: sh.
	Shell string
	// Grace is how long a stopped step's processes get between SIGTERM and SIGKILL.
	// Default: 10s.
	Grace time.Duration
	// Drain bounds how long output is still read after the script's process group was
	// killed, for a process that left the group and kept the output open. Default: 2s.
	Drain time.Duration
	// Leftovers, when set, records running steps' process groups so a restarted server
	// can stop those a crash left behind. Default: not recorded.
	Leftovers *Leftovers
}

// Supports refuses steps that need containers: this backend has none.
func (b *Backend) Supports(s *pipeline.Step) error {
	switch {
	case s.Image != "":
		return fmt.Errorf("image: %s needs the Docker backend; the process backend runs scripts on this machine", s.Image)
	case len(s.Services) > 0:
		return errors.New("services: sidecar containers need the Docker backend")
	case s.Build != nil:
		return errors.New("build: image builds need the Docker backend")
	}
	return nil
}

// Exec runs spec.Script with `sh -e -c` in a new process group; see engine.Backend.
func (b *Backend) Exec(ctx context.Context, spec *engine.Spec, out io.Writer) (int, error) {
	shell, grace, drain := b.Shell, b.Grace, b.Drain
	if shell == "" {
		shell = "sh"
	}
	if grace <= 0 {
		grace = 10 * time.Second
	}
	if drain <= 0 {
		drain = 2 * time.Second
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return -1, fmt.Errorf("output pipe: %w", err)
	}
	argv := append(slices.Clip(spec.Launcher), shell, "-e", "-c", spec.Script)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = spec.Dir
	cmd.Env = spec.Env
	// One pipe for stdout and stderr keeps their lines in the order they were written.
	cmd.Stdout, cmd.Stderr = pw, pw
	// A group of its own: signals reach every process the script started, and a
	// Ctrl-C in drover's terminal reaches drover only, which then stops the group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if !spec.User.IsZero() {
		// No supplementary groups: the server's must not come along.
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(spec.User.UID), Gid: uint32(spec.User.GID), Groups: []uint32{}}
	}
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return -1, fmt.Errorf("start %s: %w", shell, err)
	}
	pw.Close()
	pgid := cmd.Process.Pid
	b.Leftovers.add(pgid)
	defer b.Leftovers.remove(pgid)

	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = io.Copy(out, pr)
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	var waitErr error
	select {
	case waitErr = <-exited:
	case <-ctx.Done():
		waitErr = stop(pgid, grace, exited)
	}
	// The script is done; whatever it left running in its group goes with it, so a step
	// never leaves processes behind and its output pipe closes.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	select {
	case <-copied:
	case <-time.After(drain):
		pr.Close() // a process escaped the group and holds the pipe: stop reading
		<-copied
	}
	pr.Close()

	code := exitCode(cmd.ProcessState)
	if ctx.Err() != nil {
		return code, context.Cause(ctx)
	}
	var exitErr *exec.ExitError
	if waitErr != nil && !errors.As(waitErr, &exitErr) {
		return code, fmt.Errorf("wait for %s: %w", shell, waitErr)
	}
	return code, nil
}

// stop sends the group SIGTERM, then SIGKILL once grace has passed, and returns the
// script's wait error.
func stop(pgid int, grace time.Duration, exited <-chan error) error {
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case err := <-exited:
		return err
	case <-t.C:
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		return <-exited
	}
}

// exitCode is the script's exit status, or 128+N when signal N killed it, as shells report.
func exitCode(ps *os.ProcessState) int {
	if ps == nil {
		return -1
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}
