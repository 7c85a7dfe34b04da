package engine

import (
	"context"
	"io"

	"github.com/drover-cd/drover/pipeline"
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
}

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
