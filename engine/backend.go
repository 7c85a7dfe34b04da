package engine

import (
	"context"
	"fmt"
	"io"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/drover-cd/drover/pipeline"
	"github.com/drover-cd/drover/report"
)

// Backend runs the script of one step attempt. backend/process runs it as a local process
// group; later backends run it in a container or on a remote agent.
//
// Contract:
//   - Exec is called concurrently for different steps of one run and of different runs.
//   - It runs spec.Script with `sh -e` in spec.Dir with exactly spec.Env, writes the
//     script's stdout and stderr, interleaved as produced, to out, and returns once the
//     script and everything it started have stopped and out will not be written again.
//   - exitCode is the script's exit status (128+N when killed by signal N); err is non-nil
//     only when the script could not be run or was stopped by ctx.
//   - When ctx is done, Exec stops the script and everything it started (politely first,
//     then by force) and returns promptly with context.Cause(ctx).
type Backend interface {
	Exec(ctx context.Context, spec *Spec, out io.Writer) (exitCode int, err error)
}

// Spec is one attempt of one step, ready to run.
type Spec struct {
	Name    string         // the node's name, e.g. "test (GOARCH=arm64)"
	Step    *pipeline.Step // the step as written
	Script  string         // the run: script
	Dir     string         // the workspace
	Env     []string       // the complete environment, KEY=VALUE
	Attempt int            // 1 for the first attempt
	// User is who the script runs as; the zero User is the user running the engine. A
	// backend must honour it: run the script as that uid and gid with no other groups.
	User User
	// Launcher, when set, is the argv the shell is started through, the shell's own argv
	// appended (Job.Launcher). Backends that run scripts on this machine honour it.
	Launcher []string

	// Run is Job.ID: what a backend keeps per run (a container network) is named after it.
	Run string
	// Self is what image: self means: the image an earlier build: step of this run
	// made (see StepResult.Image); "" when none has.
	Self string
	// ImageRef, for a build: step, is "REPO:TAG" in Drover's registry to push the image
	// to; "" keeps it on this machine.
	ImageRef string
	// Annotations are the job's, for a build: step to label its image with.
	Annotations map[string]string
	// Built is called by a backend that ran a build: step with the image it made:
	// "REPO@DIGEST" when pushed to ImageRef's repository, else the image id.
	Built func(image string)

	// Inputs are the artifacts of the steps this one needs (layers of the run's
	// artifact), for a backend that runs the step away from Dir, in a fresh workspace.
	Inputs []ocispec.Descriptor
	// Hidden are the values the run masks so far (its secrets), for a backend that masks
	// the output before it leaves the machine the step ran on.
	Hidden []string
	// Far is set by a backend that ran the step away from Dir (on an agent): what was
	// read where it ran, in place of the engine reading Dir.
	Far *Far
}

// Far is what a backend that ran a step on another machine read there: the step's
// reports and, after a script that succeeded, its artifacts, already stored where the
// run's artifact store can take them.
type Far struct {
	Agent          string // where the step ran, for people
	Reports        *report.Summary
	ReportWarnings []string
	ReportError    string
	Artifacts      []ocispec.Descriptor
	ArtifactError  string
	// ArtifactMissing says a declared artifact path did not exist: the step's fault.
	ArtifactMissing bool
}

// LostError is returned by a backend whose step ran somewhere that stopped answering
// (an agent killed or cut off): the attempt is over without a result, and the step may
// run again elsewhere.
type LostError struct {
	Agent  string
	Reason string
}

func (e *LostError) Error() string { return fmt.Sprintf("lost: agent %s %s", e.Agent, e.Reason) }

// User is a numeric user and group a step runs as.
type User struct{ UID, GID int }

// IsZero reports the zero User: the user running the engine.
func (u User) IsZero() bool { return u == User{} }

// RunEnder is implemented by backends that keep something per run (a container
// network): EndRun is called once the run's steps are over, with Spec.Run.
type RunEnder interface {
	EndRun(ctx context.Context, run string)
}

// Supporter is implemented by backends that cannot run every step, e.g. a process backend
// asked for a container image. Supports returns why the step cannot run, or nil.
type Supporter interface {
	Supports(step *pipeline.Step) error
}
