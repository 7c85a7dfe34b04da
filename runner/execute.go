package runner

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/drover-cd/drover/artifact"
	"github.com/drover-cd/drover/dispatch"
	"github.com/drover-cd/drover/engine"
	"github.com/drover-cd/drover/pipeline"
	"github.com/drover-cd/drover/release"
	"github.com/drover-cd/drover/report"
	"github.com/drover-cd/drover/source"
	"github.com/drover-cd/drover/steplog"
	"github.com/drover-cd/drover/store"
)

// execute runs a claimed run to its end and records the outcome.
func (r *Runner) execute(ctx context.Context, run *store.Run, slot int) {
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	r.mu.Lock()
	r.cancels[run.ID] = cancel
	if cause := r.cancelled[run.ID]; cause != nil {
		cancel(cause) // cancelled between the claim and now
		delete(r.cancelled, run.ID)
	}
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.cancels, run.ID)
		r.mu.Unlock()
	}()
	// Writes about the run must land even when the run is cancelled, but not outlive the
	// server's own stop.
	rec := context.WithoutCancel(ctx)

	if run.Started.IsZero() { // a run resuming after an approval keeps its start
		run.Started = time.Now()
	}
	_ = r.cfg.Store.UpdateRun(rec, run)
	r.cfg.Hub.Notify(runKey(run.ID), projectKey(run.Project))
	log := r.cfg.Log.With("project", run.Project, "run", run.Number)
	log.Info("run started", "commit", short(run.Commit))

	status, reason, artifact := r.perform(runCtx, ctx, rec, run, slot)
	if ctx.Err() != nil {
		// The server is stopping: leave the run as running; the next start marks it.
		return
	}
	// From here a cancel no longer reaches the run through runCtx: it finds the run
	// waiting in the store, or leaves its cause in r.cancelled while it still runs.
	r.mu.Lock()
	delete(r.cancels, run.ID)
	r.mu.Unlock()
	if status == Waiting && runCtx.Err() != nil {
		// Cancelled just as it stopped to wait: the cancel wins.
		status, reason = Cancelled, engine.CancelReason(runCtx)
	}
	run.Status, run.Reason, run.Artifact, run.Finished = status, reason, artifact, time.Now()
	if status == Waiting {
		run.Finished = time.Time{} // it goes on once the approval is decided
	}
	if err := r.cfg.Store.UpdateRun(rec, run); err != nil {
		log.Error("record the run's end", "err", err)
	}
	r.mu.Lock()
	late := r.cancelled[run.ID] // a cancel that came while it was ending
	delete(r.cancelled, run.ID)
	r.mu.Unlock()
	if status == Waiting {
		log.Info("run waiting", "reason", reason)
		r.cfg.Hub.Notify(runKey(run.ID), projectKey(run.Project))
		if late != nil {
			if err := r.cancel(rec, run, cancelledBy(late), late.Error()); err != nil {
				log.Error("cancel the waiting run", "err", err)
			}
			return
		}
		// Approvals decided (or timed out) while other steps still ran could not resume
		// the run then: resume it now. Decisions from now on find it waiting.
		if ok, err := r.resumeIfDecided(rec, run.ID); err != nil {
			log.Error("resume the run after its decided approvals", "err", err)
		} else if ok {
			log.Info("run resumed: its approvals were decided while it ran")
		}
		return // its pending steps stay pending
	}
	// Approvals it still asks for (a step failed, or it was cancelled, while they waited)
	// are decided by its end.
	if status == Cancelled {
		r.rejectPending(rec, run, cancelledBy(context.Cause(runCtx)), approvalsCancelled)
	} else {
		r.rejectPending(rec, run, "drover", fmt.Sprintf("the run ended (%s) before anyone decided", status))
	}
	_ = r.endSteps(rec, run.ID, string(engine.Skipped), reason)
	r.endLeases(rec, run.ID, "its run ended: "+status)
	if status == Success && r.cfg.Released != nil {
		go r.cfg.Released(run)
	}
	log.Info("run finished", "status", status, "duration", run.Finished.Sub(run.Started).Round(time.Millisecond))
	r.cfg.Hub.Notify(runKey(run.ID), projectKey(run.Project))
}

// cancelledBy is who cancelled a run, from its cancel's cause.
func cancelledBy(cause error) string {
	var c *cancelCause
	if errors.As(cause, &c) {
		return c.by
	}
	return "drover"
}

