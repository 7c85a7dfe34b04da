// Package engine runs a compiled pipeline DAG: it schedules steps as their needs finish,
// in parallel up to a limit, evaluates when: conditions, retries, timeouts and cancellation,
// reads reports and gates, packs artifacts, and reports everything as events to a Sink.
// Scripts run through a Backend; the engine itself does no process or container work.
package engine

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"strings"
	"sync"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/drover-cd/drover/artifact"
	"github.com/drover-cd/drover/mask"
	"github.com/drover-cd/drover/pipeline"
)

// ErrCancelled is the cause a run's context is cancelled with when a person stops it.
var ErrCancelled = errors.New("run cancelled")

// Engine runs pipelines. Its zero value is not usable: Backend is required.
type Engine struct {
	// Backend runs the steps' scripts. Required.
	Backend Backend
	// Parallel is the most steps of one run that execute at once. Zero means the number
	// of CPUs.
	Parallel int
	// Now is the clock; nil means time.Now. Tests set it to get stable timings.
	Now func() time.Time
}

// Job is one run of a compiled pipeline.
type Job struct {
	Graph     *pipeline.Graph
	Workspace string           // where scripts run and reports and artifacts are read
	Vars      Vars             // the DROVER_* facts
	Trigger   pipeline.Trigger // what when: branch, event and path look at
	BaseEnv   []string         // KEY=VALUE under every step's variables
	// User is who the steps run as; the zero User is the user running the engine.
	User User
	// Launcher, when set, is what steps' shells are started through: a sandbox such
	// as `drover sandbox exec --rw WORKSPACE ... --`, followed by the shell's argv.
	Launcher  []string
	Overrides []string // KEY=VALUE over the pipeline's and steps' env
	Sink      Sink     // nil discards events
	// Artifacts stores the steps' artifacts; nil makes a step with artifacts: fail.
	Artifacts *artifact.Store
	// Annotations go on the run's artifact manifest.
	Annotations map[string]string
	// Done holds results kept from an earlier run, by node name: those nodes are not run
	// again and count as they ended then. A re-run from a failed step passes the results
	// of the steps before it.
	Done map[string]*StepResult
	// Environment provides environment: steps with the environment they run against
	// (e.g. a complete throw-away one); nil skips them with the reason that they need a
	// server.
	Environment func(ctx context.Context, req EnvRequest) (*EnvLease, error)
	// Approval decides approval: steps: it answers at once, saying whether a person has
	// approved or rejected the step or whether it still waits; nil skips them with the
	// reason that they need a server.
	Approval func(ctx context.Context, req ApprovalRequest) (Decision, error)
	// Deploy carries out deploy: steps; nil skips them with the reason that they need a
	// server. The engine hands it the run's artifact as it stands when the step starts.
	Deploy func(ctx context.Context, d Deployment) error
	// ID identifies the run among all runs on this machine, e.g. "shop-12"; a backend
	// names what it keeps per run (a container network) after it. "" gets a random one.
	ID string
	// ImageRepo is where build: steps push their image: a repository of Drover's
	// registry, e.g. "shop/image"; the image is tagged with the run's number. "" keeps
	// built images on this machine.
	ImageRepo string
	// AnnotateImage, when set, is given each image a build: step pushed to ImageRepo
	// ("REPO@DIGEST") and the tags it was pushed under, and returns the reference the
	// run uses from then on (a server stores it again with the run's annotations). An
	// error fails the step.
	AnnotateImage func(ctx context.Context, ref string, tags []string) (string, error)
	// Cleanup is the context clean-up steps (when: {status: always}) run under, so they
	// still run after ctx is cancelled and can be stopped separately (a second Ctrl-C).
	// Nil means context.WithoutCancel(ctx).
	Cleanup context.Context
	// Secrets resolves the secrets a step asks for (secrets:) as KEY=VALUE, in the order
	// asked; an error fails the step before it starts. Their values are masked in every
	// step's output, note and reason from then on. nil fails steps that ask for secrets.
	Secrets func(ctx context.Context, req SecretRequest) ([]string, error)
	// Hidden are values masked in everything the run reports from its start, such as
	// secrets a caller knows before any step asks for them.
	Hidden []string
}

