package process

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

// handshakeTimeout bounds how long Start waits for a shim's answer, which takes a few
// milliseconds: only a shim that hangs reaches it.
const handshakeTimeout = 30 * time.Second

// startDetached starts spec under a shim; see Runtime.State.
func (r *Runtime) startDetached(ctx context.Context, spec runtime.Spec) (runtime.Instance, error) {
	if err := r.claimName(spec.Name); err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.Name, err)
	}
	inst, err := r.spawn(ctx, spec)
	if err != nil {
		r.releaseName(spec.Name)
		return nil, fmt.Errorf("start %s: %w", spec.Name, err)
	}
	return inst, nil
}

// claimName reserves name for an instance about to start. A record left by an instance
// that ended is forgotten; one of an instance that runs (not adopted) refuses the name.
func (r *Runtime) claimName(name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.live[name] {
		return errors.New("an instance of that name runs")
	}
	if rec, err := readRecord(r.State, name); err == nil {
		if isProcess(rec.ShimPID, rec.ShimStart) {
			return errors.New("an instance of that name that was not adopted runs")
		}
		if err := removeRecord(r.State, rec); err != nil {
			return err
		}
	}
	if r.live == nil {
		r.live = map[string]bool{}
	}
	r.live[name] = true
	return nil
}

func (r *Runtime) releaseName(name string) {
	r.mu.Lock()
	delete(r.live, name)
	r.mu.Unlock()
}

// shimArgv is the command line of a shim.
func (r *Runtime) shimArgv() ([]string, error) {
	if len(r.Shim) > 0 {
		return slices.Clone(r.Shim), nil
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the shim: %w", err)
	}
	return []string{exe, ShimCommand}, nil
}

// spawn starts a shim for spec and waits for its answer.
func (r *Runtime) spawn(ctx context.Context, spec runtime.Spec) (*detached, error) {
	port := spec.Port
	if port == 0 {
		var err error
		if port, err = runtime.FreePort(); err != nil {
			return nil, err
		}
	}
	rec := record{
		Name:        spec.Name,
		Addr:        net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Labels:      spec.Labels,
		LogFile:     spec.LogFile,
		StopTimeout: spec.Timeout(),
		Started:     time.Now(),
	}
	if rec.LogFile == "" {
		rec.LogFile, rec.OwnLog = filepath.Join(r.State, spec.Name+".log"), true
	}
	cfg := shimConfig{
		Record:   rec,
		State:    r.State,
		Dir:      spec.Dir,
		Command:  spec.Command,
		Env:      append(slices.Clip(spec.Env), "PORT="+strconv.Itoa(port)), // the last PORT wins
		UID:      spec.UID,
		GID:      spec.GID,
		Launcher: spec.Launcher,
		Secrets:  spec.Masker.Values(),
		Drain:    r.drainTimeout(),
	}
	input, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("instance shim: %w", err)
	}
	argv, err := r.shimArgv()
	if err != nil {
		return nil, err
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("instance shim: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, fmt.Errorf("instance shim: %w", err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = []string{} // nothing of the server's: the instance's is in the spec
	cmd.Dir = "/"
	cmd.Stdin, cmd.Stdout = inR, outW // stderr: /dev/null
	// A session of its own: no signal to the server's group or terminal reaches it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, fmt.Errorf("instance shim: %w", err)
	}

	type answer struct {
		pgid int
		err  error
	}
	answered := make(chan answer, 1)
	go func() {
		_, werr := inW.Write(input)
		inW.Close()
		pgid, err := readHandshake(outR)
		if err != nil && werr != nil {
			err = fmt.Errorf("%w (send the spec: %w)", err, werr)
		}
		answered <- answer{pgid, err}
	}()
	t := time.NewTimer(handshakeTimeout)
	defer t.Stop()
	var a answer
	select {
	case a = <-answered:
	case <-ctx.Done():
		a.err = context.Cause(ctx)
	case <-t.C:
		a.err = errors.New("instance shim: no answer in time")
	}
	if a.err != nil {
		// The shim may have started the group already: it goes, and its record.
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		outR.Close()
		if rec, err := readRecord(r.State, spec.Name); err == nil {
			if isProcess(rec.PGID, rec.LeaderStart) {
				_ = syscall.Kill(-rec.PGID, syscall.SIGKILL)
			}
			_ = removeRecord(r.State, rec)
		}
		return nil, a.err
	}
	outR.Close()
	if rec, err = readRecord(r.State, spec.Name); err != nil || rec.PGID != a.pgid {
		if err == nil {
			err = fmt.Errorf("instance record: group %d, want %d", rec.PGID, a.pgid)
		}
		_ = syscall.Kill(-a.pgid, syscall.SIGKILL)
		_ = cmd.Wait()
		_ = os.Remove(recordPath(r.State, spec.Name))
		return nil, err
	}
	inst := r.newDetached(rec)
	// The shim is this server's child until the server exits: reap it.
	go func() {
		_ = cmd.Wait()
		inst.finish()
	}()
	return inst, nil
}

