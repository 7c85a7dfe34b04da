package deploy

import (
	"errors"
	"fmt"
	"testing"

	"github.com/drover-cd/drover/store"
)

// production asks for a release-manager unless environments.yml declares it; a
// declaration wins, also one without approval:.
func TestApprovalOfEnvironments(t *testing.T) {
	for _, c := range []struct {
		name string
		env  *store.Environment
		want string
	}{
		{"production", nil, "release-manager"},
		{"production", &store.Environment{Name: "production"}, "release-manager"}, // made by a deploy
		{"production", &store.Environment{Name: "production", Managed: true}, ""},
		{"production", &store.Environment{Name: "production", Managed: true, Approval: "ops"}, "ops"},
		{"staging", nil, ""},
		{"staging", &store.Environment{Name: "staging"}, ""},
		{"staging", &store.Environment{Name: "staging", Managed: true, Approval: "qa"}, "qa"},
	} {
		if got := approvalOf(c.name, c.env); got != c.want {
			t.Errorf("approvalOf(%s, %+v) = %q, want %q", c.name, c.env, got, c.want)
		}
	}
}

// The refusal says the run's state and what to do, and is told by errors.Is.
func TestNotPassedErrorSaysWhatToDo(t *testing.T) {
	for _, c := range []struct {
		err  *NotPassedError
		want string
	}{
		{&NotPassedError{Project: "app", Run: 1, Status: "waiting", Gate: "go-live"},
			"run 1 of app is waiting at approval go-live: approve it first (drover approve app 1), or an admin may --force"},
		{&NotPassedError{Project: "app", Run: 2, Status: "failure"},
			"run 2 of app failed: only a release whose run passed may go out: deploy one that did, or an admin may --force"},
		{&NotPassedError{Project: "app", Run: 3, Status: "running"}, "run 3 of app is still running: wait until it passes, or an admin may --force"},
		{&NotPassedError{Project: "app", Run: 4, Status: "pending"},
			"run 4 of app has not started yet (pending): wait until it passes, or an admin may --force"},
		{&NotPassedError{Project: "app", Run: 5, Status: "cancelled"},
			"run 5 of app was cancelled: only a release whose run passed may go out: deploy one that did, or an admin may --force"},
		{&NotPassedError{Project: "app", Run: 6, Status: "error"},
			"run 6 of app ended in an error: only a release whose run passed may go out: deploy one that did, or an admin may --force"},
	} {
		if got := c.err.Error(); got != c.want {
			t.Errorf("got  %s\nwant %s", got, c.want)
		}
		wrapped := fmt.Errorf("promote: %w", c.err)
		var np *NotPassedError
		if !errors.Is(wrapped, ErrNotPassed) || !errors.As(wrapped, &np) || np.Run != c.err.Run {
			t.Errorf("%v is not told by errors.Is/As", wrapped)
		}
	}
}
