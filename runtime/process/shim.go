package process

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	ossignal "os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/drover-cd/drover/mask"
)

// ShimCommand is the argument that makes the drover binary run as an instance's shim
// (RunShim): `drover instance-shim`. It is hidden: only the process runtime runs it.
const ShimCommand = "instance-shim"

// shimConfig is what the server sends a shim on its stdin, as JSON: the instance to run.
type shimConfig struct {
	Record   record   // what to record; the shim fills in the pids and start times
	State    string   // the folder of records
	Dir      string   // working directory
	Command  string   // run with sh -c
	Env      []string // the instance's whole environment, PORT included
	UID, GID int
	Launcher []string
	Secrets  []string      // the values to hide in the output (mask.New)
	Drain    time.Duration // how long output is still read after the group was killed
}

// RunShim is an instance's supervisor, the `drover instance-shim` command, run by the
// process runtime in a session of its own so that the instance outlives the server. It
// reads a shimConfig on stdin, starts `sh -c COMMAND` as the leader of a new process
// group, records it in the State folder and answers on stdout with one line, "started
// PGID" or "error: ...". Then it lets go of both, so that nothing ties it to the server,
// and copies the instance's output, masked, to the log file. When the leader exits it
// kills what is left of the group, records why the instance ended and returns the
// process's exit code: 0 once the instance was started, 1 otherwise.
func RunShim(stdin io.Reader, stdout io.Writer) int {
	// A broken handshake pipe (the server died or gave up) must be an error to see, not
	// a signal that kills the shim: the instance would be left without a supervisor.
	ossignal.Ignore(syscall.SIGPIPE, syscall.SIGHUP)
	var cfg shimConfig
	if err := json.NewDecoder(stdin).Decode(&cfg); err != nil {
		fmt.Fprintf(stdout, "error: read the instance's spec: %v\n", err)
		return 1
	}
	detach(stdin)
	s, err := startShim(cfg)
	if err != nil {
		if cfg.Record.OwnLog {
			_ = os.Remove(cfg.Record.LogFile)
		}
		fmt.Fprintf(stdout, "error: %v\n", err)
		return 1
	}
	if _, err := fmt.Fprintf(stdout, "started %d\n", s.cmd.Process.Pid); err != nil {
		// The server is gone before it learnt of the instance: it reports a failed start,
		// so nothing may be left running.
		s.kill()
		_ = removeRecord(cfg.State, s.rec)
		return 1
	}
	detach(stdout)
	s.supervise()
	return 0
}

// detach replaces the file f (a pipe to the server) by /dev/null, keeping its descriptor
// number taken so that no later file lands on 0, 1 or 2. Other readers and writers are
// left alone.
func detach(f any) {
	file, ok := f.(*os.File)
	if !ok {
		return
	}
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		_ = file.Close()
		return
	}
	defer null.Close()
	_ = unix.Dup2(int(null.Fd()), int(file.Fd()))
}

// shim is a started instance and the state its supervisor keeps.
type shim struct {
	cfg     shimConfig
	rec     record
	cmd     *exec.Cmd
	pr      *os.File // the read end of the instance's output pipe
	logFile *os.File
}

// startShim opens the log, starts the group and records it; on an error nothing runs.
func startShim(cfg shimConfig) (*shim, error) {
	rec := cfg.Record
	shimStart, ok := startTime(os.Getpid())
	if !ok {
		return nil, errors.New("read the shim's start time")
	}
	rec.ShimPID, rec.ShimStart = os.Getpid(), shimStart
	logFile, err := openLog(rec.LogFile)
	if err != nil {
		return nil, err
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		closeLog(logFile)
		return nil, fmt.Errorf("output pipe: %w", err)
	}
	argv := append(slices.Clip(cfg.Launcher), "/bin/sh", "-c", cfg.Command)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = cfg.Dir
	cmd.Env = cfg.Env
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if cfg.UID != 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(cfg.UID), Gid: uint32(cfg.GID), Groups: []uint32{}}
	}
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		closeLog(logFile)
		return nil, err
	}
	pw.Close()
	s := &shim{cfg: cfg, cmd: cmd, pr: pr, logFile: logFile}
	rec.PGID = cmd.Process.Pid
	// The leader is our child and not reaped yet: its stat is there.
	rec.LeaderStart, _ = startTime(rec.PGID)
	s.rec = rec
	if err := writeRecord(cfg.State, rec); err != nil {
		s.kill()
		return nil, err
	}
	return s, nil
}

// kill ends a started group at once and waits for its leader.
func (s *shim) kill() {
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	_ = s.cmd.Wait()
	s.pr.Close()
	closeLog(s.logFile)
}

// supervise copies the output until the leader has exited and the group is gone, then
// records why the instance ended.
func (s *shim) supervise() {
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		copyToLog(s.pr, s.logFile, mask.New(s.cfg.Secrets))
	}()
	waitErr := s.cmd.Wait()
	// As in the attached runtime: the leader's exit ends its group.
	_ = syscall.Kill(-s.rec.PGID, syscall.SIGKILL)
	t := time.NewTimer(s.cfg.Drain)
	select {
	case <-copied:
	case <-t.C:
		s.pr.Close() // a process escaped the group and holds the pipe
		<-copied
	}
	t.Stop()
	s.pr.Close()
	s.rec.Exit = exitError(s.cmd.ProcessState, waitErr).Error()
	if ws, ok := s.cmd.ProcessState.Sys().(syscall.WaitStatus); ok {
		s.rec.Status = &ws
	}
	// Nowhere to report a failure to: the server then finds a record without a reason.
	_ = writeRecord(s.cfg.State, s.rec)
}

// copyToLog reads the instance's output until the pipe closes and appends it, with
// m's secrets hidden, to logFile, which it closes. After a write error it goes on
// reading, so that the instance never blocks on a full pipe.
func copyToLog(pr io.Reader, logFile *os.File, m *mask.Masker) {
	defer func() { closeLog(logFile) }() // after the masker's flush below
	var out io.Writer = writerFunc(func(p []byte) (int, error) {
		if logFile != nil {
			if _, err := logFile.Write(p); err != nil {
				closeLog(logFile)
				logFile = nil
			}
		}
		return len(p), nil
	})
	if !m.Empty() {
		mw := m.Writer(out)
		defer mw.Flush()
		out = mw
	}
	_, _ = io.Copy(out, pr)
}

// readHandshake reads the shim's answer: the group id it started, or its error.
func readHandshake(r io.Reader) (int, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("instance shim: no answer: %w", err)
	}
	line = line[:len(line)-1]
	if rest, ok := strings.CutPrefix(line, "started "); ok {
		pgid, err := strconv.Atoi(rest)
		if err != nil || pgid <= 0 {
			return 0, fmt.Errorf("instance shim: bad answer %q", line)
		}
		return pgid, nil
	}
	if rest, ok := strings.CutPrefix(line, "error: "); ok {
		return 0, errors.New(rest)
	}
	return 0, fmt.Errorf("instance shim: bad answer %q", line)
}