// detached is an instance run by a shim: see Runtime.State.
type detached struct {
	stopper
	r   *Runtime
	rec record

	mu   sync.Mutex
	err  error
	tail []string // the last output, kept once done: the log may be gone
}

var _ runtime.Instance = (*detached)(nil)

func (r *Runtime) newDetached(rec record) *detached {
	return &detached{
		stopper: stopper{name: rec.Name, pid: rec.PGID, timeout: rec.StopTimeout, done: make(chan struct{})},
		r:       r,
		rec:     rec,
	}
}

func (d *detached) Name() string          { return d.rec.Name }
func (d *detached) Addr() string          { return d.rec.Addr }
func (d *detached) Pid() int              { return d.rec.PGID }
func (d *detached) Done() <-chan struct{} { return d.done }

func (d *detached) Err() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

// Tail reads the last lines of the log file, which the shim wrote masked.
func (d *detached) Tail(n int) []string {
	d.mu.Lock()
	if d.tail != nil {
		defer d.mu.Unlock()
		return lastLines(d.tail, n)
	}
	d.mu.Unlock()
	return tailFile(d.rec.LogFile, n)
}

// finish runs once the shim has exited: it learns why the instance ended from the
// record, then forgets the record.
func (d *detached) finish() {
	var err error
	rec, rerr := readRecord(d.r.State, d.rec.Name)
	switch {
	case rerr == nil && rec.Exit != "":
		err = rec.exitReason()
	default:
		// The shim died before the instance (it was killed): the group's output has
		// nowhere to go, so the group goes too.
		if isProcess(d.rec.PGID, d.rec.LeaderStart) {
			_ = syscall.Kill(-d.rec.PGID, syscall.SIGKILL)
		}
		err = errors.New("the instance's shim exited without recording why; its group was killed")
	}
	if d.stopping.Load() {
		err = fmt.Errorf("%w (%w)", runtime.ErrStopped, err)
	}
	tail := tailFile(d.rec.LogFile, tailLines)
	if rerr := removeRecord(d.r.State, d.rec); rerr != nil {
		d.r.logger().Warn("forget an ended instance", "instance", d.rec.Name, "err", rerr)
	}
	d.r.releaseName(d.rec.Name)
	d.mu.Lock()
	d.err = err
	d.tail = tail
	if d.tail == nil {
		d.tail = []string{}
	}
	d.mu.Unlock()
	close(d.done)
}

// tailBytes is how much of the end of a log file Tail reads.
const tailBytes = 256 << 10

// tailFile returns up to the last n lines of the file path; nil if it cannot be read.
func tailFile(path string, n int) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil
	}
	from := max(0, info.Size()-tailBytes)
	data, err := io.ReadAll(io.NewSectionReader(f, from, info.Size()-from))
	if err != nil {
		return nil
	}
	if from > 0 { // the first line read is cut: drop it
		if i := slices.Index(data, '\n'); i >= 0 {
			data = data[i+1:]
		}
	}
	ring := runtime.NewRing(max(n, 1))
	_, _ = ring.Write(data)
	return ring.Tail(n)
}

// lastLines is up to the last n of lines.
func lastLines(lines []string, n int) []string {
	if n <= 0 {
		return nil
	}
	return slices.Clone(lines[max(0, len(lines)-n):])
}
