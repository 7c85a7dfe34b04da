//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package proxy

import (
	"errors"
	"syscall"
)

// alive reports whether the backend has not closed idle connection c: a peek that
// does not block finds neither EOF, nor an error, nor unasked-for bytes. One syscall,
// paid only by requests that could not be retried on a closed connection.
func (c *fastConn) alive() bool {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var (
		buf  [1]byte
		rerr error
	)
	err = rc.Read(func(fd uintptr) bool {
		_, _, rerr = syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return true // never wait
	})
	if err != nil {
		return false
	}
	// EAGAIN: nothing to read, the connection is open and quiet. No error means EOF
	// or bytes nobody asked for.
	return errors.Is(rerr, syscall.EAGAIN)
}
