package runner

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/drover-cd/drover/engine"
	"github.com/drover-cd/drover/store"
)

// ErrNoApproval is returned by Decide when the run waits for no approval.
var ErrNoApproval = errors.New("the run waits for no approval")

// approval is the engine's Job.Approval for run: it answers from the store, asking for
// the approval the first time the run reaches the step.
func (r *Runner) approval(run *store.Run) func(context.Context, engine.ApprovalRequest) (engine.Decision, error) {
	return func(ctx context.Context, req engine.ApprovalRequest) (engine.Decision, error) {
		a := &store.Approval{RunID: run.ID, Step: req.Step, Role: req.Role}
		if req.Timeout > 0 {
			a.Deadline = time.Now().Add(req.Timeout)
		}
		got, err := r.cfg.Store.RequestApproval(ctx, a)
		if err != nil {
			return engine.Decision{}, err
		}
		switch got.Decision {
		case "approved":
			return engine.Decision{Approved: true, By: got.Actor, Message: got.Message}, nil
		case "rejected":
			return engine.Decision{By: got.Actor, Message: got.Message}, nil
		}
		return engine.Decision{Waiting: true}, nil
	}
}

// PendingApproval returns the approval run waits for: step's, or the only one when
// step is "".
func (r *Runner) PendingApproval(ctx context.Context, run *store.Run, step string) (*store.Approval, error) {
	as, err := r.cfg.Store.Approvals(ctx, run.ID)
	if err != nil {
		return nil, err
	}
	var pending []*store.Approval
	for _, a := range as {
		if a.Decision == "pending" && (step == "" || a.Step == step) {
			pending = append(pending, a)
		}
	}
	switch {
	case len(pending) == 0:
		return nil, fmt.Errorf("run %s #%d: %w", run.Project, run.Number, ErrNoApproval)
	case len(pending) > 1:
		var names []string
		for _, a := range pending {
			names = append(names, a.Step)
		}
		return nil, fmt.Errorf("run %s #%d waits for several approvals (%v): name the step", run.Project, run.Number, names)
	}
	return pending[0], nil
}

// Decide records a person's decision on a run's waiting approval and queues the run
// again: it resumes at that step, keeping what it had done.
func (r *Runner) Decide(ctx context.Context, run *store.Run, step string, approve bool, actor, message string) (*store.Approval, error) {
	a, err := r.PendingApproval(ctx, run, step)
	if err != nil {
		return nil, err
	}
	a.Decision, a.Actor, a.Message = "rejected", actor, message
	if approve {
		a.Decision = "approved"
	}
	if err := r.cfg.Store.DecideApproval(ctx, a); err != nil {
		return nil, err
	}
	if err := r.resume(ctx, run.ID); err != nil {
		return nil, err
	}
	r.cfg.Log.Info("approval decided", "project", run.Project, "run", run.Number, "step", a.Step, "decision", a.Decision, "by", actor)
	return a, nil
}

// resume queues a waiting run again.
func (r *Runner) resume(ctx context.Context, id int64) error {
	ok, err := r.cfg.Store.TransitionRun(ctx, id, []string{Waiting}, Pending, "")
	if err != nil {
		return err
	}
	if ok {
		run, err := r.cfg.Store.RunByID(ctx, id)
		if err == nil {
			r.cfg.Hub.Notify(runKey(id), projectKey(run.Project))
		}
		r.kick()
	}
	return nil
}

// expireApprovals rejects approvals nobody decided before their deadline, every tick
// until ctx ends.
func (r *Runner) expireApprovals(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pending, err := r.cfg.Store.PendingApprovals(ctx)
		if err != nil {
			r.cfg.Log.Error("read pending approvals", "err", err)
			continue
		}
		for _, a := range slices.DeleteFunc(pending, func(a *store.Approval) bool {
			return a.Deadline.IsZero() || time.Now().Before(a.Deadline)
		}) {
			a.Decision, a.Actor = "rejected", "drover"
			a.Message = fmt.Sprintf("nobody with the %s role decided within the timeout", a.Role)
			if err := r.cfg.Store.DecideApproval(ctx, a); err != nil {
				continue // decided meanwhile
			}
			if err := r.resume(ctx, a.RunID); err != nil {
				r.cfg.Log.Error("resume a run after its approval timed out", "run_id", a.RunID, "err", err)
			}
		}
	}
}
