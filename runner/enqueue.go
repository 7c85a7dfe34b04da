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
	data, err := source.ReadFileLimit(ctx, repo, req.Commit, PipelineFile, pipeline.MaxFileSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoPipeline
	}
	// A drover.yml over the limit is not read, but still makes a run, like one that does
	// not parse: perform fails it at once with the file's size as the reason.
	if err != nil && !errors.Is(err, source.ErrFileTooLarge) {
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
			_ = r.cancel(ctx, o, "drover", fmt.Sprintf("superseded by run #%d", run.Number))
		}
	}
}

// Cancel stops a queued, running or waiting run; who is recorded in the reason, and
// rejects the approvals the run waits for.
func (r *Runner) Cancel(ctx context.Context, project string, number int, who string) error {
	run, err := r.cfg.Store.Run(ctx, project, number)
	if err != nil {
		return err
	}
	return r.cancel(ctx, run, who, "cancelled by "+who)
}

// cancelCause is why a run was cancelled and who cancelled it: the cause of its
// context, so the run's end names who rejects the approvals it still asks for.
type cancelCause struct{ by, reason string }

func (c *cancelCause) Error() string { return c.reason }

// approvalsCancelled is the message of the approvals a cancel rejects.
const approvalsCancelled = "run cancelled"

func (r *Runner) cancel(ctx context.Context, run *store.Run, by, reason string) error {
	cause := &cancelCause{by: by, reason: reason}
	for range 10 {
		ok, err := r.cfg.Store.TransitionRun(ctx, run.ID, []string{Pending, Waiting}, Cancelled, reason)
		if err != nil {
			return err
		}
		if ok {
			// Not executing: close what the run left open, even if the asker goes away.
			rec := context.WithoutCancel(ctx)
			r.endLeases(rec, run.ID, reason)
			r.rejectPending(rec, run, by, approvalsCancelled)
			if err := r.endSteps(rec, run.ID, string(engine.Skipped), reason); err != nil {
				return err
			}
			r.cfg.Hub.Notify(projectKey(run.Project), runKey(run.ID))
			return nil
		}
		retry, err := r.cancelExecuting(ctx, run, cause)
		if !retry {
			return err
		}
		// It went from running to waiting (or was queued again) meanwhile: cancel that.
	}
	return fmt.Errorf("run %s #%d keeps changing state: try again", run.Project, run.Number)
}

// cancelExecuting cancels a run that is not queued or waiting: it stops it when it
// executes here, or has execute stop it at once. retry says the run was queued or
// waiting after all.
func (r *Runner) cancelExecuting(ctx context.Context, run *store.Run, cause *cancelCause) (retry bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if stop := r.cancels[run.ID]; stop != nil {
		stop(cause)
		return false, nil
	}
	// Not executing here: claimed but not started yet, just ended, or already over.
	cur, err := r.cfg.Store.RunByID(ctx, run.ID)
	if err != nil {
		return false, err
	}
	switch cur.Status {
	case Running:
		r.cancelled[run.ID] = cause
		return false, nil
	case Pending, Waiting:
		return true, nil
	}
	return false, ErrFinished
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
