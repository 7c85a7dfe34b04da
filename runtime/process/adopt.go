package process

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/drover-cd/drover/runtime"
)

// exitPoll is how often an adopted shim is checked when pidfd is not available.
const exitPoll = 200 * time.Millisecond

// Adopt returns the detached instances recorded in State that a previous server started
// and that still run; see runtime.Adopter. Of the records of instances that are gone it
// forgets them; an instance whose shim is gone while its group lives is killed first,
// since its output has nowhere to go. The instances this Runtime watches itself are not
// returned again. With State unset it returns nothing.
func (r *Runtime) Adopt(ctx context.Context) ([]runtime.Adopted, error) {
	if r.State == "" {
		return nil, nil
	}
	entries, err := os.ReadDir(r.State)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("adopt instances: %w", err)
	}
	var adopted []runtime.Adopted
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || !strings.HasSuffix(name, recordExt) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return adopted, fmt.Errorf("adopt instances: %w", context.Cause(ctx))
		}
		rec, err := readRecordFile(filepath.Join(r.State, name))
		if err != nil {
			r.logger().Warn("an instance record cannot be read; it is left alone", "err", err)
			continue
		}
		if a, ok := r.adoptOne(rec); ok {
			adopted = append(adopted, a)
		}
	}
	return adopted, nil
}

// adoptOne adopts the instance of rec if its shim runs, and forgets rec otherwise.
func (r *Runtime) adoptOne(rec record) (runtime.Adopted, bool) {
	log := r.logger().With("instance", rec.Name, "pgid", rec.PGID)
	r.mu.Lock()
	if r.live[rec.Name] {
		r.mu.Unlock()
		return runtime.Adopted{}, false
	}
	if isProcess(rec.ShimPID, rec.ShimStart) {
		if r.live == nil {
			r.live = map[string]bool{}
		}
		r.live[rec.Name] = true
		r.mu.Unlock()
		inst := r.newDetached(rec)
		go func() {
			waitExit(rec.ShimPID, rec.ShimStart)
			inst.finish()
		}()
		log.Info("adopted an instance")
		return runtime.Adopted{Instance: inst, Labels: rec.Labels, Started: rec.Started}, true
	}
	r.mu.Unlock()
	if isProcess(rec.PGID, rec.LeaderStart) {
		err := syscall.Kill(-rec.PGID, syscall.SIGKILL)
		log.Warn("killed an instance whose shim is gone", "err", err)
	} else {
		log.Info("forgot an instance that ended", "exit", rec.Exit)
	}
	if err := removeRecord(r.State, rec); err != nil {
		log.Warn("forget an ended instance", "err", err)
	}
	return runtime.Adopted{}, false
}

// waitExit returns once the process pid that started at start has exited (it is not
// this process's child): through a pidfd, else by polling.
func waitExit(pid int, start uint64) {
	if fd, err := unix.PidfdOpen(pid, 0); err == nil {
		defer unix.Close(fd)
		// The pidfd may name a process that took the pid since: then ours is gone.
		if !isProcess(pid, start) {
			return
		}
		for {
			_, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, -1)
			if err == nil {
				return
			}
			if !errors.Is(err, unix.EINTR) {
				break
			}
		}
	}
	for isProcess(pid, start) {
		time.Sleep(exitPoll)
	}
}
