// Package console shows a run in a terminal: every line a step prints, prefixed with the
// step's name (in colour on a terminal), Drover's remarks, and a summary table at the end.
package console

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/drover-cd/drover/engine"
	"github.com/drover-cd/drover/pipeline"
)

var _ engine.Sink = (*Printer)(nil)

const (
	reset  = "\x1b[0m"
	dim    = "\x1b[2m"
	red    = "\x1b[31m"
	green  = "\x1b[32m"
	yellow = "\x1b[33m"
)

// palette colours step names; chosen to be readable on dark and light backgrounds.
var palette = []string{"\x1b[36m", "\x1b[35m", "\x1b[34m", "\x1b[33m", "\x1b[32m", "\x1b[96m", "\x1b[95m", "\x1b[94m"}

// maxPrefix caps the width of the name column so long matrix names don't eat the line.
const maxPrefix = 28

// Printer is an engine.Sink that writes to a terminal or a pipe. Output is buffered and
// flushed at least every FlushEvery, so a chatty step does not cost a write per line.
type Printer struct {
	mu     sync.Mutex
	out    *bufio.Writer
	color  bool
	width  int
	colors map[string]string
	nodes  map[string]*pipeline.Node
	stop   chan struct{}
	done   chan struct{}
	closed sync.Once
}

// FlushEvery is how stale buffered output may get.
const FlushEvery = 50 * time.Millisecond

// IsTerminal reports whether f is a terminal and colour is wanted (NO_COLOR unset,
// https://no-color.org, and TERM not dumb).
func IsTerminal(f *os.File) bool {
	if os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	return term.IsTerminal(int(f.Fd()))
}

// NewPrinter writes to w, in colour when color is set. Close it to flush.
func NewPrinter(w io.Writer, color bool) *Printer {
	p := &Printer{
		out:    bufio.NewWriterSize(w, 64<<10),
		color:  color,
		colors: map[string]string{},
		nodes:  map[string]*pipeline.Node{},
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	go p.flusher()
	return p
}

func (p *Printer) flusher() {
	defer close(p.done)
	t := time.NewTicker(FlushEvery)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.mu.Lock()
			_ = p.out.Flush()
			p.mu.Unlock()
		}
	}
}

// Close flushes and stops the background flusher. Closing twice is harmless.
func (p *Printer) Close() error {
	p.closed.Do(func() { close(p.stop) })
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Flush()
}

// Handle prints one event.
func (p *Printer) Handle(e engine.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch e.Type {
	case engine.RunStarted:
		for i, n := range e.Nodes {
			p.colors[n.Name] = palette[i%len(palette)]
			p.nodes[n.Name] = n
			p.width = min(max(p.width, utf8.RuneCountInString(n.Name)), maxPrefix)
		}
	case engine.StepStarted:
		// Echo the script, as GitLab and Woodpecker do, so the log reads on its own.
		if n := p.nodes[e.Step]; n != nil && e.Attempt == 1 {
			for _, line := range strings.Split(strings.TrimRight(n.Step.Run, "\n"), "\n") {
				p.line(e.Step, p.paint(dim, "$ "+line))
			}
		}
	case engine.StepLog:
		p.line(e.Step, e.Line)
	case engine.StepNote:
		p.line(e.Step, p.paint(dim, "drover: "+e.Line))
	case engine.StepFinished:
		r := e.Result
		switch r.Status {
		case engine.Skipped:
			p.line(e.Step, p.paint(yellow, "skipped: "+r.Reason))
		case engine.Success:
			p.line(e.Step, p.paint(green, "✓ success in "+round(r.Duration())))
		default:
			msg := string(r.Status)
			if r.Allowed {
				msg += " (allowed)"
			}
			if r.Reason != "" {
				msg += ": " + r.Reason
			}
			p.line(e.Step, p.paint(red, "✗ "+msg+" after "+round(r.Duration())))
		}
	case engine.RunFinished:
		_ = p.out.Flush()
	}
}

func (p *Printer) line(step, text string) {
	if step == "" {
		p.out.WriteString(text)
		p.out.WriteByte('\n')
		return
	}
	// Widths count runes, and cuts fall between them, so names stay valid UTF-8.
	name := []rune(step)
	width := max(p.width, 1)
	if len(name) > width {
		name = append(name[:width-1], '…')
	}
	p.out.WriteString(p.paint(p.colors[step], string(name)))
	p.out.WriteString(strings.Repeat(" ", width-len(name)))
	p.out.WriteString(p.paint(p.colors[step], " | "))
	p.out.WriteString(text)
	p.out.WriteByte('\n')
}

func (p *Printer) paint(code, s string) string {
	if !p.color || code == "" {
		return s
	}
	return code + s + reset
}

func round(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return d.String()
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	}
	return d.Round(10 * time.Millisecond).String()
}

// Fprintln writes a line outside any step, in order with the steps' output.
func (p *Printer) Fprintln(args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintln(p.out, args...)
}
