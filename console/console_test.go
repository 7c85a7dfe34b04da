package console

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/drover-cd/drover/engine"
	"github.com/drover-cd/drover/pipeline"
)

// syncBuffer is a bytes.Buffer the printer's flusher and the test may use at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var ansi = regexp.MustCompile(`\x1b\[[0-9;]*m`)

func node(name, run string) *pipeline.Node {
	return &pipeline.Node{Name: name, Step: &pipeline.Step{Name: name, Run: run}}
}

// printAll feeds events to a new printer, closes it and returns what it wrote.
func printAll(t *testing.T, color bool, events ...engine.Event) string {
	t.Helper()
	var out syncBuffer
	p := NewPrinter(&out, color)
	for _, e := range events {
		p.Handle(e)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return out.String()
}

func lines(s string) []string {
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

func checkLines(t *testing.T, got string, want []string) {
	t.Helper()
	g := lines(got)
	if strings.Join(g, "\n") == strings.Join(want, "\n") {
		return
	}
	t.Errorf("output has %d lines, want %d", len(g), len(want))
	for i := range max(len(g), len(want)) {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(want) {
			wl = want[i]
		}
		mark := "  "
		if gl != wl {
			mark = "≠ "
		}
		t.Logf("%s got  %q\n   want %q", mark, gl, wl)
	}
}

func TestPrinterEchoesScriptAndLogs(t *testing.T) {
	const matrix = "test (GOARCH=arm64)" // the longest name: 19 characters
	nodes := []*pipeline.Node{node("build", "echo a\necho b\n"), node(matrix, "go test ./...")}
	got := printAll(t, false,
		engine.Event{Type: engine.RunStarted, Nodes: nodes},
		engine.Event{Type: engine.StepStarted, Step: "build", Attempt: 1},
		engine.Event{Type: engine.StepStarted, Step: matrix, Attempt: 1},
		engine.Event{Type: engine.StepLog, Step: "build", Attempt: 1, Line: "a"},
		engine.Event{Type: engine.StepLog, Step: matrix, Attempt: 1, Line: "=== RUN   TestA"},
		engine.Event{Type: engine.StepLog, Step: "build", Attempt: 1, Line: "b"},
		engine.Event{Type: engine.StepNote, Step: matrix, Attempt: 1, Line: "attempt 1 failed; retrying"},
		// A retry does not echo the script again.
		engine.Event{Type: engine.StepStarted, Step: matrix, Attempt: 2},
		engine.Event{Type: engine.StepLog, Step: matrix, Attempt: 2, Line: "  indented | with a bar"},
	)
	checkLines(t, got, []string{
		"build               | $ echo a",
		"build               | $ echo b",
		"test (GOARCH=arm64) | $ go test ./...",
		"build               | a",
		"test (GOARCH=arm64) | === RUN   TestA",
		"build               | b",
		"test (GOARCH=arm64) | drover: attempt 1 failed; retrying",
		"test (GOARCH=arm64) |   indented | with a bar",
	})
}

func TestPrinterCutsLongNames(t *testing.T) {
	const long = "integration (GOOS=linux, GOARCH=arm64)"
	got := printAll(t, false,
		engine.Event{Type: engine.RunStarted, Nodes: []*pipeline.Node{node("short", "true"), node(long, "true")}},
		engine.Event{Type: engine.StepLog, Step: long, Attempt: 1, Line: "hello"},
		engine.Event{Type: engine.StepLog, Step: "short", Attempt: 1, Line: "world"},
	)
	// The name column is capped at 28 characters; a longer name keeps 27 and an ellipsis.
	checkLines(t, got, []string{
		"integration (GOOS=linux, GO… | hello",
		"short                        | world",
	})
}

func TestPrinterCutsNonASCIINames(t *testing.T) {
	// 12 bytes of ASCII, then two-byte runes: cutting at a byte count splits a rune.
	long := "build (LANG=" + strings.Repeat("é", 20) + ")"
	got := printAll(t, false,
		engine.Event{Type: engine.RunStarted, Nodes: []*pipeline.Node{node("short", "true"), node(long, "true")}},
		engine.Event{Type: engine.StepLog, Step: long, Attempt: 1, Line: "hello"},
		engine.Event{Type: engine.StepLog, Step: "short", Attempt: 1, Line: "world"},
	)
	if !utf8.ValidString(got) {
		t.Errorf("output is not valid UTF-8: %q", got)
	}
	for _, l := range lines(got) {
		name, _, ok := strings.Cut(l, " | ")
		if !ok {
			t.Fatalf("line %q has no name column", l)
		}
		if n := utf8.RuneCountInString(name); n > maxPrefix {
			t.Errorf("name column %q is %d characters, want at most %d", name, n, maxPrefix)
		}
		if strings.HasPrefix(l, "build") && !strings.HasSuffix(strings.TrimRight(name, " "), "…") {
			t.Errorf("long name %q not cut with an ellipsis", name)
		}
	}
}

func TestPrinterStepFinished(t *testing.T) {
	start := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	tests := []struct {
		name   string
		result engine.StepResult
		want   string
	}{
		{
			name:   "success",
			result: engine.StepResult{Status: engine.Success, Started: start, Finished: start.Add(1500 * time.Millisecond)},
			want:   "unit | ✓ success in 1.5s",
		},
		{
			name:   "failure",
			result: engine.StepResult{Status: engine.Failure, Reason: "exit code 2", ExitCode: 2, Started: start, Finished: start.Add(2 * time.Second)},
			want:   "unit | ✗ failure: exit code 2 after 2s",
		},
		{
			name:   "allowed failure",
			result: engine.StepResult{Status: engine.Failure, Allowed: true, Reason: "exit code 1", ExitCode: 1, Started: start, Finished: start.Add(250 * time.Millisecond)},
			want:   "unit | ✗ failure (allowed): exit code 1 after 250ms",
		},
		{
			name:   "skipped",
			result: engine.StepResult{Status: engine.Skipped, Reason: "a step it needs failed"},
			want:   "unit | skipped: a step it needs failed",
		},
		{
			name:   "cancelled",
			result: engine.StepResult{Status: engine.Cancelled, Reason: "run cancelled", Started: start, Finished: start.Add(61234 * time.Millisecond)},
			want:   "unit | ✗ cancelled: run cancelled after 1m1.23s",
		},
		{
			name:   "error without a reason",
			result: engine.StepResult{Status: engine.Errored, Started: start, Finished: start.Add(1500 * time.Microsecond)},
			want:   "unit | ✗ error after 2ms",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.result
			r.Name = "unit"
			got := printAll(t, false,
				engine.Event{Type: engine.RunStarted, Nodes: []*pipeline.Node{node("unit", "make")}},
				engine.Event{Type: engine.StepFinished, Step: "unit", Result: &r},
			)
			checkLines(t, got, []string{tt.want})
		})
	}
}

func TestPrinterColor(t *testing.T) {
	start := time.Now()
	events := []engine.Event{
		{Type: engine.RunStarted, Nodes: []*pipeline.Node{node("build", "echo a"), node("lint", "vet")}},
		{Type: engine.StepStarted, Step: "build", Attempt: 1},
		{Type: engine.StepLog, Step: "lint", Attempt: 1, Line: "ok"},
		{Type: engine.StepNote, Step: "lint", Attempt: 1, Line: "note"},
		{Type: engine.StepFinished, Step: "build", Result: &engine.StepResult{
			Name: "build", Status: engine.Success, Started: start, Finished: start.Add(time.Second)}},
		{Type: engine.StepFinished, Step: "lint", Result: &engine.StepResult{
			Name: "lint", Status: engine.Failure, Reason: "exit code 1", Started: start, Finished: start.Add(time.Second)}},
	}

	plain := printAll(t, false, events...)
	if strings.Contains(plain, "\x1b") {
		t.Errorf("color=false output has escape codes: %q", plain)
	}

	colored := printAll(t, true, events...)
	if got := ansi.ReplaceAllString(colored, ""); got != plain {
		t.Errorf("color=true output without its colour codes differs from color=false:\n got %q\nwant %q", got, plain)
	}
	// Each step's name and bar in its own colour; the script and notes dimmed; the
	// outcome green or red.
	for _, want := range []string{
		"\x1b[36mbuild\x1b[0m\x1b[36m | \x1b[0m\x1b[2m$ echo a\x1b[0m\n",
		"\x1b[35mlint\x1b[0m \x1b[35m | \x1b[0mok\n",
		"\x1b[35mlint\x1b[0m \x1b[35m | \x1b[0m\x1b[2mdrover: note\x1b[0m\n",
		"\x1b[32m✓ success in 1s\x1b[0m\n",
		"\x1b[31m✗ failure: exit code 1 after 1s\x1b[0m\n",
	} {
		if !strings.Contains(colored, want) {
			t.Errorf("color=true output lacks %q:\n%q", want, colored)
		}
	}
}

func TestPrinterFprintlnInOrder(t *testing.T) {
	var out syncBuffer
	p := NewPrinter(&out, false)
	p.Handle(engine.Event{Type: engine.RunStarted, Nodes: []*pipeline.Node{node("a", "true")}})
	p.Handle(engine.Event{Type: engine.StepLog, Step: "a", Attempt: 1, Line: "one"})
	p.Fprintln("drover:", "between", 2)
	p.Handle(engine.Event{Type: engine.StepLog, Step: "a", Attempt: 1, Line: "three"})
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	checkLines(t, out.String(), []string{"a | one", "drover: between 2", "a | three"})
}

func TestPrinterCloseFlushes(t *testing.T) {
	var out syncBuffer
	p := NewPrinter(&out, false)
	p.Handle(engine.Event{Type: engine.RunStarted, Nodes: []*pipeline.Node{node("a", "true")}})
	const n = 5000 // more than the 64 KiB buffer holds
	for i := range n {
		p.Handle(engine.Event{Type: engine.StepLog, Step: "a", Attempt: 1, Line: strings.Repeat("x", i%40)})
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	got := lines(out.String())
	if len(got) != n {
		t.Fatalf("%d lines after Close, want %d", len(got), n)
	}
	for i, l := range got {
		if want := "a | " + strings.Repeat("x", i%40); l != want {
			t.Fatalf("line %d = %q, want %q", i, l, want)
		}
	}
}

func TestPrinterFlushesWithoutClose(t *testing.T) {
	var out syncBuffer
	p := NewPrinter(&out, false)
	defer p.Close()
	p.Handle(engine.Event{Type: engine.RunStarted, Nodes: []*pipeline.Node{node("a", "true")}})
	p.Handle(engine.Event{Type: engine.StepLog, Step: "a", Attempt: 1, Line: "still running"})

	deadline := time.Now().Add(4 * FlushEvery)
	for !strings.Contains(out.String(), "a | still running\n") {
		if time.Now().After(deadline) {
			t.Fatalf("a step's line not written within %s: output %q", 4*FlushEvery, out.String())
		}
		time.Sleep(FlushEvery / 10)
	}
}

func TestPrinterRunFinishedFlushes(t *testing.T) {
	var out syncBuffer
	p := NewPrinter(&out, false)
	defer p.Close()
	p.Handle(engine.Event{Type: engine.RunStarted, Nodes: []*pipeline.Node{node("a", "true")}})
	p.Handle(engine.Event{Type: engine.StepLog, Step: "a", Attempt: 1, Line: "last words"})
	p.Handle(engine.Event{Type: engine.RunFinished, Run: &engine.RunResult{Status: engine.Success}})
	// No waiting: the summary printed next must not overtake the steps' output.
	if got := out.String(); got != "a | last words\n" {
		t.Errorf("output right after RunFinished = %q, want the step's line", got)
	}
}

func TestIsTerminal(t *testing.T) {
	regular, err := os.Create(filepath.Join(t.TempDir(), "out.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer regular.Close()
	// The master side of a pseudo-terminal is a terminal.
	tty, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		tty = nil
	} else {
		defer tty.Close()
	}

	tests := []struct {
		name    string
		noColor *string // nil: unset
		term    string
		tty     bool
		want    bool
	}{
		{name: "regular file", term: "xterm-256color", want: false},
		{name: "regular file, NO_COLOR", noColor: ptr("1"), term: "xterm-256color", want: false},
		{name: "terminal", tty: true, term: "xterm-256color", want: true},
		{name: "terminal, NO_COLOR", tty: true, noColor: ptr("1"), term: "xterm-256color", want: false},
		{name: "terminal, NO_COLOR empty", tty: true, noColor: ptr(""), term: "xterm-256color", want: true},
		{name: "terminal, TERM=dumb", tty: true, term: "dumb", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := regular
			if tt.tty {
				if tty == nil {
					t.Skip("no /dev/ptmx to open")
				}
				f = tty
			}
			t.Setenv("TERM", tt.term)
			t.Setenv("NO_COLOR", "")
			if tt.noColor == nil {
				os.Unsetenv("NO_COLOR")
			} else {
				t.Setenv("NO_COLOR", *tt.noColor)
			}
			if got := IsTerminal(f); got != tt.want {
				t.Errorf("IsTerminal = %v, want %v", got, tt.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
