package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/drover-cd/drover/mask"
	"github.com/drover-cd/drover/pipeline"
)

// SecretRequest is what Job.Secrets gets for a step that asks for secrets:.
type SecretRequest struct {
	Step  string   // the step's node name
	Names []string // the secrets it asks for, as written
	// Environment is the step's environment: (e.g. "ephemeral"); "" for none.
	Environment string
}

// secrets resolves the secrets n asks for, as KEY=VALUE, and from then on hides their
// values in everything the run reports. A step that asks for none gets nil.
func (r *run) secrets(ctx context.Context, n *pipeline.Node) ([]string, error) {
	names := n.Step.Secrets
	if len(names) == 0 {
		return nil, nil
	}
	if r.job.Secrets == nil {
		return nil, fmt.Errorf("step %q asks for secrets (%s), which need a server", n.Name, strings.Join(names, ", "))
	}
	vars, err := r.job.Secrets(ctx, SecretRequest{Step: n.Name, Names: names, Environment: n.Step.Environment})
	if err != nil {
		return nil, err
	}
	if len(vars) != len(names) {
		return nil, errors.New("the server returned the wrong number of secrets") // a bug, not the user's
	}
	values := make([]string, len(vars))
	for i, kv := range vars {
		_, values[i], _ = strings.Cut(kv, "=")
	}
	r.hide(values)
	return vars, nil
}

// hide adds values to what the run masks: the output of every step that starts from
// now on, and every note, reason and result the run reports.
func (r *run) hide(values []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hidden = append(r.hidden, values...)
	r.masker = mask.New(r.hidden)
}

// output is where an attempt's output goes: through a masker of every secret the run
// has handed out so far, also those handed to a step that started after this one (a
// step may print what another wrote to the workspace). flush writes what the masker
// holds back; call it once the attempt's output has ended.
func (r *run) output(out io.Writer) (w io.Writer, flush func()) {
	mo := &maskedOutput{r: r, out: out}
	return mo, func() { mo.flush() }
}

// maskedOutput is an attempt's output, masked with the run's masker as it stands at
// each write.
type maskedOutput struct {
	r   *run
	out io.Writer
	m   *mask.Masker // the masker mw was made with
	mw  *mask.Writer // nil while the run hides nothing
}

func (o *maskedOutput) Write(p []byte) (int, error) {
	o.r.mu.Lock()
	m := o.r.masker
	o.r.mu.Unlock()
	if m != o.m { // a step was handed secrets since the last write
		o.flush()
		o.m, o.mw = m, nil
		if !m.Empty() {
			o.mw = m.Writer(o.out)
		}
	}
	if o.mw == nil {
		return o.out.Write(p)
	}
	return o.mw.Write(p)
}

func (o *maskedOutput) flush() {
	if o.mw != nil {
		_ = o.mw.Flush()
	}
}

// maskEvent hides secrets in what ev carries, but for a step's output lines that came
// through output, masked already. It runs under r.mu.
func (r *run) maskEvent(ev *Event) {
	m := r.masker
	if m.Empty() || ev.masked {
		return
	}
	ev.Line = m.String(ev.Line)
	if ev.Result != nil {
		ev.Result.Reason = m.String(ev.Result.Reason)
		if r := ev.Result.Reports; r != nil && r.Tests != nil {
			for i := range r.Tests.Failures { // a test's failure may print what it was given
				f := &r.Tests.Failures[i]
				f.Suite, f.Class, f.Name = m.String(f.Suite), m.String(f.Class), m.String(f.Name)
				f.Message, f.Detail = m.String(f.Message), m.String(f.Detail)
			}
		}
	}
	if ev.Run != nil {
		ev.Run.Reason = m.String(ev.Run.Reason)
		for _, s := range ev.Run.Steps {
			s.Reason = m.String(s.Reason)
		}
	}
}

// hiddenNow is a copy of the values the run masks so far.
func (r *run) hiddenNow() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.hidden)
}
