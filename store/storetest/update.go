package storetest

import (
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/drover-cd/drover/store"
)

func testUpdateRun(t *testing.T, s store.Store) {
	ctx := t.Context()
	p := mustProject(t, s, "app")
	r := mustRun(t, s, p, "main", "pending")
	other := mustRun(t, s, p, "main", "pending")

	// Every field UpdateRun writes, with times in another zone.
	r.Status, r.Reason, r.Commit, r.Message, r.Artifact = "failure", "step test failed", "cafef00d", "Subject", "sha256:0123"
	r.Started, r.Finished = t1, t2
	if err := s.UpdateRun(ctx, r); err != nil {
		t.Fatalf("UpdateRun: %v", err)
	}
	got, err := s.RunByID(ctx, r.ID)
	if err != nil {
		t.Fatalf("RunByID: %v", err)
	}
	checkRun(t, "after UpdateRun", got, r)

	// Fields UpdateRun does not write stay as they were.
	changed := *r
	changed.Branch, changed.Event, changed.Trigger, changed.RerunOf, changed.FromStep = "dev", "manual", "bob", 7, "x"
	changed.Status = "success"
	if err := s.UpdateRun(ctx, &changed); err != nil {
		t.Fatalf("UpdateRun: %v", err)
	}
	want := *r
	want.Status = "success"
	got, err = s.RunByID(ctx, r.ID)
	if err != nil {
		t.Fatalf("RunByID: %v", err)
	}
	checkRun(t, "after UpdateRun of fields it does not write", got, &want)

	// Zero times and empty strings round-trip as such.
	r.Status, r.Reason, r.Commit, r.Message, r.Artifact = "pending", "", "", "", ""
	r.Started, r.Finished = time.Time{}, time.Time{}
	if err := s.UpdateRun(ctx, r); err != nil {
		t.Fatalf("UpdateRun: %v", err)
	}
	got, err = s.Run(ctx, "app", r.Number)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	checkRun(t, "after UpdateRun to zero values", got, r)
	if !got.Started.IsZero() || !got.Finished.IsZero() {
		t.Errorf("zero Started, Finished read back as %v, %v", got.Started, got.Finished)
	}

	// The other run is untouched.
	got, err = s.RunByID(ctx, other.ID)
	if err != nil {
		t.Fatalf("RunByID(other): %v", err)
	}
	checkRun(t, "the run not updated", got, other)
}

func testTransitionRun(t *testing.T, s store.Store) {
	ctx := t.Context()
	p := mustProject(t, s, "app")
	r := mustRun(t, s, p, "main", "waiting")
	check := func(what string, ok, wantOK bool, err error, wantStatus, wantReason string) {
		t.Helper()
		if err != nil || ok != wantOK {
			t.Errorf("%s = %v, %v; want %v", what, ok, err, wantOK)
		}
		got, err := s.RunByID(ctx, r.ID)
		if err != nil {
			t.Fatalf("RunByID: %v", err)
		}
		if got.Status != wantStatus || got.Reason != wantReason {
			t.Errorf("after %s the run is %s (%q), want %s (%q)", what, got.Status, got.Reason, wantStatus, wantReason)
		}
	}
	ok, err := s.TransitionRun(ctx, r.ID, []string{"pending", "running"}, "cancelled", "no")
	check("TransitionRun from pending, running", ok, false, err, "waiting", "")
	ok, err = s.TransitionRun(ctx, r.ID, []string{"pending", "waiting"}, "cancelled", "cancelled by alice")
	check("TransitionRun from pending, waiting", ok, true, err, "cancelled", "cancelled by alice")
	ok, err = s.TransitionRun(ctx, r.ID, []string{"pending", "waiting"}, "running", "")
	check("TransitionRun again", ok, false, err, "cancelled", "cancelled by alice")
	ok, err = s.TransitionRun(ctx, r.ID, nil, "running", "")
	check("TransitionRun from no status", ok, false, err, "cancelled", "cancelled by alice")
}

func testTransitionRunRace(t *testing.T, s store.Store) {
	p := mustProject(t, s, "app")
	r := mustRun(t, s, p, "main", "pending")
	const n = 10
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		wins int
		errs []error
	)
	for range n {
		wg.Go(func() {
			ok, err := s.TransitionRun(t.Context(), r.ID, []string{"pending"}, "running", "")
			mu.Lock()
			defer mu.Unlock()
			if ok {
				wins++
			}
			if err != nil {
				errs = append(errs, err)
			}
		})
	}
	wg.Wait()
	if wins != 1 || len(errs) > 0 {
		t.Errorf("%d racing TransitionRuns from pending: %d succeeded, errors %v; want 1 and none", n, wins, errs)
	}
	got, err := s.RunByID(t.Context(), r.ID)
	if err != nil || got.Status != "running" {
		t.Errorf("after the race, RunByID = %+v, %v; want it running", got, err)
	}
}

func testCountRuns(t *testing.T, s store.Store) {
	ctx := t.Context()
	counts, err := s.CountRuns(ctx)
	if err != nil || len(counts) != 0 {
		t.Fatalf("CountRuns of an empty store = %v, %v; want none", counts, err)
	}
	a, b := mustProject(t, s, "a"), mustProject(t, s, "b")
	for _, st := range []string{"success", "failure", "success", "running"} {
		mustRun(t, s, a, "main", st)
	}
	r := mustRun(t, s, b, "main", "pending")
	mustRun(t, s, b, "main", "success")
	if _, err := s.TransitionRun(ctx, r.ID, []string{"pending"}, "running", ""); err != nil {
		t.Fatal(err)
	}
	counts, err = s.CountRuns(ctx)
	if err != nil {
		t.Fatalf("CountRuns: %v", err)
	}
	if want := map[string]int{"success": 3, "failure": 1, "running": 2}; !reflect.DeepEqual(counts, want) {
		t.Errorf("CountRuns = %v, want %v", counts, want)
	}
}
