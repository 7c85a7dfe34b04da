// Package runlog keeps a local run on disk: .drover/runs/N/ holds one timestamped log file
// per step and run.json, the run's outcome, so a run can be read after the terminal is gone.
package runlog

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/drover-cd/drover/atomicfile"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/drover-cd/drover/engine"
)

var _ engine.Sink = (*Dir)(nil)

// Dir is the folder of one run. It is an engine.Sink that writes the step logs.
type Dir struct {
	Path   string
	Number int

	names map[string]string // step name -> log file name
	open  map[string]*logFile
	err   error // the first write error; reported by Close
}

type logFile struct {
	f *os.File
	w *bufio.Writer
}

// Create makes the folder of the next run under root (e.g. .drover/runs), numbering runs
// from 1. Concurrent drover processes get different numbers: os.Mkdir decides.
func Create(root string) (*Dir, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", root, err)
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", root, err)
	}
	next := 1
	for _, e := range entries {
		if n, err := strconv.Atoi(e.Name()); err == nil && n >= next {
			next = n + 1
		}
	}
	for ; ; next++ {
		path := filepath.Join(root, strconv.Itoa(next))
		err := os.Mkdir(path, 0o755)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("create run folder: %w", err)
		}
		return &Dir{Path: path, Number: next, names: map[string]string{}, open: map[string]*logFile{}}, nil
	}
}

// LogFile is the path of a step's log.
func (d *Dir) LogFile(step string) string {
	return filepath.Join(d.Path, d.names[step])
}

// Handle writes log lines and notes, each prefixed with an RFC 3339 UTC timestamp.
func (d *Dir) Handle(e engine.Event) {
	switch e.Type {
	case engine.RunStarted:
		for i, n := range e.Nodes {
			d.names[n.Name] = fmt.Sprintf("%02d-%s.log", i+1, safeName(n.Name))
		}
	case engine.StepStarted:
		if d.open[e.Step] == nil {
			f, err := os.OpenFile(d.LogFile(e.Step), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
			if err != nil {
				d.fail(err)
				return
			}
			d.open[e.Step] = &logFile{f: f, w: bufio.NewWriterSize(f, 32<<10)}
		}
		d.write(e, fmt.Sprintf("drover: attempt %d started", e.Attempt))
	case engine.StepLog:
		d.write(e, e.Line)
	case engine.StepNote:
		d.write(e, "drover: "+e.Line)
	case engine.StepFinished:
		if lf := d.open[e.Step]; lf != nil {
			d.write(e, strings.TrimSpace(fmt.Sprintf("drover: %s %s", e.Result.Status, e.Result.Reason)))
			d.fail(lf.w.Flush())
			d.fail(lf.f.Close())
			delete(d.open, e.Step)
		}
	}
}

func (d *Dir) write(e engine.Event, line string) {
	lf := d.open[e.Step]
	if lf == nil {
		return
	}
	var stamp [32]byte
	lf.w.Write(e.Time.UTC().AppendFormat(stamp[:0], "2006-01-02T15:04:05.000Z"))
	lf.w.WriteByte(' ')
	lf.w.WriteString(line)
	lf.w.WriteByte('\n')
}

func (d *Dir) fail(err error) {
	if err != nil && d.err == nil {
		d.err = err
	}
}

// Close closes any log still open and returns the first error writing logs met.
func (d *Dir) Close() error {
	for name, lf := range d.open {
		d.fail(lf.w.Flush())
		d.fail(lf.f.Close())
		delete(d.open, name)
	}
	if d.err != nil {
		return fmt.Errorf("write step logs: %w", d.err)
	}
	return nil
}

// Record is run.json: what a later reader (or the server) needs to know of the run.
type Record struct {
	Number   int                  `json:"number"`
	Status   engine.Status        `json:"status"`
	Started  time.Time            `json:"started"`
	Finished time.Time            `json:"finished"`
	Branch   string               `json:"branch,omitempty"`
	Commit   string               `json:"commit,omitempty"`
	Artifact string               `json:"artifact,omitempty"`
	Steps    []*engine.StepResult `json:"steps"`
}

// WriteResult stores run.json atomically: a temp file, fsync, rename.
func (d *Dir) WriteResult(rec Record) error {
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("encode run.json: %w", err)
	}
	return atomicfile.Write(filepath.Join(d.Path, "run.json"), append(data, '\n'), 0o644)
}

// safeName keeps letters, digits, dot, dash and underscore of a step name for a file name.
func safeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_'
		if !ok {
			b[i] = '_'
		}
	}
	return string(b)
}
