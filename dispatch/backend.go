package dispatch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/drover-cd/drover/engine"
	"github.com/drover-cd/drover/pipeline"
	"github.com/drover-cd/drover/store"
)

// Run is what the dispatcher needs to know of a run whose steps go to agents.
type Run struct {
	ID         int64 // the store's
	Project    string
	Commit     string
	Repository string // the project's registry repository, where artifacts go
	// Seed copies layers an agent pushed to Repository into the run's artifact store.
	Seed func(ctx context.Context, layers []ocispec.Descriptor) error
}

// workspace names the folder on the agent a lease's step runs in: the run's own for a
// step in the run's home workspace, one of the lease's own otherwise. Stable across
// restarts of the server.
func (r Run) workspace(l *store.Lease) string {
	if l.Home {
		return fmt.Sprintf("run-%d", r.ID)
	}
	return fmt.Sprintf("run-%d-lease-%d", r.ID, l.ID)
}

// Backend is the engine.Backend of one run whose compute steps go to agents.
func (d *Dispatcher) Backend(run Run) engine.Backend { return &runBackend{d: d, run: run} }

var (
	_ engine.Backend   = (*runBackend)(nil)
	_ engine.RunEnder  = (*runBackend)(nil)
	_ engine.Supporter = (*runBackend)(nil)
)

type runBackend struct {
	d   *Dispatcher
	run Run
}

// stopGrace is how long an agent gets to report a step it was told to stop.
const stopGrace = 15 * time.Second

// Supports accepts every compute step: which agent can run it is the agents' business
// (labels), and one that cannot says so in the step's result.
func (b *runBackend) Supports(*pipeline.Step) error { return nil }

// Exec queues the attempt for an agent, or takes up the lease it had before the
// server restarted, and waits for its result. See engine.Backend.
func (b *runBackend) Exec(ctx context.Context, spec *engine.Spec, out io.Writer) (int, error) {
	d := b.d
	t := d.takeUp(b, spec, out)
	if t == nil {
		t = &task{run: b, spec: spec, labels: spec.Step.Agent, queued: d.cfg.Now(), out: out, done: make(chan result, 1), inQueue: true}
		d.mu.Lock()
		d.queue = append(d.queue, t)
		d.pokeIdle()
		d.mu.Unlock()
	}
	said := ""
	why := time.NewTimer(time.Second)
	defer why.Stop()
	for {
		select {
		case r := <-t.done:
			return b.result(ctx, t, spec, r)
		case <-why.C:
			w := d.whyWaiting(t)
			if w != "" && w != said {
				said = w
				t.write("drover: " + w + "\n")
			}
			if w != "" {
				why.Reset(2 * time.Second) // while it waits: it may have to say something else
			}
		case <-ctx.Done():
			return b.stop(ctx, t)
		}
	}
}

// takeUp finds the lease of spec's step that outlived a restart of the server and
// makes it t's; nil when there is none.
func (d *Dispatcher) takeUp(b *runBackend, spec *engine.Spec, out io.Writer) *task {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, t := range d.active {
		if t.run == nil && t.lease.RunID == b.run.ID && t.lease.Step == spec.Name {
			t.run, t.spec, t.out, t.labels = b, spec, out, spec.Step.Agent
			spec.Attempt = t.lease.Attempt
			d.place(spec.Run, t.agent, b.run.workspace(t.lease))
			return t
		}
	}
	return nil
}

// result turns how the attempt ended into what the engine expects.
func (b *runBackend) result(ctx context.Context, t *task, spec *engine.Spec, r result) (int, error) {
	switch {
	case r.lost:
		return -1, &engine.LostError{Agent: t.agent, Reason: r.reason}
	case r.done == nil:
		return -1, errors.New(r.reason)
	}
	done := r.done
	spec.Far = &engine.Far{Agent: t.agent, Reports: done.Reports, ReportWarnings: done.ReportWarnings, ReportError: done.ReportError,
		Artifacts: done.Artifacts, ArtifactError: done.ArtifactError, ArtifactMissing: done.ArtifactMissing}
	if len(done.Artifacts) > 0 && done.ArtifactError == "" {
		if err := b.run.Seed(ctx, done.Artifacts); err != nil {
			spec.Far.ArtifactError = "take the artifacts the agent pushed: " + err.Error()
		}
	}
	if done.Built != "" {
		// Only an image of the run's own repository: the release will name it.
		repo, _, _ := strings.Cut(spec.ImageRef, ":")
		if spec.ImageRef == "" || !strings.HasPrefix(done.Built, repo+"@sha256:") {
			return -1, fmt.Errorf("agent %s reported the image %q, not one of %s", t.agent, done.Built, repo)
		}
		if spec.Built != nil {
			spec.Built(done.Built)
		}
	}
	if done.Error != "" {
		return done.ExitCode, fmt.Errorf("on agent %s: %s", t.agent, done.Error)
	}
	return done.ExitCode, nil
}

