package main

import (
	"strings"
	"testing"
	"time"
)

// drover scale sets the desired count: what runs grows and shrinks in place, without a
// failed request; the count holds across deploys until --reset brings back drover.yml's.
func TestScaleHoldsAcrossDeploysUntilReset(t *testing.T) {
	t.Parallel()
	bin, err := websvcBin()
	if err != nil {
		t.Fatal(err)
	}
	s := deployedApp(t)
	count := func() int { return len(s.pidsOf("staging", "app")) }
	waitCount := func(want int) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); count() != want; time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("app runs %d instances, want %d: %+v", count(), want, s.env("staging").Services)
			}
		}
	}
	if res := s.as(s.tokenWithRole("viewer"), "scale", "app", "--env", "staging", "4"); res.code == 0 {
		t.Errorf("a viewer scaled: %s", res)
	}
	for _, bad := range []string{"0", "101", "many"} {
		if res := s.as(s.Token, "scale", "app", "--env", "staging", bad); res.code != 2 {
			t.Errorf("scale to %q: %s", bad, res)
		}
	}
	if res := s.as(s.Token, "scale", "nosuch", "--env", "staging", "2"); res.code == 0 {
		t.Errorf("scaled a project that does not exist: %s", res)
	}

	l := s.startLoad("app", "staging", 8)
	if res := s.as(s.Token, "scale", "app", "--env", "staging", "4"); res.code != 0 || !strings.Contains(res.stdout, "app in staging: 4 instances") {
		t.Fatalf("scale to 4: %s", res)
	}
	waitCount(4)
	if show := s.as(s.Token, "env", "show", "staging"); !strings.Contains(show.stdout, "app is scaled to 4 by hand (by admin;") {
		t.Errorf("env show does not say app is scaled by hand:\n%s", show.stdout)
	}
	if res := s.as(s.Token, "scale", "app", "--env", "staging", "1"); res.code != 0 {
		t.Fatalf("scale to 1: %s", res)
	}
	waitCount(1)
	l.end()
	if l.fail.Load() != 0 || l.ok.Load() == 0 {
		t.Errorf("while scaling: %d ok, %d failed %v", l.ok.Load(), l.fail.Load(), l.errs)
	}

	// A deploy keeps the count (drover.yml says 2).
	repo := gitRepo(t, servicePipeline(bin, "app", "v2", "", ""))
	git(t, repo, "push", "-q", "-f", s.pushURL("app"), "main")
	if run := s.waitRun("app", 2, finished); run.Status != "success" {
		t.Fatalf("run 2: %+v", run)
	}
	s.waitBody("app", "staging", "v2 staging")
	waitCount(1)
	if res := s.as(s.Token, "scale", "app", "--env", "staging", "--reset"); res.code != 0 || !strings.Contains(res.stdout, "back to 2 instances") {
		t.Fatalf("scale --reset: %s", res)
	}
	waitCount(2)
	if audit := s.as(s.Token, "audit"); !strings.Contains(audit.stdout, "scale") || !strings.Contains(audit.stdout, "app scaled to 1") {
		t.Errorf("the audit log lacks the scale:\n%s", audit.stdout)
	}
}