// Run runs the job to the end and returns its outcome. Cancelling ctx stops the running
// steps, skips the rest except clean-up steps, and ends the run as cancelled. Run returns
// an error only when the job itself is unusable.
func (e *Engine) Run(ctx context.Context, job Job) (*RunResult, error) {
	if e.Backend == nil || job.Graph == nil {
		return nil, errors.New("engine: a Backend and a Graph are required")
	}
	r := &run{
		e:       e,
		job:     job,
		now:     e.Now,
		results: make(map[*pipeline.Node]*StepResult, len(job.Graph.Nodes)),
		blocked: map[*pipeline.Node]string{},
		done:    make(chan stepDone),
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.job.Sink == nil {
		r.job.Sink = SinkFunc(func(Event) {})
	}
	if r.job.Cleanup == nil {
		r.job.Cleanup = context.WithoutCancel(ctx)
	}
	if r.job.ID == "" {
		r.job.ID = randomID()
	}
	if len(job.Hidden) > 0 {
		r.hide(job.Hidden)
	}
	return r.execute(ctx), nil
}

// stepDone carries a finished step back to the scheduling loop, the only writer of results.
type stepDone struct {
	node   *pipeline.Node
	result *StepResult
}

// run is the state of one Engine.Run.
type run struct {
	e   *Engine
	job Job
	now func() time.Time

	mu sync.Mutex // serialises sink calls: steps emit from their own goroutines
	// hidden are the secret values handed to steps so far, masker hides them; both
	// under mu.
	hidden []string
	masker *mask.Masker

	// Owned by the scheduling loop in execute; step goroutines never touch them.
	results map[*pipeline.Node]*StepResult
	done    chan stepDone
	failed  bool // a step failed (not allowed) or errored
	// blocked holds the nodes left pending behind an approval, with its name.
	blocked map[*pipeline.Node]string
}

func (r *run) emit(ev Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ev.Time.IsZero() {
		ev.Time = r.now()
	}
	r.maskEvent(&ev)
	r.job.Sink.Handle(ev)
}

func (r *run) execute(ctx context.Context) *RunResult {
	nodes := r.job.Graph.Nodes
	res := &RunResult{Status: Running, Started: r.now()}
	r.emit(Event{Type: RunStarted, Nodes: nodes})

	parallel := r.e.Parallel
	if parallel <= 0 {
		parallel = runtime.NumCPU()
	}
	started := make(map[*pipeline.Node]bool, len(nodes))
	running, finished := 0, 0
	for finished < len(nodes) {
		// Start, in written order, every node whose needs are done, while slots last.
		// Skipped nodes finish at once and may make more nodes ready: loop until stable.
		for progress := true; progress; {
			progress = false
			for _, n := range nodes {
				if started[n] || !r.ready(n) {
					continue
				}
				if kept := r.job.Done[n.Name]; kept != nil {
					started[n], progress = true, true
					r.finish(n, kept)
					finished++
					continue
				}
				if waits := r.waitsFor(n); waits != "" {
					// Not run now: the run resumes here once the approval is decided.
					started[n], progress = true, true
					r.blocked[n] = waits
					r.finish(n, &StepResult{Name: n.Name, Status: Pending, Reason: "waits for the approval of " + waits})
					finished++
					continue
				}
				if reason := r.skipReason(ctx, n); reason != "" {
					started[n], progress = true, true
					r.finish(n, &StepResult{Name: n.Name, Status: Skipped, Reason: reason})
					finished++
					continue
				}
				if running >= parallel {
					continue
				}
				started[n], progress = true, true
				running++
				stepCtx := ctx
				if n.Step.When.Status == pipeline.StatusAlways {
					stepCtx = r.job.Cleanup
				}
				if n.Step.Approval != nil {
					go func() { r.done <- stepDone{n, r.runApproval(stepCtx, n)} }()
					continue
				}
				if n.Step.Deploy != "" {
					art, err := r.publish(r.finished())
					go func() { r.done <- stepDone{n, r.runDeploy(stepCtx, n, art, err)} }()
					continue
				}
				var env *envPrep
				if n.Step.Environment != "" {
					art, err := r.publish(r.finished())
					env = &envPrep{art: art, err: err}
				}
				in := inputs{self: r.self(), artifacts: r.needed(n)}
				go func() { r.done <- stepDone{n, r.runStep(stepCtx, n, env, in)} }()
			}
		}
		if finished == len(nodes) {
			break
		}
		if running == 0 {
			// Cannot happen with a graph from pipeline.Compile (it has no cycles); guard
			// against a hand-made one rather than wait for ever.
			for _, n := range nodes {
				if !started[n] {
					r.finish(n, &StepResult{Name: n.Name, Status: Errored, Reason: "its needs can never finish"})
				}
			}
			break
		}
		// Running steps see ctx too and finish as cancelled when it ends; later iterations
		// then skip everything but clean-up steps.
		d := <-r.done
		r.finish(d.node, d.result)
		running--
		finished++
	}

	res.Finished = r.now()
	for _, n := range nodes {
		res.Steps = append(res.Steps, r.results[n])
	}
	if ender, ok := r.e.Backend.(RunEnder); ok {
		ender.EndRun(r.job.Cleanup, r.job.ID)
	}
	res.Status = r.status(ctx, res.Steps)
	if desc, err := r.publish(res.Steps); err != nil {
		res.Status, res.Reason = Errored, "publishing the run's artifact failed: "+err.Error()
	} else {
		res.Artifact = desc
	}
	r.emit(Event{Type: RunFinished, Run: res})
	return res
}

// self is the image the newest finished build: step made, for image: self; "" when
// none has.
func (r *run) self() string {
	return builtImage(r.finished())
}

// needed is the artifacts of the steps n needs, for a backend that runs n in a fresh
// workspace.
func (r *run) needed(n *pipeline.Node) []ocispec.Descriptor {
	var layers []ocispec.Descriptor
	for _, dep := range n.Needs {
		if res := r.results[dep]; res != nil {
			layers = append(layers, res.Artifacts...)
		}
	}
	return layers
}

// builtImage is the image the last build: step among steps made.
func builtImage(steps []*StepResult) string {
	img := ""
	for _, s := range steps {
		if s != nil && s.Image != "" && s.Status == Success {
			img = s.Image
		}
	}
	return img
}

// ready reports whether every node n needs has finished.
func (r *run) ready(n *pipeline.Node) bool {
	for _, dep := range n.Needs {
		if r.results[dep] == nil {
			return false
		}
	}
	return true
}

// skipReason decides, when n is ready, whether it runs: "" means run.
func (r *run) skipReason(ctx context.Context, n *pipeline.Node) string {
	failed := r.failed
	cancelled := ctx.Err() != nil
	switch n.Step.When.Status {
	case pipeline.StatusAlways:
	case pipeline.StatusFailure:
		if cancelled {
			return "the run was cancelled"
		}
		if !failed {
			return "nothing failed (when: status: failure)"
		}
	default:
		if cancelled {
			return "the run was cancelled"
		}
		if failed {
			return "an earlier step failed"
		}
	}
	if ok, why := n.Step.When.Matches(r.job.Trigger); !ok {
		return why
	}
	return r.unsupported(n.Step)
}

// unsupported says why a step needs more than this engine and job have.
func (r *run) unsupported(s *pipeline.Step) string {
	switch {
	case s.Deploy != "" && r.job.Deploy == nil:
		return "deploy: needs a Drover server with environments (drover server)"
	case s.Deploy != "":
		return ""
	case s.Approval != nil && r.job.Approval == nil:
		return "approval: needs a Drover server to record who approved (drover server)"
	case s.Approval != nil:
		return ""
	case s.Environment != "" && r.job.Environment == nil:
		return "environment: " + s.Environment + " needs a Drover server to create it (drover server)"
	}
	if sup, ok := r.e.Backend.(Supporter); ok {
		if err := sup.Supports(s); err != nil {
			return err.Error()
		}
	}
	return ""
}

// finish records n's result and tells the sink.
func (r *run) finish(n *pipeline.Node, res *StepResult) {
	r.results[n] = res
	if (res.Status == Failure && !res.Allowed) || res.Status == Errored || res.Status == Lost {
		r.failed = true
	}
	r.emit(Event{Type: StepFinished, Step: n.Name, Result: res})
}

// status folds the steps' outcomes into the run's: cancelled, then error, then failure.
func (r *run) status(ctx context.Context, steps []*StepResult) Status {
	if ctx.Err() != nil {
		return Cancelled
	}
	status, waiting := Success, false
	for _, s := range steps {
		switch {
		case s.Status == Errored, s.Status == Lost:
			return Errored
		case s.Status == Cancelled:
			status = Cancelled
		case s.Status == Failure && !s.Allowed && status == Success:
			status = Failure
		case s.Status == Waiting:
			waiting = true
		}
	}
	if waiting && status == Success {
		return Waiting
	}
	return status
}

// publish writes the run's artifact manifest over every step's layers, annotated with
// the job's annotations and the run's outcome (see OutcomeAnnotations).
func (r *run) publish(steps []*StepResult) (*ocispec.Descriptor, error) {
	var layers []ocispec.Descriptor
	for _, s := range steps {
		layers = append(layers, s.Artifacts...)
	}
	img := builtImage(steps)
	if len(layers) == 0 && !strings.Contains(img, "@") || r.job.Artifacts == nil {
		return nil, nil
	}
	ann := OutcomeAnnotations(steps)
	maps.Copy(ann, r.job.Annotations)
	if strings.Contains(img, "@") {
		ann[AnnotationImage] = img
	}
	desc, err := r.job.Artifacts.PutManifest(layers, ann)
	if err != nil {
		return nil, fmt.Errorf("write artifact manifest: %w", err)
	}
	return &desc, nil
}

// randomID names a run that came without an ID.
func randomID() string {
	return "run-" + rand.Text()[:10]
}
