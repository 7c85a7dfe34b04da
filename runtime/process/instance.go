package process

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/drover-cd/drover/mask"
	"github.com/drover-cd/drover/runtime"
)

var _ runtime.Instance = (*instance)(nil)

// tailLines is how many output lines an instance keeps for Tail.
const tailLines = 200

// instance is a running process group; its leader's pid is the group's id.
type instance struct {
	stopper // name, pid, timeout, done: closed by Start's waiter once err is set
	addr    string
	out     *runtime.Ring

	mu  sync.Mutex
	err error
}

func (i *instance) Name() string          { return i.name }
func (i *instance) Addr() string          { return i.addr }
func (i *instance) Pid() int              { return i.pid }
func (i *instance) Done() <-chan struct{} { return i.done }
func (i *instance) Tail(n int) []string   { return i.out.Tail(n) }

func (i *instance) Err() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.err
}

// wait waits for the leader to exit, kills what it left in its group, finishes reading
// the output and records why the instance ended.
func (i *instance) wait(cmd *exec.Cmd, pr *os.File, copied <-chan struct{}, drain time.Duration) {
	waitErr := cmd.Wait()
	// The leader is gone; whatever it left running in its group goes with it, so an
	// instance never leaves processes behind and its output pipe closes.
	_ = syscall.Kill(-i.pid, syscall.SIGKILL)
	t := time.NewTimer(drain)
	select {
	case <-copied:
	case <-t.C:
		pr.Close() // a process escaped the group and holds the pipe: stop reading
		<-copied
	}
	t.Stop()
	pr.Close()

	err := exitError(cmd.ProcessState, waitErr)
	if i.stopping.Load() {
		err = fmt.Errorf("%w (%w)", runtime.ErrStopped, err)
	}
	i.mu.Lock()
	i.err = err
	i.mu.Unlock()
}

// copyOutput reads the instance's output until the pipe closes, hiding m's secrets,
// appending it to logFile (nil: none) and to the tail ring. It closes logFile.
func (i *instance) copyOutput(pr io.Reader, logFile *os.File, m *mask.Masker, log *slog.Logger) {
	defer func() { closeLog(logFile) }() // after the masker's flush below
	var out io.Writer = writerFunc(func(p []byte) (int, error) {
		if logFile != nil {
			if _, werr := logFile.Write(p); werr != nil {
				// Keep reading: a full disk must not block the instance on a full pipe.
				log.Warn("write an instance's log file; its output goes to the tail only",
					"instance", i.name, "err", werr)
				closeLog(logFile)
				logFile = nil
			}
		}
		return i.out.Write(p)
	})
	if !m.Empty() {
		mw := m.Writer(out)
		defer mw.Flush()
		out = mw
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := pr.Read(buf)
		if n > 0 {
			_, _ = out.Write(buf[:n])
		}
		if err != nil {
			break
		}
	}
}

// writerFunc adapts a function to an io.Writer.
type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
