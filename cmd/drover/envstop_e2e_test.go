package main

import (
	"net/http"
	"strings"
	"syscall"
	"testing"
)

// drover env stop takes an environment's services down on purpose, audited; they stay
// down across a restart until the next deploy.
func TestEnvStopIsExplicitAndLasts(t *testing.T) {
	t.Parallel()
	s := deployedApp(t)

	viewer := s.tokenWithRole("viewer")
	if res := s.as(viewer, "env", "stop", "staging"); res.code == 0 {
		t.Errorf("a viewer stopped staging: %s", res)
	}
	if res := s.as(s.Token, "env", "stop", "nosuch"); res.code == 0 || !strings.Contains(res.stderr, "no environment nosuch") {
		t.Errorf("stopping a missing environment: %s", res)
	}
	res := s.as(s.Token, "env", "stop", "staging", "-m", "maintenance")
	if res.code != 0 || !strings.Contains(res.stdout, "staging: stopped app") {
		t.Fatalf("env stop: %s", res)
	}
	stopped := func(when string) {
		t.Helper()
		if code, _, err := s.viaProxy("app", "staging", "/"); err != nil || code != http.StatusBadGateway {
			t.Errorf("%s, app still answers: %d %v", when, code, err)
		}
		if e := s.env("staging"); len(e.Services) != 0 && len(e.Services[0].Instances) != 0 {
			t.Errorf("%s, staging runs %+v", when, e.Services)
		}
	}
	stopped("after env stop")
	if d := s.env("staging").Deployments[0]; d.Status != "stopped" || d.Reason != "stopped by admin: maintenance" {
		t.Errorf("the history's newest entry: %+v", d)
	}
	if audit := s.as(s.Token, "audit"); !strings.Contains(audit.stdout, "stop") || !strings.Contains(audit.stdout, "maintenance") {
		t.Errorf("audit log lacks the stop:\n%s", audit.stdout)
	}
	s.stop(syscall.SIGTERM)
	s.start()
	stopped("after a restart")
	// The next deploy starts it again.
	if res := s.as(s.Token, "deploy", "app", "--env", "staging"); res.code != 0 {
		t.Fatalf("deploy after the stop: %s", res)
	}
	s.waitBody("app", "staging", "v1 staging")
}