// stop ends an attempt whose run was cancelled or whose step timed out: a queued one
// leaves the queue; a leased one's agent is told to stop it and given stopGrace to say
// it did.
func (b *runBackend) stop(ctx context.Context, t *task) (int, error) {
	d := b.d
	cause := context.Cause(ctx)
	d.mu.Lock()
	if t.inQueue {
		d.queue = slices.DeleteFunc(d.queue, func(q *task) bool { return q == t })
		t.inQueue = false
		d.mu.Unlock()
		return -1, cause
	}
	if d.stopping.Err() != nil {
		// The server stops: the step goes on on its agent, and the next server takes
		// the lease up.
		d.mu.Unlock()
		return -1, cause
	}
	t.stop = true
	if a := d.agents[t.agent]; a != nil {
		a.poke()
	}
	d.mu.Unlock()
	select {
	case <-t.done:
	case <-time.After(stopGrace):
		d.mu.Lock()
		leased := t.lease != nil // not yet, when its lease is still being recorded
		d.mu.Unlock()
		if leased {
			d.end(context.WithoutCancel(ctx), t, store.LeaseEnded, "stopped: "+engine.CancelReason(ctx))
		}
	}
	return -1, cause
}

// place records that run (its job ID) has a workspace on agent, for EndRun to have
// removed. Called with d.mu held.
func (d *Dispatcher) place(run, agent, workspace string) {
	places := d.places[run]
	if places == nil {
		places = map[string][]string{}
		d.places[run] = places
	}
	if !slices.Contains(places[agent], workspace) {
		places[agent] = append(places[agent], workspace)
	}
}

// EndRun tells the agents that ran the run's steps to remove its workspaces.
func (b *runBackend) EndRun(_ context.Context, run string) {
	d := b.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopping.Err() != nil {
		return // the server stops, not the run: its workspaces are the next server's
	}
	for _, t := range d.active {
		if t.lease.RunID == b.run.ID {
			return // a step of it still runs somewhere (given up, not yet confirmed)
		}
	}
	for agent, workspaces := range d.places[run] {
		d.forget[agent] = append(d.forget[agent], workspaces...)
		if a := d.agents[agent]; a != nil {
			a.poke()
		}
	}
	delete(d.places, run)
	delete(d.homes, b.run.ID)
}

// write adds text to the attempt's log.
func (t *task) write(text string) {
	t.outMu.Lock()
	defer t.outMu.Unlock()
	if t.out != nil {
		_, _ = io.WriteString(t.out, text)
	}
}

// whyWaiting says why a queued attempt has no agent yet; "" when it is leased or has
// waited less than a second. It counts rather than names while some agent could take
// the attempt (every one being busy is no news), so it stays cheap with many agents.
func (d *Dispatcher) whyWaiting(t *task) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.cfg.Now()
	if !t.inQueue || now.Sub(t.queued) < time.Second {
		return ""
	}
	labels := labelString(t.labels)
	online := now.Add(-d.cfg.Period)
	up, fit, drained, plain := 0, 0, 0, 0
	for _, a := range d.agents {
		if !a.online(online) {
			continue
		}
		up++
		if !matches(a.rec.Labels, t.labels) {
			continue
		}
		switch {
		case a.rec.Drained:
			drained++
		case t.secret() && !a.secure: // as of its last poll
			plain++
		default:
			fit++
		}
	}
	if h := d.homes[t.run.run.ID]; h != "" && fit > 0 {
		if a := d.agents[h]; a != nil && matches(a.rec.Labels, t.labels) {
			return fmt.Sprintf("waiting for a free slot on agent %s, which holds the run's workspace", h)
		}
	}
	switch {
	case up == 0:
		return "waiting for an agent: none is connected (start one with drover agent run)"
	case fit > 0:
		return fmt.Sprintf("waiting for a free slot: the %d agents with the labels %s are busy", fit, labels)
	}
	// No agent can take it: name them, so that whoever reads this can tell why.
	var names, drainedNames, plainNames []string
	for name, a := range d.agents {
		if !a.online(online) {
			continue
		}
		names = append(names, fmt.Sprintf("%s (%s)", name, labelString(a.rec.Labels)))
		if matches(a.rec.Labels, t.labels) {
			if a.rec.Drained {
				drainedNames = append(drainedNames, name)
			} else {
				plainNames = append(plainNames, name)
			}
		}
	}
	slices.Sort(names)
	slices.Sort(drainedNames)
	slices.Sort(plainNames)
	switch {
	case drained+plain == 0:
		return fmt.Sprintf("waiting for an agent with the labels %s: no connected agent has them (%s)", labels, strings.Join(names, ", "))
	case plain > 0:
		return fmt.Sprintf("waiting for an agent with the labels %s that connects over TLS or loopback: the step has secrets, and %s connect over plain HTTP", labels, strings.Join(plainNames, ", "))
	}
	return fmt.Sprintf("waiting for an agent with the labels %s: %s drained", labels, strings.Join(drainedNames, ", "))
}
