package runner

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/drover-cd/drover/pipeline"
	"github.com/drover-cd/drover/source"
	"github.com/drover-cd/drover/store"
)

// The words a stop leaves on runs and steps, the same in the store, the API, the web UI
// and drover up's console.
const (
	// stepInterrupted is the reason of a step that was running when the server stopped.
	stepInterrupted = "interrupted: the server stopped while this step ran"
	// runRequeued is the reason of a run queued again after a stop.
	runRequeued = "queued again: the server stopped while it ran, before anything it did reached outside its workspace"
)

// runInterrupted is the reason of a run that a stop ended: what it had done outside its
// workspace, and what to do.
func runInterrupted(outside string) string {
	return fmt.Sprintf("interrupted: the server stopped while it ran, after %s; re-run it (Re-run on its page)", outside)
}

// recover decides the fate of every run that was executing when the server stopped. A
// run is queued again, from its first step, when nothing it did reached outside its
// workspace: no deploy, environment, image build, approval or publishing had started.
// Anything else may have changed the world half-way, so it ends in error with what it
// had started, for a person to re-run.
//
// Steps on agents outlive a server stop: a run with such steps resumes where it was
// (resume), its agents reporting on them once they reach the server again.
func (r *Runner) recover(ctx context.Context) error {
	runs, err := r.cfg.Store.Runs(ctx, store.RunFilter{Status: []string{Running}, Limit: 10000})
	if err != nil {
		return fmt.Errorf("find interrupted runs: %w", err)
	}
	for _, run := range runs {
		steps, err := r.cfg.Store.Steps(ctx, run.ID)
		if err != nil {
			return fmt.Errorf("steps of interrupted run %s #%d: %w", run.Project, run.Number, err)
		}
		if r.cfg.Agents != nil && r.cfg.Agents.Outlived(run.ID) {
			if err := r.resumeOnAgents(ctx, run, steps); err != nil {
				return fmt.Errorf("run %s #%d on agents: %w", run.Project, run.Number, err)
			}
			continue
		}
		outside := r.reachedOutside(ctx, run, steps)
		if outside == "" {
			err = r.requeue(ctx, run, steps)
		} else {
			err = r.endInterrupted(ctx, run, outside)
		}
		if err != nil {
			return fmt.Errorf("interrupted run %s #%d: %w", run.Project, run.Number, err)
		}
		_ = os.RemoveAll(r.workspace(run.ID))
		_ = os.RemoveAll(r.workspace(run.ID) + ".artifacts")
		r.cfg.Hub.Notify(runKey(run.ID), projectKey(run.Project))
	}
	return nil
}

// reachedOutside says what a run had started that reaches outside its workspace ("its
// step staging had started deploying to staging"); "" when nothing had. What it cannot
// tell (a pipeline that no longer reads, a step it does not know) counts as outside.
func (r *Runner) reachedOutside(ctx context.Context, run *store.Run, steps []*store.Step) string {
	g, err := r.graphOf(ctx, run)
	if err != nil {
		return "it had started steps whose kind is unknown (" + err.Error() + ")"
	}
	nodes := map[string]*pipeline.Node{}
	for _, n := range g.Nodes {
		nodes[n.Name] = n
	}
	unfinished := false
	for _, s := range steps {
		unfinished = unfinished || s.Status == Pending || s.Status == Running
		if s.Started.IsZero() {
			continue
		}
		n := nodes[s.Name]
		switch {
		case n == nil:
			return fmt.Sprintf("its step %s had started", s.Name)
		case n.Step.Deploy != "":
			return fmt.Sprintf("its step %s had started deploying to %s", s.Name, n.Step.Deploy)
		case n.Step.Environment != "":
			return fmt.Sprintf("its step %s had started the %s environment", s.Name, n.Step.Environment)
		case n.Step.Build != nil:
			return fmt.Sprintf("its step %s had started building an image", s.Name)
		case n.Step.Approval != nil:
			return fmt.Sprintf("its step %s had been decided", s.Name)
		}
	}
	if !unfinished && len(steps) > 0 {
		return "its steps had ended and its artifact was being published"
	}
	return ""
}

