package process

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// recordExt ends the name of every record file in Runtime.State.
const recordExt = ".json"

// record is what State holds of one detached instance, written by its shim: enough for
// a restarted server to find the instance again, to tell it from a process that took
// its pid since (the start times), and to learn why it exited.
type record struct {
	Name        string            `json:"name"`
	PGID        int               `json:"pgid"`         // the leader's pid
	LeaderStart uint64            `json:"leader_start"` // /proc/PGID/stat field 22
	ShimPID     int               `json:"shim_pid"`
	ShimStart   uint64            `json:"shim_start"`
	Addr        string            `json:"addr"`
	Labels      map[string]string `json:"labels,omitempty"`
	LogFile     string            `json:"log_file"`
	// OwnLog is set when LogFile is the runtime's own (Spec.LogFile was ""): it goes
	// with the record.
	OwnLog      bool          `json:"own_log,omitempty"`
	StopTimeout time.Duration `json:"stop_timeout"`
	Started     time.Time     `json:"started"`
	// Exit says why the instance ended ("exit status 3", "signal: killed"); "" while it
	// runs.
	Exit string `json:"exit,omitempty"`
	// Status is the leader's wait status once it exited, when Exit came from one.
	Status *syscall.WaitStatus `json:"status,omitempty"`
}

// ExitError is why a detached instance exited, as its shim saw it. Like
// *exec.ExitError it has Sys, the leader's wait status: match both with
// errors.As(err, &x) where x is an interface{ Sys() any }.
type ExitError struct {
	Status syscall.WaitStatus
	text   string // "exit status 3", "signal: killed"
}

func (e *ExitError) Error() string { return e.text }

// Sys is the syscall.WaitStatus of the instance's leader.
func (e *ExitError) Sys() any { return e.Status }

// exitReason is the error for rec.Exit; nil when rec holds none.
func (rec record) exitReason() error {
	switch {
	case rec.Exit == "":
		return nil
	case rec.Status != nil:
		return &ExitError{Status: *rec.Status, text: rec.Exit}
	}
	return errors.New(rec.Exit)
}

// recordPath is where the record of the instance name is kept in dir.
func recordPath(dir, name string) string { return filepath.Join(dir, name+recordExt) }

// writeRecord stores rec in dir atomically: a temporary file, fsynced, renamed over.
func writeRecord(dir string, rec record) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("instance record %s: %w", rec.Name, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("instance record %s: %w", rec.Name, err)
	}
	f, err := os.CreateTemp(dir, "."+rec.Name+".*.tmp")
	if err != nil {
		return fmt.Errorf("instance record %s: %w", rec.Name, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), recordPath(dir, rec.Name))
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("instance record %s: %w", rec.Name, err)
	}
	return nil
}

// readRecord reads the record of the instance name from dir.
func readRecord(dir, name string) (record, error) {
	return readRecordFile(recordPath(dir, name))
}

func readRecordFile(path string) (record, error) {
	var rec record
	data, err := os.ReadFile(path)
	if err != nil {
		return rec, fmt.Errorf("instance record: %w", err)
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		return rec, fmt.Errorf("instance record %s: %w", path, err)
	}
	if rec.Name == "" || rec.PGID <= 0 || rec.ShimPID <= 0 {
		return rec, fmt.Errorf("instance record %s: incomplete", path)
	}
	return rec, nil
}

// removeRecord forgets the record of rec, and its log file when it is the runtime's own.
func removeRecord(dir string, rec record) error {
	err := os.Remove(recordPath(dir, rec.Name))
	if errors.Is(err, fs.ErrNotExist) {
		err = nil
	}
	if rec.OwnLog {
		if lerr := os.Remove(rec.LogFile); lerr != nil && !errors.Is(lerr, fs.ErrNotExist) && err == nil {
			err = lerr
		}
	}
	if err != nil {
		return fmt.Errorf("forget instance record %s: %w", rec.Name, err)
	}
	return nil
}

// startTime is the start time of process pid, in clock ticks after boot (field 22 of
// /proc/PID/stat): with the pid, it names a process for good, since a pid is reused
// only by a process that starts later. ok is false when pid does not exist.
func startTime(pid int) (ticks uint64, ok bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name (field 2) is in parentheses and may hold spaces and ')'.
	end := bytes.LastIndexByte(data, ')')
	if end < 0 {
		return 0, false
	}
	fields := strings.Fields(string(data[end+1:])) // from field 3 on
	if len(fields) < 20 {
		return 0, false
	}
	ticks, err = strconv.ParseUint(fields[19], 10, 64)
	return ticks, err == nil
}

// isProcess reports whether pid is alive (or a zombie not yet reaped) and started at
// ticks: the same process, not one that reused its pid.
func isProcess(pid int, ticks uint64) bool {
	got, ok := startTime(pid)
	return ok && got == ticks
}
