// Package storetest is the test suite every store.Store implementation passes. An
// implementation's tests call Run with a function opening a fresh, empty store:
//
//	func TestSQLite(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store {
//			db, err := sqlstore.Open(t.Context(), filepath.Join(t.TempDir(), "drover.db"))
//			if err != nil {
//				t.Fatal(err)
//			}
//			return db
//		})
//	}
//
// The suite expects times to round-trip to the microsecond and to be read back in UTC.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/drover-cd/drover/store"
)

// Run runs the suite. Its subtests run in parallel, each on a store of its own that
// open returns empty and ready; open may register cleanups on the t it is given, and
// Run closes the store when the subtest ends.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Projects", testProjects},
		{"ProjectDuplicate", testProjectDuplicate},
		{"Users", testUsers},
		{"Tokens", testTokens},
		{"RevokeAndTouchTokens", testRevokeAndTouchTokens},
		{"RunNumbersPerProject", testRunNumbersPerProject},
		{"RunNumbersConcurrent", testRunNumbersConcurrent},
		{"RunRoundTrip", testRunRoundTrip},
		{"RunsFilter", testRunsFilter},
		{"RunsPaging", testRunsPaging},
		{"UpdateRun", testUpdateRun},
		{"TransitionRun", testTransitionRun},
		{"TransitionRunRace", testTransitionRunRace},
		{"CountRuns", testCountRuns},
		{"Steps", testSteps},
		{"NotFound", testNotFound},
		{"Cancelled", testCancelled},
		{"Environments", testEnvironments},
		{"Deployments", testDeployments},
		{"Scales", testScales},
		{"Audit", testAudit},
		{"Approvals", testApprovals},
		{"Secrets", testSecrets},
		{"SecretVersionsConcurrent", testSecretVersionsConcurrent},
		{"ReplaceSecretCiphertext", testReplaceSecretCiphertext},
		{"Agents", testAgents},
		{"Leases", testLeases},
		{"EndLeaseRace", testEndLeaseRace},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, s)
		})
	}
}

// A time in another zone with microseconds, for round trips.
var (
	t1 = time.Date(2025, 6, 1, 12, 30, 45, 123456000, time.FixedZone("CEST", 2*3600))
	t2 = time.Date(2025, 6, 1, 12, 41, 2, 999999000, time.FixedZone("EDT", -4*3600))
)

// mustProject creates a project called name.
func mustProject(t *testing.T, s store.Store, name string) *store.Project {
	t.Helper()
	p := &store.Project{Name: name, URL: "https://example.com/" + name + ".git"}
	if err := s.CreateProject(t.Context(), p); err != nil {
		t.Fatalf("CreateProject(%s): %v", name, err)
	}
	return p
}

// mustRun creates a run of p on branch with status.
func mustRun(t *testing.T, s store.Store, p *store.Project, branch, status string) *store.Run {
	t.Helper()
	r := &store.Run{ProjectID: p.ID, Project: p.Name, Status: status, Branch: branch, Event: "push", Trigger: "webhook"}
	if err := s.CreateRun(t.Context(), r); err != nil {
		t.Fatalf("CreateRun(%s): %v", p.Name, err)
	}
	return r
}

// checkCreated fails unless a Created just set is recent and in UTC.
func checkCreated(t *testing.T, what string, created time.Time) {
	t.Helper()
	if d := time.Since(created); d < -time.Second || d > time.Minute {
		t.Errorf("%s: Created = %v, not now", what, created)
	}
	if created.Location() != time.UTC {
		t.Errorf("%s: Created is in %v, not UTC", what, created.Location())
	}
}

// sameTimes compares the named times with Equal, checks that those read are in UTC,
// and zeroes them all, so that what they were in can then be compared with DeepEqual.
func sameTimes(t *testing.T, what string, names []string, got, want []*time.Time) {
	t.Helper()
	for i, name := range names {
		if !got[i].Equal(*want[i]) {
			t.Errorf("%s: %s = %v, want %v", what, name, *got[i], *want[i])
		}
		if !got[i].IsZero() && got[i].Location() != time.UTC {
			t.Errorf("%s: %s is in %v, not UTC", what, name, got[i].Location())
		}
		*got[i], *want[i] = time.Time{}, time.Time{}
	}
}

