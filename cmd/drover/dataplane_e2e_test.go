package main

import (
	"slices"
	"syscall"
	"testing"
	"time"
)

// pidsOf is the pids of service's instances in env, sorted.
func (s *testServer) pidsOf(env, service string) []int {
	var out []int
	for _, svc := range s.env(env).Services {
		if svc.Service == service {
			for _, i := range svc.Instances {
				out = append(out, i.Pid)
			}
		}
	}
	slices.Sort(out)
	return out
}

// deployedApp starts a server and deploys a 2-replica service app to staging.
func deployedApp(t *testing.T, extra ...string) *testServer {
	t.Helper()
	bin, err := websvcBin()
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, t.TempDir(), "", extra...)
	s.deliver("app", servicePipeline(bin, "app", "v1", "", ""))
	s.waitBody("app", "staging", "v1 staging")
	t.Cleanup(func() { s.as(s.Token, "env", "stop", "--all") }) // the instances outlive the server
	return s
}

// SIGTERM or kill -9 of the server does not stop production: the next server adopts
// the instances (the same pids), serves them at once, and the deploy history is intact;
// an instance killed while the server was down is replaced once it is back, the other
// one serving meanwhile.
func TestInstancesOutliveTheServer(t *testing.T) {
	t.Parallel()
	s := deployedApp(t)
	before := s.pidsOf("staging", "app")
	history := len(s.env("staging").Deployments)
	if len(before) != 2 {
		t.Fatalf("instances: %v", before)
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		s.stop(sig)
		for _, pid := range before {
			if syscall.Kill(pid, 0) != nil {
				t.Fatalf("after %v of the server, instance %d is gone", sig, pid)
			}
		}
		s.start()
		s.waitBody("app", "staging", "v1 staging")
		if got := s.pidsOf("staging", "app"); !slices.Equal(got, before) {
			t.Errorf("after %v and a restart, app runs %v, was %v", sig, got, before)
		}
		if n := len(s.env("staging").Deployments); n != history {
			t.Errorf("after %v, the history has %d entries, had %d", sig, n, history)
		}
	}

	// One instance dies while the server is down.
	s.stop(syscall.SIGTERM)
	syscall.Kill(before[0], syscall.SIGKILL)
	time.Sleep(200 * time.Millisecond)
	s.start()
	s.waitBody("app", "staging", "v1 staging")
	if !s.healed("staging", "app", 20*time.Second, func(_ string, pid int) bool { return pid == before[0] }) {
		t.Errorf("the instance killed while the server was down was not replaced: %+v", s.env("staging").Services)
	}
	if got := s.pidsOf("staging", "app"); !slices.Contains(got, before[1]) {
		t.Errorf("the surviving instance %d was replaced too: %v", before[1], got)
	}
}

// A second drover server on the same data folder takes over from the running one: its
// sockets, its instances; under load, not one request fails, and the old one exits.
func TestInPlaceUpgradeDropsNothing(t *testing.T) {
	t.Parallel()
	s := deployedApp(t)
	before := s.pidsOf("staging", "app")
	l := s.startLoad("app", "staging", 8)
	time.Sleep(300 * time.Millisecond)
	next := &testServer{t: t, Data: s.Data, log: &syncBuffer{}}
	next.start()
	t.Cleanup(func() { next.as(next.Token, "env", "stop", "--all") }) // before next stops
	if next.URL != s.URL || next.Proxy != s.Proxy {
		t.Errorf("the new server listens on %s and %s, the old one did on %s and %s", next.URL, next.Proxy, s.URL, s.Proxy)
	}
	exited := make(chan error, 1)
	go func() { exited <- s.cmd.Wait() }()
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Errorf("the old server did not exit after the handover:\n%s", s.log)
	}
	time.Sleep(300 * time.Millisecond)
	l.end()
	if l.fail.Load() != 0 || l.ok.Load() == 0 {
		t.Errorf("during the upgrade: %d ok, %d failed %v\nold server:\n%s\nnew server:\n%s", l.ok.Load(), l.fail.Load(), l.errs, s.log, next.log)
	}
	if got := next.pidsOf("staging", "app"); !slices.Equal(got, before) {
		t.Errorf("after the upgrade app runs %v, was %v", got, before)
	}
}
