package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

// Landlock before ABI 9 does not confine connecting to a socket by its path, so a
// confined process could still reach the Docker Engine's socket when the server's user
// may (it is in the docker group), and through it everything. Confinement.Hide covers such
// sockets with /dev/null in a mount namespace of the confined process's own, made in a
// user namespace that maps only the server's own uid and gid: nothing else changes for it.
// Go cannot enter namespaces between fork and exec of itself, so Exec starts itself once
// more inside them (Hidden set), and waits.

// ErrNoNamespaces is returned when this machine does not let an ordinary user make a
// user namespace (a sysctl or a security module forbids it): sockets cannot be hidden.
var ErrNoNamespaces = errors.New("user namespaces are not available to this user")

// hideAndExec runs this binary's `sandbox exec` again as a child in a new user and mount
// namespace, with Hidden set, and exits with its status. It returns only when the child
// could not start.
func hideAndExec(c Confinement, argv []string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	inner := c
	inner.Hidden = true
	cmd := exec.Command(self, inner.Command(self, argv)[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	uid, gid := os.Getuid(), os.Getgid()
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:                 syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
		UidMappings:                []syscall.SysProcIDMap{{ContainerID: uid, HostID: uid, Size: 1}},
		GidMappings:                []syscall.SysProcIDMap{{ContainerID: gid, HostID: gid, Size: 1}},
		GidMappingsEnableSetgroups: false,
		// Kept across the exec, or a non-root uid loses it there; hide drops it again
		// before the confined command runs.
		AmbientCaps: []uintptr{capSysAdmin},
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%w: %w", ErrNoNamespaces, err)
	}
	_ = cmd.Wait()
	// The step's process group (this process and the child) gets the backend's signals;
	// report the child's end as a shell would.
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		os.Exit(128 + int(ws.Signal()))
	}
	os.Exit(cmd.ProcessState.ExitCode())
	return nil
}

// capSysAdmin is CAP_SYS_ADMIN, which mounting needs (in the new user namespace only).
const capSysAdmin = 21

// dropAmbient clears the calling thread's ambient capabilities, so that the command it
// execs next keeps none (PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL).
func dropAmbient() error {
	if _, _, errno := syscall.RawSyscall6(syscall.SYS_PRCTL, 47, 4, 0, 0, 0, 0); errno != 0 {
		return fmt.Errorf("drop ambient capabilities: %w", errno)
	}
	return nil
}

// hide covers each of paths that exists with /dev/null, in this process's own mount
// namespace (Hidden: made by hideAndExec), so that opening or connecting to it fails.
func hide(paths []string) error {
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make the mounts private: %w", err)
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			continue
		}
		if err := syscall.Mount("/dev/null", p, "", syscall.MS_BIND, ""); err != nil {
			return fmt.Errorf("hide %s: %w", p, err)
		}
	}
	return nil
}
