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
// again: it resumes at that step, keeping what it had done. A decision taken while the
// run still runs (other steps of it go on) resumes it once they end. A run that ended
// (cancelled, failed) takes no decision: ErrNoApproval.
func (r *Runner) Decide(ctx context.Context, run *store.Run, step string, approve bool, actor, message string) (*store.Approval, error) {
	cur, err := r.cfg.Store.RunByID(ctx, run.ID)
	if err != nil {
		return nil, err
	}
	if cur.Status != Waiting && cur.Status != Running {
		return nil, fmt.Errorf("run %s #%d is %s: %w", run.Project, run.Number, cur.Status, ErrNoApproval)
	}
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
	// The decision is recorded: queue the run even if the asker goes away now.
	if _, err := r.resume(context.WithoutCancel(ctx), run.ID); err != nil {
		return nil, err
	}
	r.cfg.Log.Info("approval decided", "project", run.Project, "run", run.Number, "step", a.Step, "decision", a.Decision, "by", actor)
	return a, nil
}

// resume queues a waiting run again; it reports whether the run was waiting.
func (r *Runner) resume(ctx context.Context, id int64) (bool, error) {
	ok, err := r.cfg.Store.TransitionRun(ctx, id, []string{Waiting}, Pending, "")
	if err != nil {
		return false, err
	}
	if ok {
		run, err := r.cfg.Store.RunByID(ctx, id)
		if err == nil {
			r.cfg.Hub.Notify(runKey(id), projectKey(run.Project))
		}
		r.kick()
	}
	return ok, nil
}

// resumeIfDecided resumes a waiting run whose approvals were all decided: decisions
// taken while the run was still running could not resume it then.
func (r *Runner) resumeIfDecided(ctx context.Context, id int64) (bool, error) {
	as, err := r.cfg.Store.Approvals(ctx, id)
	if err != nil {
		return false, err
	}
	if len(as) == 0 {
		return false, nil // waits for no approval: resuming would only wait again
	}
	for _, a := range as {
		if a.Decision == "pending" {
			return false, nil
		}
	}
	return r.resume(ctx, id)
}

// resumeDecided resumes every waiting run none of whose approvals is pending.
func (r *Runner) resumeDecided(ctx context.Context) error {
	// Waiting runs first: a run that waits now asked for its approvals before, so the
	// pending list read next has them unless they were decided.
	waiting, err := r.cfg.Store.Runs(ctx, store.RunFilter{Status: []string{Waiting}, Limit: 10000})
	if err != nil || len(waiting) == 0 {
		return err
	}
	pending, err := r.cfg.Store.PendingApprovals(ctx)
	if err != nil {
		return err
	}
	asks := map[int64]bool{}
	for _, a := range pending {
		asks[a.RunID] = true
	}
	for _, run := range waiting {
		if asks[run.ID] {
			continue
		}
		ok, err := r.resumeIfDecided(ctx, run.ID)
		if err != nil {
			return err
		}
		if ok {
			r.cfg.Log.Info("run resumed: its approvals were decided", "project", run.Project, "run", run.Number)
		}
	}
	return nil
}

// rejectPending rejects the approvals run still asks for, in actor's name, with an
// audit entry each: the run ended without them (cancelled, failed).
func (r *Runner) rejectPending(ctx context.Context, run *store.Run, actor, message string) {
	as, err := r.cfg.Store.Approvals(ctx, run.ID)
	if err != nil {
		r.cfg.Log.Error("read the approvals of an ended run", "project", run.Project, "run", run.Number, "err", err)
		return
	}
	for _, a := range as {
		if a.Decision != "pending" {
			continue
		}
		a.Decision, a.Actor, a.Message = "rejected", actor, message
		if err := r.cfg.Store.DecideApproval(ctx, a); err != nil {
			continue // decided meanwhile
		}
		r.audit(ctx, run, a)
	}
}

// audit records in the audit log a decision the server took, not a person through
// the API (which records its own).
func (r *Runner) audit(ctx context.Context, run *store.Run, a *store.Approval) {
	action := "reject"
	if a.Decision == "approved" {
		action = "approve"
	}
	e := &store.AuditEntry{Actor: a.Actor, Action: action, Project: run.Project, Run: run.Number, Digest: run.Artifact,
		Result: a.Decision, Message: "step " + a.Step}
	if a.Message != "" {
		e.Message += ": " + a.Message
	}
	if err := r.cfg.Store.AppendAudit(ctx, e); err != nil {
		r.cfg.Log.Error("append to the audit log", "action", action, "err", err)
	}
}

// expireApprovals rejects approvals nobody decided before their deadline, and resumes
// waiting runs whose approvals were all decided (while they still ran), every tick
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
		r.expire(ctx)
		if err := r.resumeDecided(ctx); err != nil && ctx.Err() == nil {
			r.cfg.Log.Error("resume decided runs", "err", err)
		}
	}
}

// expire rejects the approvals past their deadline.
func (r *Runner) expire(ctx context.Context) {
	pending, err := r.cfg.Store.PendingApprovals(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.cfg.Log.Error("read pending approvals", "err", err)
		}
		return
	}
	for _, a := range slices.DeleteFunc(pending, func(a *store.Approval) bool {
		return a.Deadline.IsZero() || time.Now().Before(a.Deadline)
	}) {
		a.Decision, a.Actor = "rejected", "drover"
		a.Message = fmt.Sprintf("nobody with the %s role decided within the timeout", a.Role)
		if err := r.cfg.Store.DecideApproval(ctx, a); err != nil {
			continue // decided meanwhile
		}
		if run, err := r.cfg.Store.RunByID(ctx, a.RunID); err == nil {
			r.audit(ctx, run, a)
		}
		if _, err := r.resume(ctx, a.RunID); err != nil {
			r.cfg.Log.Error("resume a run after its approval timed out", "run_id", a.RunID, "err", err)
		}
	}
}
