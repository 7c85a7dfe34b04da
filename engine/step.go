package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/drover-cd/drover/pipeline"
	"github.com/drover-cd/drover/report"
)

// TimeoutError is the cause of a step attempt's context when its timeout: runs out.
type TimeoutError struct{ After time.Duration }

func (e *TimeoutError) Error() string { return fmt.Sprintf("timed out after %s", e.After) }

// inputs is what a step takes from the steps before it.
type inputs struct {
	self      string               // what image: self means
	artifacts []ocispec.Descriptor // the artifacts of the steps it needs
}

// runStep runs every attempt of n and returns its result. It does not touch r.results:
// the scheduling loop records the result.
func (r *run) runStep(ctx context.Context, n *pipeline.Node, env *envPrep, in inputs) *StepResult {
	s := n.Step
	res := &StepResult{Name: n.Name, Started: r.now()}
	// Secrets first: a missing one fails the step before an environment is made for it.
	extra, err := r.secrets(ctx, n)
	if err != nil {
		return r.failedToStart(ctx, n, res, err)
	}
	if env != nil {
		lease, err := r.lease(ctx, n, env)
		if err != nil {
			return r.failedToStart(ctx, n, res, err)
		}
		// Torn down whatever happens to the step, cancel included.
		defer lease.Release()
		extra = slices.Concat(lease.Vars, extra) // a secret wins over a variable of the environment
	}
	attempts, lost := 1+s.Retry, 0
	var far *Far
	for attempt := 1; attempt <= attempts; attempt++ {
		res.Attempts = attempt
		if attempt > 1 {
			r.note(n, attempt, fmt.Sprintf("retrying: attempt %d of %d", attempt, attempts))
		}
		far = r.attempt(ctx, n, attempt, res, extra, in)
		if res.Status == Lost {
			// The first lost attempt is the agent's fault, not the step's: it does not
			// use up retry:. Later ones do, so a step that kills its agent ends.
			if lost++; lost == 1 {
				attempts++
			}
			if attempt < attempts && ctx.Err() == nil {
				r.emit(Event{Type: StepLost, Step: n.Name, Attempt: attempt, Line: res.Reason})
			}
			continue
		}
		if res.Status == Success || res.Status == Cancelled || res.Status == Errored || ctx.Err() != nil {
			break
		}
	}
	if res.Status == Success && len(s.Artifacts) > 0 {
		if far != nil {
			r.farArtifacts(n, res, far)
		} else {
			r.pack(ctx, n, res)
		}
	}
	if res.Status == Failure && s.AllowFailure {
		res.Allowed = true
	}
	res.Finished = r.now()
	return res
}

// failedToStart ends res of a step that could not start because of err: a failure
// (allowed when the step allows failure), or cancelled when ctx was.
func (r *run) failedToStart(ctx context.Context, n *pipeline.Node, res *StepResult, err error) *StepResult {
	res.Status, res.Reason, res.Attempts, res.Finished = Failure, err.Error(), 1, r.now()
	if ctx.Err() != nil {
		res.Status, res.Reason = Cancelled, CancelReason(ctx)
	}
	res.Allowed = res.Status == Failure && n.Step.AllowFailure
	return res
}

// attempt runs the script once and reads its reports, setting res.Status and res.Reason.
// It returns what a backend that ran the step elsewhere read there, or nil.
func (r *run) attempt(ctx context.Context, n *pipeline.Node, attempt int, res *StepResult, extra []string, in inputs) *Far {
	s := n.Step
	actx, cancel := ctx, context.CancelFunc(func() {})
	if s.Timeout > 0 {
		actx, cancel = context.WithTimeoutCause(ctx, s.Timeout, &TimeoutError{After: s.Timeout})
	}
	defer cancel()

	spec := &Spec{
		Name:     n.Name,
		Step:     s,
		Script:   s.Run,
		Dir:      r.job.Workspace,
		Env:      append(stepEnv(r.job.BaseEnv, r.job.Graph.Pipeline, n, r.job.Vars, r.job.Overrides, attempt), extra...),
		Attempt:  attempt,
		User:     r.job.User,
		Launcher: r.job.Launcher,
		Run:      r.job.ID,
		Self:     in.self,
		Inputs:   in.artifacts,
		Hidden:   r.hiddenNow(),
	}
	if s.Build != nil && r.job.ImageRepo != "" {
		spec.ImageRef = fmt.Sprintf("%s:%d", r.job.ImageRepo, r.job.Vars.Run)
	}
	if s.Build != nil {
		spec.Annotations = r.job.Annotations
	}
	var built string
	spec.Built = func(image string) { built = image }
	r.emit(Event{Type: StepStarted, Step: n.Name, Attempt: attempt})
	lines := &lineWriter{emit: func(line string) {
		r.emit(Event{Type: StepLog, Step: n.Name, Attempt: attempt, Line: line, masked: true})
	}}
	out, flushMasked := r.output(lines)
	code, err := r.e.Backend.Exec(actx, spec, out)
	res.ExitCode = code
	// An image that reached the registry gets the run's annotations even when the run
	// was cancelled meanwhile: retention finds a registry image by them.
	var annotateErr error
	if strings.Contains(built, "@") && r.job.AnnotateImage != nil {
		tags := append([]string{strconv.Itoa(r.job.Vars.Run)}, s.Build.Tags...)
		ref, err := r.job.AnnotateImage(context.WithoutCancel(ctx), built, tags)
		if annotateErr = err; err == nil {
			built = ref
			fmt.Fprintf(out, "annotated the image with the run's facts: %s\n", built)
		}
	}
	flushMasked()
	lines.Flush()

	far := spec.Far
	if far != nil {
		res.Agent = far.Agent
	}
	var timeout *TimeoutError
	var lost *LostError
	switch {
	case ctx.Err() != nil:
		res.Status, res.Reason = Cancelled, CancelReason(ctx)
		return far
	case errors.As(context.Cause(actx), &timeout):
		res.Status, res.Reason = Failure, timeout.Error()
	case errors.As(err, &lost):
		res.Status, res.Reason, res.Agent = Lost, lost.Error(), lost.Agent
		return nil
	case err != nil:
		res.Status, res.Reason = Errored, "could not run the script: "+err.Error()
		return far
	case code != 0:
		res.Status, res.Reason = Failure, fmt.Sprintf("exit code %d", code)
	case s.Build != nil && built == "":
		res.Status, res.Reason = Errored, "the build step reported no image"
		return far
	case annotateErr != nil:
		res.Status, res.Reason = Errored, "annotate the built image: "+annotateErr.Error()
		return far
	default:
		res.Status, res.Reason, res.Image = Success, "", built
	}
	r.readReports(n, attempt, res, far)
	return far
}

