package engine

import (
	"context"
	"errors"
	"fmt"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/drover-cd/drover/pipeline"
)

// Deployment is what Job.Deploy gets for a deploy: step.
type Deployment struct {
	Step string // the step's node name
	Env  string // the environment named by deploy:
	// Artifact is the run's artifact manifest over the layers of every step finished so
	// far, already in Job.Artifacts; nil when none published any.
	Artifact *ocispec.Descriptor
	// Log writes a line to the step's log.
	Log func(line string)
}

// finished returns the results recorded so far, in the graph's order. Only the
// scheduling loop may call it.
func (r *run) finished() []*StepResult {
	var out []*StepResult
	for _, n := range r.job.Graph.Nodes {
		if res := r.results[n]; res != nil {
			out = append(out, res)
		}
	}
	return out
}

// runDeploy carries out a deploy: step through Job.Deploy. art is the artifact so far
// (artErr why it could not be written).
func (r *run) runDeploy(ctx context.Context, n *pipeline.Node, art *ocispec.Descriptor, artErr error) *StepResult {
	res := &StepResult{Name: n.Name, Started: r.now(), Attempts: 1}
	r.emit(Event{Type: StepStarted, Step: n.Name, Attempt: 1})
	log := func(line string) { r.emit(Event{Type: StepLog, Step: n.Name, Attempt: 1, Line: line}) }
	if n.Step.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, n.Step.Timeout, &TimeoutError{After: n.Step.Timeout})
		defer cancel()
	}
	var err error
	switch {
	case artErr != nil:
		err = fmt.Errorf("publishing the artifact to deploy failed: %w", artErr)
	case art == nil:
		err = errors.New("nothing to deploy: no step before this one published artifacts:")
	default:
		err = r.job.Deploy(ctx, Deployment{Step: n.Name, Env: n.Step.Deploy, Artifact: art, Log: log})
	}
	var timeout *TimeoutError
	switch {
	case err == nil:
		res.Status = Success
	case errors.As(context.Cause(ctx), &timeout):
		res.Status, res.Reason = Failure, "deploy to "+n.Step.Deploy+" "+timeout.Error()
	case ctx.Err() != nil:
		res.Status, res.Reason = Cancelled, CancelReason(ctx)
	default:
		res.Status, res.Reason = Failure, err.Error()
		res.ExitCode = 1
	}
	if res.Status == Failure && n.Step.AllowFailure {
		res.Allowed = true
	}
	res.Finished = r.now()
	return res
}

// EnvRequest is what Job.Environment gets for an environment: step.
type EnvRequest struct {
	Step string // the step's node name
	Name string // the environment named by environment:, e.g. "ephemeral"
	// Artifact is the run's artifact over the layers of every step finished so far; nil
	// when none published any.
	Artifact *ocispec.Descriptor
	// Log writes a line to the step's log.
	Log func(line string)
}

// EnvLease is an environment a step runs against.
type EnvLease struct {
	Vars    []string // KEY=VALUE added to the step's environment, e.g. CATALOG_URL=...
	Release func()   // tears the environment down; called once the step ends
}

// envPrep is the artifact an environment: step's environment is made with.
type envPrep struct {
	art *ocispec.Descriptor
	err error
}

// lease asks Job.Environment for the step's environment.
func (r *run) lease(ctx context.Context, n *pipeline.Node, env *envPrep) (*EnvLease, error) {
	if env.err != nil {
		return nil, fmt.Errorf("publishing the artifact for environment %s failed: %w", n.Step.Environment, env.err)
	}
	r.emit(Event{Type: StepStarted, Step: n.Name, Attempt: 1})
	log := func(line string) { r.emit(Event{Type: StepNote, Step: n.Name, Attempt: 1, Line: line}) }
	lease, err := r.job.Environment(ctx, EnvRequest{Step: n.Name, Name: n.Step.Environment, Artifact: env.art, Log: log})
	if err != nil {
		return nil, fmt.Errorf("environment %s: %w", n.Step.Environment, err)
	}
	if lease.Release == nil {
		lease.Release = func() {}
	}
	return lease, nil
}