// checkRun fails unless got equals want in every field.
func checkRun(t *testing.T, what string, got, want *store.Run) {
	t.Helper()
	g, w := *got, *want
	sameTimes(t, what, []string{"Created", "Started", "Finished"},
		[]*time.Time{&g.Created, &g.Started, &g.Finished}, []*time.Time{&w.Created, &w.Started, &w.Finished})
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, g, w)
	}
}

// checkStep fails unless got equals want in every field.
func checkStep(t *testing.T, what string, got, want *store.Step) {
	t.Helper()
	g, w := *got, *want
	sameTimes(t, what, []string{"Started", "Finished"},
		[]*time.Time{&g.Started, &g.Finished}, []*time.Time{&w.Started, &w.Finished})
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, g, w)
	}
}

// numbers lists the runs' numbers.
func numbers(runs []*store.Run) []int {
	ns := []int{}
	for _, r := range runs {
		ns = append(ns, r.Number)
	}
	return ns
}

// wantErr fails unless err wraps target.
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: error %v, want one wrapping %v", what, err, target)
	}
}

func testNotFound(t *testing.T, s store.Store) {
	ctx := t.Context()
	p := mustProject(t, s, "app")
	r := mustRun(t, s, p, "main", "pending")

	_, err := s.Project(ctx, "nope")
	wantErr(t, "Project(nope)", err, store.ErrNotFound)
	_, err = s.Run(ctx, "app", r.Number+1)
	wantErr(t, "Run(app, 2)", err, store.ErrNotFound)
	_, err = s.Run(ctx, "nope", 1)
	wantErr(t, "Run(nope, 1)", err, store.ErrNotFound)
	_, err = s.RunByID(ctx, r.ID+1000)
	wantErr(t, "RunByID(missing)", err, store.ErrNotFound)
	err = s.CreateRun(ctx, &store.Run{ProjectID: p.ID + 1000, Status: "pending"})
	wantErr(t, "CreateRun(missing project)", err, store.ErrNotFound)
	err = s.UpdateRun(ctx, &store.Run{ID: r.ID + 1000, Status: "success"})
	wantErr(t, "UpdateRun(missing)", err, store.ErrNotFound)
	ok, err := s.TransitionRun(ctx, r.ID+1000, []string{"pending"}, "running", "")
	if ok {
		t.Error("TransitionRun(missing) reported a change")
	}
	wantErr(t, "TransitionRun(missing)", err, store.ErrNotFound)
	err = s.SaveStep(ctx, &store.Step{RunID: r.ID + 1000, Name: "build", Status: "pending"})
	wantErr(t, "SaveStep(missing run)", err, store.ErrNotFound)
	_, err = s.TokenByHash(ctx, []byte("nope"))
	wantErr(t, "TokenByHash(missing)", err, store.ErrNotFound)

	steps, err := s.Steps(ctx, r.ID+1000)
	if err != nil || len(steps) != 0 {
		t.Errorf("Steps(missing run) = %v, %v; want none", steps, err)
	}
}

