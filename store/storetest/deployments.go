package storetest

import (
	"reflect"
	"testing"
	"time"

	"github.com/drover-cd/drover/store"
)

func testEnvironments(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, name := range []string{"staging", "production"} {
		e := &store.Environment{Name: name, Strategy: "blue-green"}
		if err := s.CreateEnvironment(ctx, e); err != nil {
			t.Fatalf("CreateEnvironment(%s): %v", name, err)
		}
		if e.ID == 0 {
			t.Errorf("CreateEnvironment(%s) did not set ID", name)
		}
		checkCreated(t, "CreateEnvironment("+name+")", e.Created)
	}
	wantErr(t, "CreateEnvironment of a taken name", s.CreateEnvironment(ctx, &store.Environment{Name: "staging", Strategy: "rolling"}), store.ErrExists)
	if err := s.UpdateEnvironment(ctx, &store.Environment{Name: "production", Strategy: "rolling", Track: "main",
		Replicas: 3, Approval: "release-manager", Managed: true, IdleTimeout: 90 * time.Minute, Separation: true, Runtime: "swarm",
		Swarm:    store.Swarm{Host: "tcp://10.0.0.5:2376", TLS: "/etc/swarm"},
		Services: map[string]store.ServiceSettings{"web": {Replicas: 4, Spread: "node.labels.zone", Constraints: []string{"node.role==worker"}, CPU: "0.5"}}}); err != nil {
		t.Fatalf("UpdateEnvironment: %v", err)
	}
	if p, err := s.Environment(ctx, "production"); err != nil || p.Track != "main" || p.Replicas != 3 || p.Approval != "release-manager" || !p.Managed || p.IdleTimeout != 90*time.Minute || !p.Separation || p.Runtime != "swarm" ||
		p.Swarm.Host != "tcp://10.0.0.5:2376" || p.Swarm.TLS != "/etc/swarm" || p.Services["web"].Replicas != 4 ||
		p.Services["web"].Spread != "node.labels.zone" || len(p.Services["web"].Constraints) != 1 || p.Services["web"].CPU != "0.5" {
		t.Errorf("Environment(production) after UpdateEnvironment = %+v, %v", p, err)
	}
	wantErr(t, "UpdateEnvironment(missing)", s.UpdateEnvironment(ctx, &store.Environment{Name: "qa", Strategy: "rolling"}), store.ErrNotFound)
	envs, err := s.Environments(ctx)
	if err != nil || len(envs) != 2 || envs[0].Name != "production" || envs[0].Strategy != "rolling" || envs[1].Strategy != "blue-green" {
		t.Errorf("Environments = %+v, %v", envs, err)
	}
	got, err := s.Environment(ctx, "staging")
	if err != nil || got.Name != "staging" || !got.Created.Equal(envs[1].Created) {
		t.Errorf("Environment(staging) = %+v, %v", got, err)
	}
	_, err = s.Environment(ctx, "qa")
	wantErr(t, "Environment(missing)", err, store.ErrNotFound)
	if err := s.CreateDeployment(ctx, &store.Deployment{Environment: "staging", Service: "web", Project: "web", Status: "success"}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteEnvironment(ctx, "staging"); err != nil {
		t.Fatalf("DeleteEnvironment: %v", err)
	}
	wantErr(t, "DeleteEnvironment(missing)", s.DeleteEnvironment(ctx, "staging"), store.ErrNotFound)
	if ds, err := s.Deployments(ctx, store.DeploymentFilter{Environment: "staging"}); err != nil || len(ds) != 0 {
		t.Errorf("deployments of a deleted environment: %v, %v", ds, err)
	}
}

func testDeployments(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, name := range []string{"staging", "production"} {
		if err := s.CreateEnvironment(ctx, &store.Environment{Name: name, Strategy: "blue-green"}); err != nil {
			t.Fatal(err)
		}
	}
	mk := func(env, service, project string, run int, status string) *store.Deployment {
		t.Helper()
		d := &store.Deployment{Environment: env, Service: service, Project: project, Digest: "sha256:" + service,
			Tag: "r1", Run: run, Strategy: "blue-green", Status: status, Trigger: "alice"}
		if err := s.CreateDeployment(ctx, d); err != nil {
			t.Fatalf("CreateDeployment: %v", err)
		}
		checkCreated(t, "CreateDeployment", d.Created)
		return d
	}
	a := mk("staging", "catalog", "catalog", 1, "running")
	b := mk("staging", "catalog", "catalog", 2, "running")
	c := mk("production", "catalog", "catalog", 1, "success")
	cart := mk("staging", "cart", "cart", 7, "failure")
	wantErr(t, "CreateDeployment to a missing environment",
		s.CreateDeployment(ctx, &store.Deployment{Environment: "qa", Service: "x", Project: "x", Status: "running"}), store.ErrNotFound)

	a.Status, a.Reason, a.Finished = "rolled-back", "unhealthy after the switch", t1
	if err := s.UpdateDeployment(ctx, a); err != nil {
		t.Fatalf("UpdateDeployment: %v", err)
	}
	wantErr(t, "UpdateDeployment(missing)", s.UpdateDeployment(ctx, &store.Deployment{ID: c.ID + 1000}), store.ErrNotFound)

	ids := func(f store.DeploymentFilter) []int64 {
		t.Helper()
		ds, err := s.Deployments(ctx, f)
		if err != nil {
			t.Fatalf("Deployments(%+v): %v", f, err)
		}
		var out []int64
		for _, d := range ds {
			out = append(out, d.ID)
		}
		return out
	}
	for _, tc := range []struct {
		f    store.DeploymentFilter
		want []int64
	}{
		{store.DeploymentFilter{Environment: "staging", Service: "catalog"}, []int64{b.ID, a.ID}},
		{store.DeploymentFilter{Project: "catalog", Run: 1}, []int64{c.ID, a.ID}},
		{store.DeploymentFilter{Status: []string{"success", "rolled-back"}}, []int64{c.ID, a.ID}},
		{store.DeploymentFilter{Environment: "staging", Limit: 1}, []int64{cart.ID}},
	} {
		if got := ids(tc.f); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Deployments(%+v) = %v, want %v", tc.f, got, tc.want)
		}
	}
	ds, err := s.Deployments(ctx, store.DeploymentFilter{Environment: "staging", Service: "catalog", Limit: 1, Status: []string{"rolled-back"}})
	if err != nil || len(ds) != 1 {
		t.Fatalf("Deployments: %v %v", ds, err)
	}
	got, want := *ds[0], *a
	sameTimes(t, "deployment", []string{"Created", "Finished"}, []*time.Time{&got.Created, &got.Finished}, []*time.Time{&want.Created, &want.Finished})
	got.Created, got.Finished, want.Created, want.Finished = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if got != want {
		t.Errorf("deployment read back:\n got %+v\nwant %+v", got, want)
	}
}

