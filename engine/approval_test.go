package engine

import (
	"context"
	"testing"
)

const approvalPipeline = `
steps:
  - {name: build, run: echo built}
  - {name: go-live, approval: {role: release-manager}}
  - {name: production, run: echo deployed}
  - {name: lint, needs: [build], run: echo lint}
`

func TestApprovalWaitsAndLeavesDependentsPending(t *testing.T) {
	res, _ := runJob(t, newFake(), 2, approvalPipeline, func(j *Job) {
		j.Approval = func(context.Context, ApprovalRequest) (Decision, error) { return Decision{Waiting: true}, nil }
	})
	if res.Status != Waiting {
		t.Fatalf("run %s: %s", res.Status, statuses(res))
	}
	for name, want := range map[string]Status{"build": Success, "go-live": Waiting, "production": Pending, "lint": Success} {
		if got := result(t, res, name).Status; got != want {
			t.Errorf("%s: %s, want %s", name, got, want)
		}
	}
}

func TestApprovedRunGoesOnAndRejectedFails(t *testing.T) {
	for _, approved := range []bool{true, false} {
		var asked ApprovalRequest
		res, _ := runJob(t, newFake(), 1, approvalPipeline, func(j *Job) {
			j.Approval = func(_ context.Context, req ApprovalRequest) (Decision, error) {
				asked = req
				return Decision{Approved: approved, By: "carol", Message: "ok by me"}, nil
			}
		})
		if asked.Role != "release-manager" || asked.Step != "go-live" {
			t.Errorf("asked %+v", asked)
		}
		prod := result(t, res, "production")
		if approved && (res.Status != Success || prod.Status != Success || result(t, res, "go-live").Reason != "approved by carol: ok by me") {
			t.Errorf("approved: run %s (%s)", res.Status, statuses(res))
		}
		if !approved && (res.Status != Failure || prod.Status != Skipped || result(t, res, "go-live").Reason != "rejected by carol: ok by me") {
			t.Errorf("rejected: run %s (%s)", res.Status, statuses(res))
		}
	}
}