// perform checks the run's commit out and runs its pipeline, returning the run's final
// status, the reason for it and its artifact digest.
//
// ctx ends when the run is cancelled or the server stops; serverCtx only when the server
// stops; rec never (for recording the outcome).
func (r *Runner) perform(ctx, serverCtx, rec context.Context, run *store.Run, slot int) (status, reason, artifact string) {
	repo := r.cfg.Repos(run.Project)
	data, err := source.ReadFileLimit(ctx, repo, run.Commit, PipelineFile, pipeline.MaxFileSize)
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return Cancelled, engine.CancelReason(ctx), ""
		case errors.Is(err, source.ErrFileTooLarge):
			// The author's to fix, like a file that does not parse:
			// "drover.yml: file is 2097152 bytes; the limit is 1 MiB".
			return Failure, err.Error(), ""
		}
		return Errored, "read drover.yml: " + err.Error(), ""
	}
	p, err := pipeline.Parse(PipelineFile, data)
	if err != nil {
		return Failure, err.Error(), ""
	}
	g, err := pipeline.Compile(p)
	if err != nil {
		return Failure, err.Error(), ""
	}
	done, err := r.kept(rec, run, g)
	if err != nil {
		return Errored, err.Error(), ""
	}
	ws := r.workspace(run.ID)
	_ = os.RemoveAll(ws)
	defer os.RemoveAll(ws)
	// Steps go to agents once the server has any: the run's workspace is on them.
	remote := r.remote() || slot >= r.cfg.Workers
	checkout := source.CheckoutCommit
	if iso := r.cfg.Isolation; iso != nil && !iso.SharedCheckout() {
		// A step user cannot read the server's repositories, which a shared clone
		// borrows its objects from: copy them.
		checkout = source.CheckoutCopy
	}
	if remote {
		checkout = func(_ context.Context, _, _, dest string) error { return os.MkdirAll(dest, 0o700) }
	}
	if err := checkout(ctx, repo, run.Commit, ws); err != nil {
		if ctx.Err() != nil {
			return Cancelled, engine.CancelReason(ctx), ""
		}
		return Errored, "check out: " + err.Error(), ""
	}
	var user engine.User
	var launcher []string
	env := minimalEnv()
	if remote {
		env = nil // an agent gives steps its own PATH, HOME and the like
	}
	if err := os.Chmod(ws, 0o700); err != nil {
		return Errored, "check out: " + err.Error(), ""
	}
	if r.cfg.Isolation != nil && !remote {
		lease, end, err := r.cfg.Isolation.Lease(slot, r.homeOf(rec, run), ws, repo)
		if err != nil {
			return Errored, "isolate the steps: " + err.Error(), ""
		}
		defer end()
		user, launcher, env = engine.User{UID: lease.UID, GID: lease.GID}, lease.Launcher, overrideEnv(env, lease.Env)
	}
	trigger := pipeline.Trigger{Branch: run.Branch, Event: run.Event}
	if g.UsesChangedFiles() {
		files, err := source.ChangedFiles(ctx, repo, "", run.Commit)
		trigger.Changed, trigger.ChangedKnown = files, err == nil
	}
	sink := &sink{r: r, run: run, rec: rec, server: serverCtx, positions: map[string]int{}, needs: map[string][]string{},
		logs: map[string]*steplog.Writer{}, started: map[string]time.Time{}}
	for i, n := range g.Nodes {
		sink.positions[n.Name] = i
		for _, d := range n.Needs {
			sink.needs[n.Name] = append(sink.needs[n.Name], d.Name)
		}
	}
	defer sink.closeAll()
	layout, err := r.layout(ctx, run, done)
	if err != nil {
		return Errored, err.Error(), ""
	}
	if layout != nil {
		defer os.RemoveAll(layout.Dir())
	}
	annotations := map[string]string{
		"org.opencontainers.image.revision": run.Commit,
		"org.opencontainers.image.created":  run.Started.UTC().Format(time.RFC3339),
		"dev.drover.project":                run.Project,
		"dev.drover.run":                    fmt.Sprint(run.Number),
		"dev.drover.branch":                 run.Branch,
	}
	eng := &engine.Engine{Backend: r.cfg.Backend, Parallel: r.cfg.Parallel}
	if remote {
		eng.Backend = r.cfg.Agents.Backend(r.agentRun(run, layout))
		if eng.Parallel <= 0 {
			eng.Parallel = 64 // the agents' capacity bounds them, not this machine's CPUs
		}
	}
	res, err := eng.Run(ctx, engine.Job{
		Graph:         g,
		Workspace:     ws,
		Vars:          engine.Vars{Run: run.Number, Branch: run.Branch, Commit: run.Commit, Event: run.Event, Workspace: ws},
		Trigger:       trigger,
		BaseEnv:       env,
		User:          user,
		Launcher:      launcher,
		Sink:          sink,
		Artifacts:     layout,
		ID:            runID(run),
		ImageRepo:     imageRepo(run.Project),
		Annotations:   annotations,
		AnnotateImage: r.annotateImage(annotations),
		Approval:      r.approval(run),
		Deploy:        r.deployer(run, layout),
		Environment:   r.environment(run, layout),
		Secrets:       r.secrets(run),
		Done:          done,
		// Clean-up steps still run after a user's cancel, but not past the server's stop.
		Cleanup: serverCtx,
	})
	if err != nil {
		return Errored, err.Error(), ""
	}
	postlude := ""
	if res.Status == engine.Success && r.cfg.Postlude != nil {
		if name, work := r.cfg.Postlude(ctx, run); name != "" {
			if err := sink.postlude(name, len(g.Nodes), work); err != nil {
				res.Status, postlude = engine.Failure, fmt.Sprintf("step %s: %v", name, err)
			}
		}
	}
	if res.Artifact != nil {
		artifact = res.Artifact.Digest.String()
		err := r.cfg.Publisher.Publish(rec, layout, *res.Artifact, release.Run{Project: run.Project, Number: run.Number,
			Commit: run.Commit, Passed: res.Status == engine.Success})
		if err != nil {
			return Errored, "publishing the run's artifact to the registry failed: " + err.Error(), artifact
		}
	}
	if postlude != "" {
		return Failure, postlude, artifact
	}
	switch res.Status {
	case engine.Waiting:
		return Waiting, waitingReason(res), artifact
	case engine.Cancelled:
		return Cancelled, engine.CancelReason(ctx), artifact
	case engine.Failure:
		return Failure, firstReason(res), artifact
	case engine.Errored:
		if res.Reason != "" {
			return Errored, res.Reason, artifact
		}
		return Errored, firstReason(res), artifact
	}
	return Success, "", artifact
}

