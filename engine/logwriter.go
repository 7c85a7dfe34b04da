package engine

import "bytes"

// maxLine is the longest line passed on in one event; longer output without a newline is
// cut into pieces of this size so a step printing no newlines cannot exhaust memory.
const maxLine = 64 << 10

// lineWriter splits a step's output into lines and passes each on as a StepLog event.
type lineWriter struct {
	emit    func(line string)
	pending []byte
}

// Write passes on every complete line in p and keeps the rest for the next call.
func (w *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	if len(w.pending) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.pending = append(w.pending, p...)
			w.cut()
			return n, nil
		}
		w.pending = append(w.pending, p[:i]...)
		w.line(w.pending)
		w.pending = w.pending[:0]
		p = p[i+1:]
	}
	for {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			break
		}
		w.line(p[:i])
		p = p[i+1:]
	}
	w.pending = append(w.pending, p...)
	w.cut()
	return n, nil
}

func (w *lineWriter) cut() {
	for len(w.pending) >= maxLine {
		w.line(w.pending[:maxLine])
		w.pending = append(w.pending[:0], w.pending[maxLine:]...)
	}
}

func (w *lineWriter) line(b []byte) {
	w.emit(string(bytes.TrimSuffix(b, []byte{'\r'})))
}

// Flush passes on a last line that had no newline.
func (w *lineWriter) Flush() {
	if len(w.pending) > 0 {
		w.line(w.pending)
		w.pending = w.pending[:0]
	}
}
