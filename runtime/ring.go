package runtime

import (
	"bytes"
	"sync"
)

// maxLine bounds one kept line; the rest of a longer line is dropped, so an instance
// printing without newlines cannot grow the tail without end.
const maxLine = 4 << 10

// Ring keeps the last lines written to it. It is safe for concurrent use.
type Ring struct {
	mu      sync.Mutex
	lines   []string // circular once full
	next    int      // where the next line goes once full
	partial []byte   // the line being written, not yet ended by '\n'
}

func NewRing(size int) *Ring { return &Ring{lines: make([]string, 0, size)} }

// Write splits p into lines; it never fails.
func (r *Ring) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		line, rest, ended := bytes.Cut(p, []byte{'\n'})
		if room := maxLine - len(r.partial); room > 0 {
			r.partial = append(r.partial, line[:min(len(line), room)]...)
		}
		if !ended {
			break
		}
		r.add(string(bytes.TrimSuffix(r.partial, []byte{'\r'})))
		r.partial = r.partial[:0]
		p = rest
	}
	return n, nil
}

func (r *Ring) add(line string) {
	if len(r.lines) < cap(r.lines) {
		r.lines = append(r.lines, line)
		return
	}
	r.lines[r.next] = line
	r.next = (r.next + 1) % len(r.lines)
}

// tail returns up to the last n lines, oldest first, with an unfinished last line.
func (r *Ring) Tail(n int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	all := make([]string, 0, len(r.lines)+1)
	all = append(all, r.lines[r.next:]...)
	all = append(all, r.lines[:r.next]...)
	if len(r.partial) > 0 {
		all = append(all, string(r.partial))
	}
	if n <= 0 {
		return nil
	}
	if n < len(all) {
		all = all[len(all)-n:]
	}
	return all
}