// agentRun is what the dispatcher needs of run: where its artifacts go and how they
// reach its artifact store.
func (r *Runner) agentRun(run *store.Run, layout *artifact.Store) dispatch.Run {
	repo, _ := release.Repository(run.Project)
	return dispatch.Run{ID: run.ID, Project: run.Project, Commit: run.Commit, Repository: repo,
		Seed: func(ctx context.Context, layers []ocispec.Descriptor) error {
			if layout == nil {
				return errors.New("the server keeps no artifacts (no registry)")
			}
			return r.cfg.Publisher.Seed(ctx, layout, run.Project, layers)
		}}
}

// endLeases gives up what steps of run runID still run on agents: leases it did not
// take up again after a restart before it ended (it failed early, was cancelled while
// queued). Their agents are told to stop them.
func (r *Runner) endLeases(ctx context.Context, runID int64, reason string) {
	if r.cfg.Agents != nil {
		r.cfg.Agents.EndOutlived(ctx, runID, reason)
	}
}

// annotateImage is the engine's Job.AnnotateImage: images a run builds carry its
// annotations, as its artifact does. nil when the runner has no Publisher.
func (r *Runner) annotateImage(ann map[string]string) func(context.Context, string, []string) (string, error) {
	if r.cfg.Publisher == nil {
		return nil
	}
	return func(ctx context.Context, ref string, tags []string) (string, error) {
		return r.cfg.Publisher.AnnotateImage(ctx, ref, tags, ann)
	}
}

// deployer is the engine's Job.Deploy for run: it publishes the artifact as it stands
// under the run's number, then deploys that digest. nil when the server cannot deploy.
func (r *Runner) deployer(run *store.Run, layout *artifact.Store) func(context.Context, engine.Deployment) error {
	if r.cfg.Deploy == nil || layout == nil {
		return nil
	}
	return func(ctx context.Context, d engine.Deployment) error {
		err := r.cfg.Publisher.Publish(ctx, layout, *d.Artifact, release.Run{Project: run.Project, Number: run.Number, Commit: run.Commit})
		if err != nil {
			return fmt.Errorf("publish the artifact to deploy: %w", err)
		}
		return r.cfg.Deploy(ctx, run, d.Env, d.Artifact.Digest.String(), d.Log)
	}
}

