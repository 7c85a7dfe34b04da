package deploy

import (
	"context"
	"errors"
	"fmt"

	"github.com/drover-cd/drover/store"
)

// What a person must get past to change what runs where (issue 13, "secure defaults
// for releases"): the approval role of the environment, and the gates of the run the
// release comes from. A run's own deploy: steps meet the first in the runner and are
// exempt from the second (they deploy before their run has passed); the server's own
// deploys (tracking, environments.yml, healing, automatic rollbacks) ask nobody.

// defaultApprovals are the approval roles of environments no environments.yml
// declares: production takes changes only from release managers (and admins), as if
// declared `production: {approval: release-manager}`, so a fresh server does not let
// every developer deploy there. A declaration wins, also one without approval:.
var defaultApprovals = map[string]string{"production": "release-manager"}

// approvalOf is the approval role changes to the environment called name need, ""
// for none. e is the stored environment, nil when it does not exist yet.
func approvalOf(name string, e *store.Environment) string {
	if e != nil && (e.Managed || e.Approval != "") {
		return e.Approval
	}
	return defaultApprovals[name]
}

// ApprovalRole returns the approval role changes to env need ("" for none): what
// environments.yml declares, else the default (production needs a release-manager).
// It also returns the environment, nil when it does not exist yet.
func (m *Manager) ApprovalRole(ctx context.Context, env string) (string, *store.Environment, error) {
	e, err := m.cfg.Store.Environment(ctx, env)
	if errors.Is(err, store.ErrNotFound) {
		return approvalOf(env, nil), nil, nil
	}
	if err != nil {
		return "", nil, err
	}
	return approvalOf(env, e), e, nil
}

// ErrNotPassed is wrapped by the refusal of a release whose run has not passed.
var ErrNotPassed = errors.New("the release's run has not passed")

// NotPassedError refuses a release whose run failed or has not passed yet. It unwraps
// to ErrNotPassed.
type NotPassedError struct {
	Project string
	Run     int
	Status  string // the run's: pending, running, waiting, failure, error, cancelled
	Gate    string // the approval: step a waiting run waits at; "" when not known
}

func (e *NotPassedError) Unwrap() error { return ErrNotPassed }

// Error says what state the run is in and what to do about it.
func (e *NotPassedError) Error() string {
	var todo string
	switch e.Status {
	case "waiting":
		todo = fmt.Sprintf("approve it first (drover approve %s %d)", e.Project, e.Run)
	case "pending", "running":
		todo = "wait until it passes"
	default:
		todo = "only a release whose run passed may go out: deploy one that did"
	}
	return e.State() + ": " + todo + ", or an admin may --force"
}

// State says what state the run is in: "run 1 of app is waiting at approval go-live".
func (e *NotPassedError) State() string {
	run := fmt.Sprintf("run %d of %s", e.Run, e.Project)
	switch e.Status {
	case "waiting":
		if e.Gate == "" {
			return run + " is waiting at an approval"
		}
		return run + " is waiting at approval " + e.Gate
	case "pending":
		return run + " has not started yet (pending)"
	case "running":
		return run + " is still running"
	case "failure":
		return run + " failed"
	case "error":
		return run + " ended in an error"
	case "cancelled":
		return run + " was cancelled"
	}
	return run + " has not passed (" + e.Status + ")"
}

// checkPassed returns a *NotPassedError unless run n of project passed. With force,
// it lets such a run through and returns instead what was forced, for the log and the
// audit log ("" when nothing was).
func (m *Manager) checkPassed(ctx context.Context, project string, n int, force bool) (forced string, err error) {
	run, err := m.cfg.Store.Run(ctx, project, n)
	if err != nil {
		return "", fmt.Errorf("the run of %s's release #%d: %w", project, n, err) // when unsure, refuse
	}
	if run.Status == "success" {
		return "", nil
	}
	np := &NotPassedError{Project: project, Run: n, Status: run.Status}
	if run.Status == "waiting" {
		as, err := m.cfg.Store.Approvals(ctx, run.ID)
		if err != nil {
			return "", err
		}
		for _, a := range as {
			if a.Decision == "pending" {
				np.Gate = a.Step
				break
			}
		}
	}
	if force {
		return np.State(), nil
	}
	return "", np
}

// forcedNote joins what was forced to an audit message.
func forcedNote(forced, message string) string {
	switch {
	case forced == "":
		return message
	case message == "":
		return "forced: " + forced
	}
	return "forced: " + forced + "; " + message
}