func testAudit(t *testing.T, s store.Store) {
	ctx := t.Context()
	if got, err := s.Audit(ctx, 0, 0); err != nil || len(got) != 0 {
		t.Fatalf("Audit of an empty store = %v, %v", got, err)
	}
	var ids []int64
	for i, action := range []string{"deploy", "promote", "rollback"} {
		e := &store.AuditEntry{Actor: "alice", Action: action, Environment: "production", Project: "shop",
			Digest: "sha256:abc", Run: i + 1, Deployment: int64(10 + i), Result: "success", Message: "because " + action}
		if err := s.AppendAudit(ctx, e); err != nil {
			t.Fatalf("AppendAudit: %v", err)
		}
		checkCreated(t, "AppendAudit", e.Time)
		ids = append(ids, e.ID)
	}
	got, err := s.Audit(ctx, 0, 2)
	if err != nil || len(got) != 2 || got[0].ID != ids[2] || got[1].ID != ids[1] {
		t.Fatalf("Audit(0, 2) = %+v, %v", got, err)
	}
	if e := got[0]; e.Action != "rollback" || e.Actor != "alice" || e.Run != 3 || e.Deployment != 12 || e.Message != "because rollback" || e.Environment != "production" {
		t.Errorf("entry read back: %+v", e)
	}
	older, err := s.Audit(ctx, got[1].ID, 10)
	if err != nil || len(older) != 1 || older[0].ID != ids[0] {
		t.Errorf("Audit(before) = %+v, %v", older, err)
	}
}

