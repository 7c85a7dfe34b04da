//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package artifact

import (
	"os"
	"syscall"
)

// lockDir takes an exclusive flock on the directory dir, which serialises
// index.json updates across processes. The returned func releases it.
func lockDir(dir string) (func(), error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, &os.PathError{Op: "flock", Path: dir, Err: err}
	}
	return func() { f.Close() }, nil // closing the descriptor drops the lock
}
