package process

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// stopper stops a process group, for attached and detached instances alike.
type stopper struct {
	name    string
	pid     int // the group's id: its leader's pid
	timeout time.Duration
	done    chan struct{} // closed once the instance has exited

	stopping atomic.Bool // Stop was called: Err wraps runtime.ErrStopped
	termOnce sync.Once
	termErr  error // from the SIGTERM, set inside termOnce
}

// Stop terminates the group: SIGTERM, then SIGKILL after the stop timeout or when ctx
// ends; see runtime.Instance.
func (s *stopper) Stop(ctx context.Context) error {
	select {
	case <-s.done:
		return nil
	default:
	}
	s.termOnce.Do(func() {
		s.stopping.Store(true)
		if s.termErr = signal(s.pid, syscall.SIGTERM); s.termErr != nil {
			return
		}
		go func() {
			t := time.NewTimer(s.timeout)
			defer t.Stop()
			select {
			case <-s.done:
			case <-t.C:
				_ = signal(s.pid, syscall.SIGKILL)
			}
		}()
	})
	if s.termErr != nil {
		return fmt.Errorf("stop %s: %w", s.name, s.termErr)
	}
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
	}
	if err := signal(s.pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("stop %s: %w", s.name, err)
	}
	<-s.done
	return nil
}

// signal sends sig to the process group pgid. A group already gone is no error: the
// waiter is about to see its leader's exit.
func signal(pgid int, sig syscall.Signal) error {
	err := syscall.Kill(-pgid, sig)
	if err == nil || errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return fmt.Errorf("send %s to process group %d: %w", sig, pgid, err)
}
