package engine

import (
	"context"
	"time"

	"github.com/drover-cd/drover/pipeline"
)

// ApprovalRequest is what Job.Approval gets for an approval: step.
type ApprovalRequest struct {
	Step    string        // the step's node name
	Role    string        // who may approve
	Timeout time.Duration // 0 waits for ever
}

// Decision is the state of an approval.
type Decision struct {
	Waiting  bool   // nobody decided yet: the run stops at this step and resumes later
	Approved bool   // when not Waiting: approved, else rejected
	By       string // who decided
	Message  string
}

// waitsFor names the approval step n waits for, through its needs; "" when none.
func (r *run) waitsFor(n *pipeline.Node) string {
	for _, dep := range n.Needs {
		if r.results[dep].Status == Waiting {
			return dep.Name
		}
		if name := r.blocked[dep]; name != "" {
			return name
		}
	}
	return ""
}

// runApproval asks Job.Approval about an approval: step.
func (r *run) runApproval(ctx context.Context, n *pipeline.Node) *StepResult {
	res := &StepResult{Name: n.Name, Started: r.now(), Attempts: 1}
	r.emit(Event{Type: StepStarted, Step: n.Name, Attempt: 1})
	d, err := r.job.Approval(ctx, ApprovalRequest{Step: n.Name, Role: n.Step.Approval.Role, Timeout: n.Step.Approval.Timeout})
	switch {
	case ctx.Err() != nil:
		res.Status, res.Reason = Cancelled, CancelReason(ctx)
	case err != nil:
		res.Status, res.Reason = Errored, "approval: "+err.Error()
	case d.Waiting:
		res.Status, res.Reason = Waiting, "waits for a person with the "+n.Step.Approval.Role+" role to approve"
		r.emit(Event{Type: StepNote, Step: n.Name, Attempt: 1, Line: res.Reason})
	case d.Approved:
		res.Status, res.Reason = Success, "approved by "+d.By
		if d.Message != "" {
			res.Reason += ": " + d.Message
		}
		r.emit(Event{Type: StepNote, Step: n.Name, Attempt: 1, Line: res.Reason})
	default:
		res.Status, res.Reason, res.ExitCode = Failure, "rejected by "+d.By, 1
		if d.Message != "" {
			res.Reason += ": " + d.Message
		}
		r.emit(Event{Type: StepNote, Step: n.Name, Attempt: 1, Line: res.Reason})
	}
	res.Finished = r.now()
	return res
}
