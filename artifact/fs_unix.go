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

// syncDir fsyncs a directory so a rename or link in it is durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