func testCancelled(t *testing.T, s store.Store) {
	p := mustProject(t, s, "app")
	r := mustRun(t, s, p, "main", "pending")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()

	calls := map[string]func() error{
		"CreateProject": func() error { return s.CreateProject(ctx, &store.Project{Name: "other"}) },
		"Project":       func() error { _, err := s.Project(ctx, "app"); return err },
		"Projects":      func() error { _, err := s.Projects(ctx); return err },
		"CreateRun":     func() error { return s.CreateRun(ctx, &store.Run{ProjectID: p.ID, Status: "pending"}) },
		"Run":           func() error { _, err := s.Run(ctx, "app", 1); return err },
		"RunByID":       func() error { _, err := s.RunByID(ctx, r.ID); return err },
		"Runs":          func() error { _, err := s.Runs(ctx, store.RunFilter{}); return err },
		"UpdateRun":     func() error { return s.UpdateRun(ctx, &store.Run{ID: r.ID, Status: "success"}) },
		"TransitionRun": func() error {
			_, err := s.TransitionRun(ctx, r.ID, []string{"pending"}, "running", "")
			return err
		},
		"CountRuns":   func() error { _, err := s.CountRuns(ctx); return err },
		"SaveStep":    func() error { return s.SaveStep(ctx, &store.Step{RunID: r.ID, Name: "x", Status: "pending"}) },
		"Steps":       func() error { _, err := s.Steps(ctx, r.ID); return err },
		"CreateUser":  func() error { return s.CreateUser(ctx, &store.User{Name: "u", Role: "admin"}) },
		"User":        func() error { _, err := s.User(ctx, "u"); return err },
		"Users":       func() error { _, err := s.Users(ctx); return err },
		"CreateToken": func() error { return s.CreateToken(ctx, &store.Token{Machine: "proxy", Hash: []byte("h")}) },
		"TokenByHash": func() error { _, err := s.TokenByHash(ctx, []byte("h")); return err },
		"Token":       func() error { _, err := s.Token(ctx, 1); return err },
		"Tokens":      func() error { _, err := s.Tokens(ctx, store.TokenFilter{}); return err },
		"RevokeToken": func() error { return s.RevokeToken(ctx, 1) },
		"TouchToken":  func() error { return s.TouchToken(ctx, 1, t1) },
		"CountTokens": func() error { _, err := s.CountTokens(ctx); return err },
		"PutSecret": func() error {
			return s.PutSecret(ctx, &store.Secret{Name: "X", Version: 1, Ciphertext: []byte("c"), KeyID: "k"})
		},
		"Secrets":      func() error { _, err := s.Secrets(ctx, store.SecretFilter{All: true}); return err },
		"DeleteSecret": func() error { return s.DeleteSecret(ctx, "X", "", "") },
		"ReplaceSecretCiphertext": func() error {
			return s.ReplaceSecretCiphertext(ctx, "X", "", "", 1, []byte("c"), "k")
		},
		"SaveAgent":   func() error { return s.SaveAgent(ctx, &store.Agent{Name: "a", Capacity: 1}) },
		"Agent":       func() error { _, err := s.Agent(ctx, "a"); return err },
		"Agents":      func() error { _, err := s.Agents(ctx); return err },
		"DeleteAgent": func() error { return s.DeleteAgent(ctx, "a") },
		"CreateLease": func() error {
			return s.CreateLease(ctx, &store.Lease{RunID: r.ID, Step: "x", Agent: "a", Status: store.LeaseActive})
		},
		"EndLease": func() error { _, err := s.EndLease(ctx, 1, store.LeaseDone, ""); return err },
		"Lease":    func() error { _, err := s.Lease(ctx, 1); return err },
		"Leases":   func() error { _, err := s.Leases(ctx, store.LeaseFilter{}); return err },
	}
	for name, call := range calls {
		wantErr(t, fmt.Sprintf("%s with a cancelled context", name), call(), context.Canceled)
	}

	// Nothing was written.
	ps, err := s.Projects(t.Context())
	if err != nil || len(ps) != 1 {
		t.Errorf("after cancelled writes, Projects = %d, %v; want 1", len(ps), err)
	}
	got, err := s.RunByID(t.Context(), r.ID)
	if err != nil || got.Status != "pending" {
		t.Errorf("after cancelled writes, run = %+v, %v; want it pending", got, err)
	}
	steps, err := s.Steps(t.Context(), r.ID)
	if err != nil || len(steps) != 0 {
		t.Errorf("after cancelled writes, Steps = %d, %v; want 0", len(steps), err)
	}
	if n, err := s.CountTokens(t.Context()); err != nil || n != 0 {
		t.Errorf("after cancelled writes, CountTokens = %d, %v; want 0", n, err)
	}
	if us, err := s.Users(t.Context()); err != nil || len(us) != 0 {
		t.Errorf("after cancelled writes, Users = %d, %v; want 0", len(us), err)
	}
	if ss, err := s.Secrets(t.Context(), store.SecretFilter{All: true}); err != nil || len(ss) != 0 {
		t.Errorf("after cancelled writes, Secrets = %d, %v; want 0", len(ss), err)
	}
	if as, err := s.Agents(t.Context()); err != nil || len(as) != 0 {
		t.Errorf("after cancelled writes, Agents = %d, %v; want 0", len(as), err)
	}
	if ls, err := s.Leases(t.Context(), store.LeaseFilter{}); err != nil || len(ls) != 0 {
		t.Errorf("after cancelled writes, Leases = %d, %v; want 0", len(ls), err)
	}
}
