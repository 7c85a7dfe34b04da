package runner

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/drover-cd/drover/engine"
	"github.com/drover-cd/drover/pipeline"
	"github.com/drover-cd/drover/source"
	"github.com/drover-cd/drover/store"
)

// PipelineFile is where a project keeps its pipeline.
const PipelineFile = "drover.yml"

// Request asks for a run of a project at a commit.
type Request struct {
	Project string
	Branch  string
	Commit  string // full hash; "" means the branch's head
	Event   string // push, manual, ...
	Trigger string // who or what asked: a user name, "webhook", "poll"
	// RerunOf and FromStep make a re-run: steps before FromStep keep run RerunOf's results.
	RerunOf  int
	FromStep string
}

// Enqueue queues a run and wakes a worker. It returns ErrNoPipeline when the commit has
// no drover.yml. A drover.yml that does not parse still makes a run, which fails at once
// with the file's errors, so the author sees them where they look.
func (r *Runner) Enqueue(ctx context.Context, req Request) (*store.Run, error) {
	proj, err := r.cfg.Store.Project(ctx, req.Project)
	if err != nil {
		return nil, err
	}
	repo := r.cfg.Repos(proj.Name)
	if req.Commit == "" {
		heads, err := source.Heads(ctx, repo)
		if err != nil {
			return nil, err
		}
		if req.Commit = heads[req.Branch]; req.Commit == "" {
			return nil, fmt.Errorf("project %s has no branch %q: %w", proj.Name, req.Branch, store.ErrNotFound)
		}
	}
	data, err := source.ReadFile(ctx, repo, req.Commit, PipelineFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoPipeline
	}
	if err != nil {
		return nil, err
	}
	run := &store.Run{ProjectID: proj.ID, Project: proj.Name, Status: Pending, Branch: req.Branch,
		Commit: req.Commit, Event: req.Event, Trigger: req.Trigger, RerunOf: req.RerunOf, FromStep: req.FromStep}
	if info, err := source.CommitInfo(ctx, repo, req.Commit); err == nil {
		run.Message = info.Subject
	}
	if err := r.cfg.Store.CreateRun(ctx, run); err != nil {
		return nil, err
	}
	if p, err := pipeline.Parse(PipelineFile, data); err == nil {
		if g, err := pipeline.Compile(p); err == nil {
			if err := r.saveGraph(ctx, run.ID, g); err != nil {
				return nil, err
			}
		}
		if p.AutoCancel {
			r.supersede(ctx, run)
		}
	}
	r.cfg.Log.Info("run queued", "project", run.Project, "run", run.Number, "branch", run.Branch, "commit", short(run.Commit))
	r.cfg.Hub.Notify(projectKey(run.Project), runKey(run.ID))
	r.kick()
	return run, nil
}

// saveGraph stores every step as pending, so the run's graph shows before it starts.
func (r *Runner) saveGraph(ctx context.Context, runID int64, g *pipeline.Graph) error {
	for i, n := range g.Nodes {
		s := &store.Step{RunID: runID, Name: n.Name, Position: i, Status: Pending}
		for _, d := range n.Needs {
			s.Needs = append(s.Needs, d.Name)
		}
		if err := r.cfg.Store.SaveStep(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// supersede cancels the older runs of run's branch that are queued or running
// (auto_cancel: true).
func (r *Runner) supersede(ctx context.Context, run *store.Run) {
	older, err := r.cfg.Store.Runs(ctx, store.RunFilter{Project: run.Project, Branch: run.Branch,
		Status: []string{Pending, Running}, Limit: 1000})
	if err != nil {
		r.cfg.Log.Error("find superseded runs", "err", err)
		return
	}
	for _, o := range older {
		if o.ID != run.ID && o.Number < run.Number {
			_ = r.cancel(ctx, o, fmt.Sprintf("superseded by run #%d", run.Number))
		}
	}
}

// Cancel stops a queued or running run; who is recorded in the reason.
func (r *Runner) Cancel(ctx context.Context, project string, number int, who string) error {
	run, err := r.cfg.Store.Run(ctx, project, number)
	if err != nil {
		return err
	}
	return r.cancel(ctx, run, "cancelled by "+who)
}

func (r *Runner) cancel(ctx context.Context, run *store.Run, reason string) error {
	ok, err := r.cfg.Store.TransitionRun(ctx, run.ID, []string{Pending, Waiting}, Cancelled, reason)
	if err != nil {
		return err
	}
	if ok {
		if err := r.endSteps(ctx, run.ID, string(engine.Skipped), reason); err != nil {
			return err
		}
		r.cfg.Hub.Notify(projectKey(run.Project), runKey(run.ID))
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if stop := r.cancels[run.ID]; stop != nil {
		stop(errors.New(reason))
		return nil
	}
	// Not executing here: claimed but not started yet, or already over.
	cur, err := r.cfg.Store.RunByID(ctx, run.ID)
	if err != nil {
		return err
	}
	if cur.Status != Running {
		return ErrFinished
	}
	r.cancelled[run.ID] = errors.New(reason)
	return nil
}

// Rerun queues the run's commit again. With fromStep, the steps the graph runs before it
// keep the earlier run's results and are not run again.
func (r *Runner) Rerun(ctx context.Context, project string, number int, fromStep, who string) (*store.Run, error) {
	old, err := r.cfg.Store.Run(ctx, project, number)
	if err != nil {
		return nil, err
	}
	if fromStep != "" {
		steps, err := r.cfg.Store.Steps(ctx, old.ID)
		if err != nil {
			return nil, err
		}
		found := false
		for _, s := range steps {
			found = found || s.Name == fromStep
		}
		if !found {
			return nil, fmt.Errorf("run #%d has no step %q: %w", number, fromStep, store.ErrNotFound)
		}
	}
	return r.Enqueue(ctx, Request{Project: project, Branch: old.Branch, Commit: old.Commit, Event: old.Event,
		Trigger: who, RerunOf: old.Number, FromStep: fromStep})
}

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}