func testApprovals(t *testing.T, s store.Store) {
	ctx := t.Context()
	p := mustProject(t, s, "shop")
	r := &store.Run{ProjectID: p.ID, Status: "waiting"}
	if err := s.CreateRun(ctx, r); err != nil {
		t.Fatal(err)
	}
	a, err := s.RequestApproval(ctx, &store.Approval{RunID: r.ID, Step: "go-live", Role: "release-manager", Deadline: t1})
	if err != nil || a.Decision != "pending" || a.Role != "release-manager" || !a.Deadline.Equal(t1) {
		t.Fatalf("RequestApproval = %+v, %v", a, err)
	}
	checkCreated(t, "RequestApproval", a.Created)
	// Asking again (a resumed run reaching the step again) returns the stored request.
	again, err := s.RequestApproval(ctx, &store.Approval{RunID: r.ID, Step: "go-live", Role: "other"})
	if err != nil || again.Role != "release-manager" || !again.Created.Equal(a.Created) {
		t.Errorf("RequestApproval again = %+v, %v", again, err)
	}
	if pend, err := s.PendingApprovals(ctx); err != nil || len(pend) != 1 || pend[0].Step != "go-live" {
		t.Errorf("PendingApprovals = %+v, %v", pend, err)
	}
	d := &store.Approval{RunID: r.ID, Step: "go-live", Decision: "approved", Actor: "carol", Message: "ship it"}
	if err := s.DecideApproval(ctx, d); err != nil {
		t.Fatalf("DecideApproval: %v", err)
	}
	wantErr(t, "DecideApproval twice", s.DecideApproval(ctx, &store.Approval{RunID: r.ID, Step: "go-live", Decision: "rejected"}), store.ErrExists)
	wantErr(t, "DecideApproval of nothing", s.DecideApproval(ctx, &store.Approval{RunID: r.ID, Step: "nope", Decision: "approved"}), store.ErrNotFound)
	got, err := s.Approvals(ctx, r.ID)
	if err != nil || len(got) != 1 || got[0].Decision != "approved" || got[0].Actor != "carol" || got[0].Message != "ship it" || got[0].Decided.IsZero() {
		t.Errorf("Approvals = %+v, %v", got, err)
	}
	if pend, err := s.PendingApprovals(ctx); err != nil || len(pend) != 0 {
		t.Errorf("PendingApprovals after the decision = %+v, %v", pend, err)
	}
	_, err = s.RequestApproval(ctx, &store.Approval{RunID: r.ID + 1000, Step: "x", Role: "y"})
	wantErr(t, "RequestApproval of a missing run", err, store.ErrNotFound)

	rm := &store.User{Name: "rm", Role: "developer", Groups: []string{"release-manager", "dba"}}
	if err := s.CreateUser(ctx, rm); err != nil {
		t.Fatal(err)
	}
	tok := &store.Token{UserID: rm.ID, Hash: []byte("0123456789abcdef0123456789abcdef")}
	if err := s.CreateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	back, err := s.TokenByHash(ctx, tok.Hash)
	if err != nil || !reflect.DeepEqual(back.Groups, []string{"release-manager", "dba"}) {
		t.Errorf("token groups read back: %+v, %v", back, err)
	}
}

func testScales(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, name := range []string{"staging", "production"} {
		if err := s.CreateEnvironment(ctx, &store.Environment{Name: name, Strategy: "blue-green"}); err != nil {
			t.Fatal(err)
		}
	}
	wantErr(t, "SetScale in a missing environment", s.SetScale(ctx, &store.Scale{Environment: "qa", Project: "web", Replicas: 2}), store.ErrNotFound)
	sc := &store.Scale{Environment: "production", Project: "web", Replicas: 4, Actor: "alice"}
	if err := s.SetScale(ctx, sc); err != nil {
		t.Fatal(err)
	}
	checkCreated(t, "SetScale", sc.Updated)
	// Set again: replaced, not added.
	if err := s.SetScale(ctx, &store.Scale{Environment: "production", Project: "web", Replicas: 6, Actor: "bob"}); err != nil {
		t.Fatal(err)
	}
	s.SetScale(ctx, &store.Scale{Environment: "production", Project: "api", Replicas: 1, Actor: "bob"})
	s.SetScale(ctx, &store.Scale{Environment: "staging", Project: "web", Replicas: 3, Actor: "bob"})
	got, err := s.Scales(ctx, "production")
	if err != nil || len(got) != 2 || got[0].Project != "api" || got[1].Project != "web" || got[1].Replicas != 6 || got[1].Actor != "bob" {
		t.Fatalf("Scales(production) = %+v, %v", got, err)
	}
	if err := s.DeleteScale(ctx, "production", "web"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "DeleteScale of none", s.DeleteScale(ctx, "production", "web"), store.ErrNotFound)
	if got, _ := s.Scales(ctx, "staging"); len(got) != 1 || got[0].Replicas != 3 {
		t.Errorf("staging's scale after production's went: %+v", got)
	}
	// An environment that goes takes its scales with it.
	if err := s.DeleteEnvironment(ctx, "staging"); err != nil {
		t.Fatal(err)
	}
	s.CreateEnvironment(ctx, &store.Environment{Name: "staging", Strategy: "blue-green"})
	if got, _ := s.Scales(ctx, "staging"); len(got) != 0 {
		t.Errorf("scales outlived their environment: %+v", got)
	}
}
