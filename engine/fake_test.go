package engine

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-cd/drover/pipeline"
)

// fakeBackend runs a tiny script language instead of a shell, so engine tests control
// timing and outcomes exactly. A script is commands separated by ";":
//
//	echo TEXT   print a line
//	sleep D     wait D (a Go duration), or until ctx is done
//	block       wait until ctx is done
//	exit N      finish with exit code N
//	flaky N     fail (exit 1) on the first N attempts, then succeed
//	env NAME    print NAME=value from the environment
//	write F T   write text T to workspace file F
//	self        print the image "image: self" names
//
// A build: step "pushes" its image: it reports REPO@sha256:pushed for its ImageRef, then,
// with the tag "block", waits until ctx is done.
type fakeBackend struct {
	mu      sync.Mutex
	running int
	peak    int
	spans   map[string][2]time.Time // step -> start, end of its last attempt
	writeFn func(name, text string) error
}

func newFake() *fakeBackend { return &fakeBackend{spans: map[string][2]time.Time{}} }

func (f *fakeBackend) Exec(ctx context.Context, spec *Spec, out io.Writer) (int, error) {
	f.mu.Lock()
	f.running++
	f.peak = max(f.peak, f.running)
	start := time.Now()
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.running--
		f.spans[spec.Name] = [2]time.Time{start, time.Now()}
		f.mu.Unlock()
	}()
	if spec.Step.Build != nil {
		repo, _, _ := strings.Cut(spec.ImageRef, ":")
		spec.Built(repo + "@sha256:pushed")
		if slices.Contains(spec.Step.Build.Tags, "block") { // pushed, then cancelled
			<-ctx.Done()
			return 143, context.Cause(ctx)
		}
		return 0, nil
	}
	env := map[string]string{}
	for _, kv := range spec.Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	for _, cmd := range strings.Split(spec.Script, ";") {
		word, arg, _ := strings.Cut(strings.TrimSpace(cmd), " ")
		switch word {
		case "echo":
			fmt.Fprintln(out, arg)
		case "self":
			fmt.Fprintln(out, spec.Self)
		case "env":
			fmt.Fprintf(out, "%s=%s\n", arg, env[arg])
		case "sleep", "block":
			d := time.Hour
			if word == "sleep" {
				d, _ = time.ParseDuration(arg)
			}
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return 143, context.Cause(ctx)
			}
		case "exit":
			var code int
			fmt.Sscan(arg, &code)
			return code, nil
		case "flaky":
			var n int
			fmt.Sscan(arg, &n)
			if spec.Attempt <= n {
				return 1, nil
			}
		case "write":
			name, text, _ := strings.Cut(arg, " ")
			if err := f.writeFn(name, text); err != nil {
				return -1, err
			}
		case "":
		default:
			return -1, fmt.Errorf("fake backend: unknown command %q", strings.TrimSpace(cmd))
		}
	}
	return 0, nil
}

// recorder is a Sink that keeps every event.
type recorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *recorder) Handle(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

// logs returns the lines a step printed.
func (r *recorder) logs(step string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		if e.Type == StepLog && e.Step == step {
			out = append(out, e.Line)
		}
	}
	return out
}

func (r *recorder) notes(step string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		if e.Type == StepNote && e.Step == step {
			out = append(out, e.Line)
		}
	}
	return strings.Join(out, "\n")
}

// compile parses a pipeline written in a test.
func compile(t *testing.T, yml string) *pipeline.Graph {
	t.Helper()
	p, err := pipeline.Parse("drover.yml", []byte(yml))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	g, err := pipeline.Compile(p)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return g
}

// result finds a step's result by name.
func result(t *testing.T, res *RunResult, name string) *StepResult {
	t.Helper()
	for _, s := range res.Steps {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no step %q in the result", name)
	return nil
}

// statuses renders every step's status, for compact assertions.
func statuses(res *RunResult) string {
	var parts []string
	for _, s := range res.Steps {
		parts = append(parts, s.Name+"="+string(s.Status))
	}
	return strings.Join(parts, " ")
}
