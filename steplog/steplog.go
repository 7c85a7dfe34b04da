// Package steplog keeps the server's step logs as append-only files, one per step of a run,
// and lets readers follow a log live while it is written.
package steplog

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// FlushEvery is how long a written line may wait in memory before it reaches the file and
// followers. A line is acknowledged, and survives the server being killed, once flushed.
const FlushEvery = 50 * time.Millisecond

// Store is a folder of step logs: DIR/<run id>/<step file>.log.
type Store struct {
	dir  string
	mu   sync.Mutex
	live map[string]*Writer // by path
}

// New keeps logs under dir.
func New(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create log folder: %w", err)
	}
	return &Store{dir: dir, live: map[string]*Writer{}}, nil
}

// path names a step's log file; steps are named by their position in the run's graph,
// which is stable and free of characters file systems dislike.
func (s *Store) path(runID int64, position int) string {
	return filepath.Join(s.dir, strconv.FormatInt(runID, 10), strconv.Itoa(position)+".log")
}

// Writer appends one step's log. It is safe for concurrent use.
type Writer struct {
	s     *Store
	path  string
	mu    sync.Mutex
	f     *os.File
	buf   *bufio.Writer
	dirty bool
	err   error
	grown chan struct{} // closed and replaced whenever data reaches the file
	done  bool
	stop  chan struct{}
}

// Create starts (or, for a retried step, continues) the log of a step.
func (s *Store) Create(runID int64, position int) (*Writer, error) {
	path := s.path(runID, position)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create log folder: %w", err)
	}
	// Create the file and register its writer under one lock: a follower that sees the
	// file must also see that it is still being written.
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	w := &Writer{s: s, path: path, f: f, buf: bufio.NewWriterSize(f, 64<<10), grown: make(chan struct{}), stop: make(chan struct{})}
	s.live[path] = w
	go w.flusher()
	return w, nil
}

// WriteLine appends one line; a newline is added.
func (w *Writer) WriteLine(line string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done || w.err != nil {
		return
	}
	w.buf.WriteString(line)
	if err := w.buf.WriteByte('\n'); err != nil {
		w.err = err
	}
	w.dirty = true
}

func (w *Writer) flusher() {
	t := time.NewTicker(FlushEvery)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			w.mu.Lock()
			w.flushLocked()
			w.mu.Unlock()
		}
	}
}

func (w *Writer) flushLocked() {
	if !w.dirty {
		return
	}
	if err := w.buf.Flush(); err != nil && w.err == nil {
		w.err = err
	}
	w.dirty = false
	close(w.grown)
	w.grown = make(chan struct{})
}

// Close flushes the log, syncs it to disk and tells followers it is complete.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.done {
		w.mu.Unlock()
		return nil
	}
	w.flushLocked()
	w.done = true
	close(w.stop)
	err := errors.Join(w.err, w.f.Sync(), w.f.Close())
	close(w.grown)
	w.mu.Unlock()
	w.s.mu.Lock()
	if w.s.live[w.path] == w {
		delete(w.s.live, w.path)
	}
	w.s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("write log %s: %w", w.path, err)
	}
	return nil
}

// state returns a channel closed when the log grows or completes, and whether it is complete.
func (w *Writer) state() (<-chan struct{}, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.grown, w.done
}

// Follow copies the step's log to out: everything written so far and, while the step
// is still writing it, every line as it is flushed, until the log is closed or ctx ends.
// A log that was never written copies nothing. flush, when not nil, is called after each
// chunk so HTTP responses stream.
func (s *Store) Follow(ctx context.Context, runID int64, position int, follow bool, out io.Writer, flush func()) error {
	path := s.path(runID, position)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		if !follow {
			return nil
		}
		// The step may not have started yet: wait for its writer to appear.
		for {
			s.mu.Lock()
			_, started := s.live[path]
			s.mu.Unlock()
			if started {
				break
			}
			if _, err := os.Stat(path); err == nil {
				break
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(FlushEvery):
			}
		}
		if f, err = os.Open(path); err != nil {
			return fmt.Errorf("open log: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	defer f.Close()
	for {
		s.mu.Lock()
		w := s.live[path]
		s.mu.Unlock()
		var grown <-chan struct{}
		done := true
		if w != nil {
			grown, done = w.state()
		}
		if _, err := io.Copy(out, f); err != nil {
			return fmt.Errorf("copy log: %w", err)
		}
		if flush != nil {
			flush()
		}
		if done || !follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-grown:
		}
	}
}