// requeue puts an interrupted run back in the queue with its steps pending again. The
// logs of steps that had started keep their first attempt's lines, and say why it ends
// there.
func (r *Runner) requeue(ctx context.Context, run *store.Run, steps []*store.Step) error {
	for _, s := range steps {
		if !s.Started.IsZero() {
			if w, err := r.cfg.Logs.Create(run.ID, s.Position); err == nil {
				w.WriteLine("drover: " + stepInterrupted + "; the run was queued again and starts over")
				_ = w.Close()
			}
		}
		fresh := &store.Step{RunID: s.RunID, Name: s.Name, Position: s.Position, Needs: s.Needs, Status: Pending}
		if err := r.cfg.Store.SaveStep(ctx, fresh); err != nil {
			return err
		}
	}
	if _, err := r.cfg.Store.TransitionRun(ctx, run.ID, []string{Running}, Pending, runRequeued); err != nil {
		return err
	}
	run.Status, run.Reason, run.Started, run.Finished = Pending, runRequeued, time.Time{}, time.Time{}
	if err := r.cfg.Store.UpdateRun(ctx, run); err != nil {
		return err
	}
	r.cfg.Log.Warn("run interrupted by a server stop, queued again: nothing it did reached outside its workspace",
		"project", run.Project, "run", run.Number)
	return nil
}

// runResumed is the reason of a run whose steps on agents outlived a server stop.
const runResumed = "resumed: its steps on agents went on while the server was stopped"

// resumeOnAgents queues a run whose steps on agents outlived a server stop: it goes on from
// where it was, keeping its finished steps and taking up the leases of the running
// ones. Only a step the server itself was carrying out (a deploy or an environment)
// ends it in error, as an interrupted run, and its agents are told to stop.
func (r *Runner) resumeOnAgents(ctx context.Context, run *store.Run, steps []*store.Step) error {
	for _, s := range steps {
		if s.Status == Running {
			if kind := r.serverStep(ctx, run, s.Name); kind != "" {
				outside := fmt.Sprintf("its step %s had started %s", s.Name, kind)
				r.cfg.Agents.EndOutlived(ctx, run.ID, runInterrupted(outside))
				return r.endInterrupted(ctx, run, outside)
			}
		}
	}
	if _, err := r.cfg.Store.TransitionRun(ctx, run.ID, []string{Running}, Pending, runResumed); err != nil {
		return err
	}
	r.cfg.Log.Info("run resumes: its steps on agents outlived the server's stop", "project", run.Project, "run", run.Number)
	r.cfg.Hub.Notify(runKey(run.ID), projectKey(run.Project))
	return nil
}

// serverStep says what a step of run the server carries out itself had started
// ("deploying to staging"); "" for a compute step, which runs on an agent.
func (r *Runner) serverStep(ctx context.Context, run *store.Run, name string) string {
	g, err := r.graphOf(ctx, run)
	if err != nil {
		return "(its kind is unknown: " + err.Error() + ")"
	}
	for _, n := range g.Nodes {
		switch {
		case n.Name != name:
		case n.Step.Deploy != "":
			return "deploying to " + n.Step.Deploy
		case n.Step.Environment != "":
			return "the " + n.Step.Environment + " environment"
		}
	}
	return ""
}

// graphOf reads, parses and compiles the pipeline of run's commit.
func (r *Runner) graphOf(ctx context.Context, run *store.Run) (*pipeline.Graph, error) {
	data, err := source.ReadFileLimit(ctx, r.cfg.Repos(run.Project), run.Commit, PipelineFile, pipeline.MaxFileSize)
	if err != nil {
		return nil, err
	}
	p, err := pipeline.Parse(PipelineFile, data)
	if err != nil {
		return nil, err
	}
	return pipeline.Compile(p)
}

// endInterrupted ends an interrupted run in error, saying what it had started.
func (r *Runner) endInterrupted(ctx context.Context, run *store.Run, outside string) error {
	reason := runInterrupted(outside)
	if _, err := r.cfg.Store.TransitionRun(ctx, run.ID, []string{Running}, Errored, reason); err != nil {
		return err
	}
	run.Status, run.Reason, run.Finished = Errored, reason, time.Now()
	if err := r.cfg.Store.UpdateRun(ctx, run); err != nil {
		return err
	}
	if err := r.endSteps(ctx, run.ID, Errored, stepInterrupted); err != nil {
		return err
	}
	r.cfg.Log.Warn("run interrupted by a server stop", "project", run.Project, "run", run.Number, "after", outside)
	return nil
}