// environment is the engine's Job.Environment for run: it publishes the artifact as it
// stands, then asks for the environment. nil when the server cannot make environments.
func (r *Runner) environment(run *store.Run, layout *artifact.Store) func(context.Context, engine.EnvRequest) (*engine.EnvLease, error) {
	if r.cfg.Environment == nil || layout == nil {
		return nil
	}
	return func(ctx context.Context, req engine.EnvRequest) (*engine.EnvLease, error) {
		digest := ""
		if req.Artifact != nil {
			err := r.cfg.Publisher.Publish(ctx, layout, *req.Artifact, release.Run{Project: run.Project, Number: run.Number, Commit: run.Commit})
			if err != nil {
				return nil, fmt.Errorf("publish the artifact for the environment: %w", err)
			}
			digest = req.Artifact.Digest.String()
		}
		vars, release, err := r.cfg.Environment(ctx, run, req.Name, digest, req.Log)
		if err != nil {
			return nil, err
		}
		return &engine.EnvLease{Vars: vars, Release: release}, nil
	}
}

// homeOf names the home run's steps get (HOME, the Go caches): the project's for runs of
// its default branch, another for its other branches. What a default-branch run leaves
// there (a registry login, a build cache) is then neither read nor poisoned by a
// branch anyone may push, whose runs get fewer secrets.
func (r *Runner) homeOf(ctx context.Context, run *store.Run) string {
	p, err := r.cfg.Store.Project(ctx, run.Project)
	if err != nil || p.DefaultBranch == "" || run.Branch != p.DefaultBranch {
		return run.Project + "+branches" // no project name has a '+'
	}
	return run.Project
}

// secrets is the engine's Job.Secrets for run; nil when the runner has none.
func (r *Runner) secrets(run *store.Run) func(context.Context, engine.SecretRequest) ([]string, error) {
	if r.cfg.Secrets == nil {
		return nil
	}
	return func(ctx context.Context, req engine.SecretRequest) ([]string, error) {
		return r.cfg.Secrets(ctx, run, req)
	}
}

// layout opens the run's own artifact layout, where its steps pack their artifacts
// before the run publishes them, seeded with the layers of the steps a re-run keeps.
// It is nil, failing steps with artifacts, when the runner has no Publisher.
func (r *Runner) layout(ctx context.Context, run *store.Run, done map[string]*engine.StepResult) (*artifact.Store, error) {
	if r.cfg.Publisher == nil {
		return nil, nil
	}
	dir := r.workspace(run.ID) + ".artifacts"
	_ = os.RemoveAll(dir)
	layout, err := artifact.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o700); err != nil { // the server's, not the steps'
		os.RemoveAll(dir)
		return nil, err
	}
	var kept []ocispec.Descriptor
	for _, res := range done {
		kept = append(kept, res.Artifacts...)
	}
	if err := r.cfg.Publisher.Seed(ctx, layout, run.Project, kept); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("re-run: the kept steps' artifacts: %w", err)
	}
	return layout, nil
}

// waitingReason says which approval a waiting run waits for.
func waitingReason(res *engine.RunResult) string {
	for _, s := range res.Steps {
		if s.Status == engine.Waiting {
			return fmt.Sprintf("step %s %s", s.Name, s.Reason)
		}
	}
	return "waits for an approval"
}

// firstReason is the reason of the first step that failed the run.
func firstReason(res *engine.RunResult) string {
	for _, s := range res.Steps {
		if (s.Status == engine.Failure && !s.Allowed) || s.Status == engine.Errored || s.Status == engine.Lost {
			if s.Reports != nil && s.Reports.Tests != nil && s.Reports.Tests.Failed > 0 && strings.HasSuffix(s.Reason, " failed") {
				return fmt.Sprintf("%s in step %s", s.Reason, s.Name) // "2 tests failed in step test"
			}
			return fmt.Sprintf("step %s: %s", s.Name, s.Reason)
		}
	}
	return ""
}

// minimalEnv is what steps on the server inherit from the server's environment: enough to
// find programs and a home, not the server's secrets.
func minimalEnv() []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "LANG", "TMPDIR", "GOPATH", "GOCACHE", "GOMODCACHE", "GOPROXY", "GOFLAGS", "SSL_CERT_FILE"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// overrideEnv returns env with the KEY=VALUE entries of over in place of env's own.
func overrideEnv(env, over []string) []string {
	out := slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return slices.ContainsFunc(over, func(o string) bool { return strings.HasPrefix(o, k+"=") })
	})
	return append(out, over...)
}