// CancelReason says why ctx was cancelled, for people: its cause, or "run cancelled"
// when it has none.
func CancelReason(ctx context.Context) string {
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause.Error()
	}
	return ErrCancelled.Error()
}

// readReports parses the step's reports and checks its gates; a failed gate fails a
// step whose script succeeded.
func (r *run) readReports(n *pipeline.Node, attempt int, res *StepResult, far *Far) {
	s := n.Step
	if len(s.Reports.JUnit) == 0 && s.Reports.Coverage == "" && s.Gates.Coverage == nil && s.Gates.Failures == nil {
		return
	}
	var sum report.Summary
	var warnings []string
	var err error
	if far != nil {
		warnings = far.ReportWarnings
		if far.Reports != nil {
			sum = *far.Reports
		}
		if far.ReportError != "" {
			err = errors.New(far.ReportError)
		}
	} else {
		sum, warnings, err = report.Collect(r.job.Workspace, s.Reports.JUnit, s.Reports.Coverage)
	}
	for _, w := range warnings {
		r.note(n, attempt, "reports: "+w)
	}
	res.Reports = &sum
	if err != nil {
		r.note(n, attempt, "reports: "+err.Error())
		if res.Status == Success {
			res.Status, res.Reason = Failure, "reports: "+err.Error()
		}
		return
	}
	if sum.Tests != nil {
		r.note(n, attempt, fmt.Sprintf("tests: %d passed, %d failed, %d skipped", sum.Tests.Passed, sum.Tests.Failed, sum.Tests.Skipped))
		if f := sum.Tests.Failed; f > 0 && res.Status == Failure && strings.HasPrefix(res.Reason, "exit code") {
			// Say what failed rather than how the script ended.
			res.Reason = fmt.Sprintf("%d %s failed", f, plural(f, "test", "tests"))
		}
	}
	if sum.Coverage != nil {
		r.note(n, attempt, fmt.Sprintf("coverage: %.1f%%", sum.Coverage.Percent()))
	}
	gates := report.Gates{Coverage: s.Gates.Coverage, Failures: s.Gates.Failures}
	if err := report.Check(gates, sum); err != nil {
		msg := strings.ReplaceAll(err.Error(), "\n", "; ")
		r.note(n, attempt, "gate failed: "+msg)
		if res.Status == Success {
			res.Status, res.Reason = Failure, msg
		}
	}
}

// plural is one when n is 1, else many.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// pack stores each declared artifact path as a layer.
func (r *run) pack(ctx context.Context, n *pipeline.Node, res *StepResult) {
	if r.job.Artifacts == nil {
		res.Status, res.Reason = Errored, "artifacts: no artifact store is configured"
		return
	}
	for _, p := range n.Step.Artifacts {
		desc, err := r.job.Artifacts.Pack(ctx, r.job.Workspace, p)
		if err != nil {
			res.Status, res.Reason = Errored, "artifacts: "+err.Error()
			if errors.Is(err, fs.ErrNotExist) {
				res.Status = Failure
			}
			return
		}
		res.Artifacts = append(res.Artifacts, desc)
		r.note(n, res.Attempts, fmt.Sprintf("artifact %s %s (%d bytes)", p, desc.Digest, desc.Size))
	}
}

// farArtifacts takes the artifacts a backend packed where the step ran.
func (r *run) farArtifacts(n *pipeline.Node, res *StepResult, far *Far) {
	switch {
	case far.ArtifactError != "":
		res.Status, res.Reason = Errored, "artifacts: "+far.ArtifactError
		if far.ArtifactMissing {
			res.Status = Failure
		}
		return
	case len(far.Artifacts) != len(n.Step.Artifacts):
		res.Status, res.Reason = Errored, fmt.Sprintf("artifacts: %d declared, %d packed", len(n.Step.Artifacts), len(far.Artifacts))
		return
	}
	res.Artifacts = far.Artifacts
	for i, desc := range far.Artifacts {
		r.note(n, res.Attempts, fmt.Sprintf("artifact %s %s (%d bytes)", n.Step.Artifacts[i], desc.Digest, desc.Size))
	}
}

func (r *run) note(n *pipeline.Node, attempt int, line string) {
	r.emit(Event{Type: StepNote, Step: n.Name, Attempt: attempt, Line: line})
}
