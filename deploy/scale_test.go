package deploy

import (
	"context"
	"errors"
	"testing"

	"github.com/drover-cd/drover/pipeline"
	"github.com/drover-cd/drover/store"
)

// A count a person set outranks the environment's, which outranks drover.yml's; with
// none set, drover.yml's comes back, also after a count replaced it on the target.
func TestReplicaCountsOutrankEachOther(t *testing.T) {
	m, _ := liveSetup(t)
	st := withStore(t, m)
	ctx := context.Background()
	env := &store.Environment{Name: "production", Strategy: BlueGreen}
	if err := st.CreateEnvironment(ctx, env); err != nil {
		t.Fatal(err)
	}
	t0 := &target{service: &pipeline.Service{Name: "web", Replicas: 2}, declared: 2}
	count := func(tt *target) int { return m.sized(ctx, env, "web", tt).service.Replicas }
	if n := count(t0); n != 2 {
		t.Errorf("drover.yml's alone: %d, want 2", n)
	}
	env.Replicas = 3
	if n := count(t0); n != 3 {
		t.Errorf("with the environment's: %d, want 3", n)
	}
	if err := st.SetScale(ctx, &store.Scale{Environment: "production", Project: "web", Replicas: 5}); err != nil {
		t.Fatal(err)
	}
	scaled := m.sized(ctx, env, "web", t0)
	if scaled.service.Replicas != 5 || t0.service.Replicas != 2 {
		t.Errorf("with a count set by hand: %d (the release's own now %d), want 5 (2)", scaled.service.Replicas, t0.service.Replicas)
	}
	if n := m.sized(ctx, env, "api", t0).service.Replicas; n != 3 {
		t.Errorf("another project's count applied: %d", n)
	}
	st.DeleteScale(ctx, "production", "web")
	env.Replicas = 0
	if n := count(scaled); n != 2 {
		t.Errorf("after the counts went, from a target a count had replaced: %d, want drover.yml's 2", n)
	}
}

// A frozen manager (a server handing over to a successor) refuses every change of what
// runs, and waits for a deploy under way before it freezes.
func TestFrozenManagerRefusesChanges(t *testing.T) {
	m, mk := liveSetup(t)
	st := withStore(t, m)
	ctx := context.Background()
	st.CreateEnvironment(ctx, &store.Environment{Name: "staging", Strategy: BlueGreen})
	s := m.service("staging", "web")
	if err := s.deploy(ctx, mk("v1"), &store.Deployment{ID: 1, Strategy: BlueGreen}, tlog(t)); err != nil {
		t.Fatal(err)
	}
	m.Freeze()
	if _, err := m.Deploy(ctx, Request{Env: "staging", Project: "web"}); !errors.Is(err, ErrFrozen) {
		t.Errorf("Deploy when frozen: %v", err)
	}
	if _, err := m.Scale(ctx, "staging", "web", 3, "alice"); !errors.Is(err, ErrFrozen) {
		t.Errorf("Scale when frozen: %v", err)
	}
	if _, err := m.StopEnv(ctx, "staging", "alice", ""); !errors.Is(err, ErrFrozen) {
		t.Errorf("StopEnv when frozen: %v", err)
	}
	if _, err := m.Rollback(ctx, RollbackRequest{Env: "staging", Project: "web"}); !errors.Is(err, ErrFrozen) {
		t.Errorf("Rollback when frozen: %v", err)
	}
	if count(s) != 2 {
		t.Errorf("freezing changed what runs: %d instances", count(s))
	}
}