// kept returns the results of the steps a run does not run again. A run resuming after
// an approval keeps every step it finished before it waited: successes, allowed failures
// and skips (its when: conditions were decided then, and stand). A re-run from a step
// keeps the earlier run's successes of the steps that neither are that step nor depend
// on it, with the decisions of the approval steps among them.
func (r *Runner) kept(ctx context.Context, run *store.Run, g *pipeline.Graph) (map[string]*engine.StepResult, error) {
	own, err := r.cfg.Store.Steps(ctx, run.ID)
	if err != nil {
		return nil, err
	}
	resumed := map[string]*engine.StepResult{}
	for _, s := range own {
		switch {
		case s.Status == Success, s.Status == string(engine.Skipped), s.Status == Failure && s.Allowed:
			resumed[s.Name] = toResult(s)
		case run.Reason == runResumed && (s.Status == Failure || s.Status == Errored || s.Status == Cancelled):
			// A run picked up after a restart goes on as it was: what failed stays failed.
			resumed[s.Name] = toResult(s)
		}
	}
	if len(resumed) > 0 {
		return resumed, nil
	}
	if run.RerunOf == 0 || run.FromStep == "" {
		return nil, nil
	}
	old, err := r.cfg.Store.Run(ctx, run.Project, run.RerunOf)
	if err != nil {
		return nil, err
	}
	steps, err := r.cfg.Store.Steps(ctx, old.ID)
	if err != nil {
		return nil, err
	}
	rerun := map[string]bool{}
	nodes := map[string]*pipeline.Node{}
	for _, n := range g.Nodes { // topological order: needs come first
		nodes[n.Name] = n
		if n.Name == run.FromStep || n.Step.Name == run.FromStep {
			rerun[n.Name] = true
		}
		for _, d := range n.Needs {
			rerun[n.Name] = rerun[n.Name] || rerun[d.Name]
		}
	}
	done := map[string]*engine.StepResult{}
	var approvals []*store.Approval
	for _, s := range steps {
		// Only successes are kept: a skip depended on how the old run went (an earlier
		// failure, a cancel), so the engine decides skips afresh.
		if rerun[s.Name] || s.Status != Success {
			continue
		}
		if n := nodes[s.Name]; n != nil && n.Step.Approval != nil {
			// The kept approval counts for this run too: deploys to environments
			// that want it look for it among this run's approvals.
			if approvals == nil {
				if approvals, err = r.cfg.Store.Approvals(ctx, old.ID); err != nil {
					return nil, err
				}
			}
			if err := r.keepApproval(ctx, run, old, s.Name, approvals); err != nil {
				return nil, err
			}
		}
		res := toResult(s)
		res.Reason = fmt.Sprintf("kept from run #%d", old.Number)
		done[s.Name] = res
	}
	return done, nil
}

// keepApproval copies old's decision on its approval step to run, which keeps the step.
func (r *Runner) keepApproval(ctx context.Context, run, old *store.Run, step string, approvals []*store.Approval) error {
	for _, a := range approvals {
		if a.Step != step || a.Decision == "pending" {
			continue
		}
		got, err := r.cfg.Store.RequestApproval(ctx, &store.Approval{RunID: run.ID, Step: a.Step, Role: a.Role})
		if err != nil {
			return err
		}
		if got.Decision != "pending" {
			return nil // copied already
		}
		got.Decision, got.Actor = a.Decision, a.Actor
		got.Message = fmt.Sprintf("decided on run #%d", old.Number)
		if a.Message != "" {
			got.Message = a.Message + " (" + got.Message + ")"
		}
		if err := r.cfg.Store.DecideApproval(ctx, got); err != nil && !errors.Is(err, store.ErrExists) {
			return err
		}
		return nil
	}
	return nil
}

// toResult reads a stored step back as an engine result.
func toResult(s *store.Step) *engine.StepResult {
	res := &engine.StepResult{Name: s.Name, Status: engine.Status(s.Status), Allowed: s.Allowed, Reason: s.Reason,
		ExitCode: s.ExitCode, Attempts: s.Attempts, Started: s.Started, Finished: s.Finished}
	if len(s.Reports) > 0 {
		var sum report.Summary
		if json.Unmarshal(s.Reports, &sum) == nil {
			res.Reports = &sum
		}
	}
	if len(s.Artifacts) > 0 {
		var descs []ocispec.Descriptor
		if json.Unmarshal(s.Artifacts, &descs) == nil {
			res.Artifacts = descs
		}
	}
	return res
}

// runID names what a backend keeps per run (a container network): unique on this
// machine, also among servers, and valid as a Docker name.
func runID(run *store.Run) string {
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.' {
			return r
		}
		return '-'
	}, strings.ToLower(run.Project))
	return fmt.Sprintf("%s-%d-%s", name, run.Number, strings.ToLower(rand.Text()[:6]))
}

// imageRepo is where a project's build: steps push: PROJECT/image in the registry; ""
// (kept on the machine) for a project whose name is no repository name.
func imageRepo(project string) string {
	repo, err := release.Repository(project)
	if err != nil {
		return ""
	}
	return repo + "/image"
}
