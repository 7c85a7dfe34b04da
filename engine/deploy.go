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
