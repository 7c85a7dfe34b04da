package storetest

import (
	"reflect"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/drover-cd/drover/store"
)

func testRunNumbersPerProject(t *testing.T, s store.Store) {
	a, b := mustProject(t, s, "a"), mustProject(t, s, "b")
	var got []int
	for _, p := range []*store.Project{a, b, a, a, b, a} {
		got = append(got, mustRun(t, s, p, "main", "pending").Number)
	}
	if want := []int{1, 1, 2, 3, 2, 4}; !reflect.DeepEqual(got, want) {
		t.Errorf("numbers of runs created in a, b, a, a, b, a = %v, want %v", got, want)
	}
}

func testRunNumbersConcurrent(t *testing.T, s store.Store) {
	p := mustProject(t, s, "app")
	other := mustProject(t, s, "other")
	const n = 20
	runs := make([]*store.Run, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			runs[i] = &store.Run{ProjectID: p.ID, Status: "pending", Branch: "main"}
			errs[i] = s.CreateRun(t.Context(), runs[i])
		})
	}
	// Another project's runs, meanwhile, number from 1 on their own.
	for i := range 3 {
		if r := mustRun(t, s, other, "main", "pending"); r.Number != i+1 {
			t.Errorf("run %d of other is numbered %d", i+1, r.Number)
		}
	}
	wg.Wait()
	var got []int
	ids := map[int64]bool{}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent CreateRun: %v", err)
		}
		got = append(got, runs[i].Number)
		ids[runs[i].ID] = true
	}
	slices.Sort(got)
	want := make([]int, n)
	for i := range want {
		want[i] = i + 1
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("numbers of %d concurrent runs = %v, want 1..%d each once", n, got, n)
	}
	if len(ids) != n {
		t.Errorf("%d concurrent runs have %d distinct IDs", n, len(ids))
	}
	listed, err := s.Runs(t.Context(), store.RunFilter{Project: "app"})
	if err != nil {
		t.Fatalf("Runs: %v", err)
	}
	slices.Reverse(want)
	if got := numbers(listed); !reflect.DeepEqual(got, want) {
		t.Errorf("Runs(app) numbers = %v, want %v", got, want)
	}
}

func testRunRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	p := mustProject(t, s, "app")
	mustRun(t, s, p, "main", "success")
	r := &store.Run{ProjectID: p.ID, Status: "waiting", Reason: "waiting for approval",
		Branch: "feature/x", Commit: "0123456789abcdef0123456789abcdef01234567", Message: "Fix the frobnicator",
		Event: "manual", Trigger: "alice", RerunOf: 1, FromStep: "deploy", Artifact: "sha256:abc",
		Started: t1}
	if err := s.CreateRun(ctx, r); err != nil {
		t.Fatalf("CreateRun: %v", err)
	}
	if r.ID == 0 || r.Number != 2 {
		t.Errorf("CreateRun set ID %d, Number %d; want an ID and 2", r.ID, r.Number)
	}
	checkCreated(t, "CreateRun", r.Created)

	want := *r
	want.Project = "app"
	got, err := s.Run(ctx, "app", 2)
	if err != nil {
		t.Fatalf("Run(app, 2): %v", err)
	}
	checkRun(t, "Run(app, 2)", got, &want)
	got, err = s.RunByID(ctx, r.ID)
	if err != nil {
		t.Fatalf("RunByID: %v", err)
	}
	checkRun(t, "RunByID", got, &want)
	runs, err := s.Runs(ctx, store.RunFilter{Project: "app", Limit: 1})
	if err != nil || len(runs) != 1 {
		t.Fatalf("Runs(app, limit 1) = %v, %v; want 1 run", runs, err)
	}
	checkRun(t, "Runs(app, limit 1)", runs[0], &want)
}

func testRunsFilter(t *testing.T, s store.Store) {
	ctx := t.Context()
	a, b := mustProject(t, s, "a"), mustProject(t, s, "b")
	mustRun(t, s, a, "main", "success")  // a1
	mustRun(t, s, b, "main", "failure")  // b1
	mustRun(t, s, a, "dev", "failure")   // a2
	mustRun(t, s, a, "main", "running")  // a3
	mustRun(t, s, b, "dev", "success")   // b2
	mustRun(t, s, a, "main", "failure")  // a4
	mustRun(t, s, a, "dev", "cancelled") // a5

	// label names a run by project and number, for comparing listings.
	label := func(runs []*store.Run) []string {
		ls := []string{}
		for _, r := range runs {
			ls = append(ls, r.Project+strconv.Itoa(r.Number))
		}
		return ls
	}
	for _, tc := range []struct {
		f    store.RunFilter
		want []string
	}{
		{store.RunFilter{}, []string{"a5", "a4", "b2", "a3", "a2", "b1", "a1"}},
		{store.RunFilter{Project: "a"}, []string{"a5", "a4", "a3", "a2", "a1"}},
		{store.RunFilter{Project: "b"}, []string{"b2", "b1"}},
		{store.RunFilter{Project: "a", Branch: "main"}, []string{"a4", "a3", "a1"}},
		{store.RunFilter{Branch: "dev"}, []string{"a5", "b2", "a2"}},
		{store.RunFilter{Status: []string{"failure"}}, []string{"a4", "a2", "b1"}},
		{store.RunFilter{Status: []string{"success", "running"}}, []string{"b2", "a3", "a1"}},
		{store.RunFilter{Project: "a", Status: []string{"failure"}, Branch: "dev"}, []string{"a2"}},
		{store.RunFilter{Project: "a", Before: 4}, []string{"a3", "a2", "a1"}},
		{store.RunFilter{Project: "a", Before: 4, Limit: 2}, []string{"a3", "a2"}},
		{store.RunFilter{Project: "a", Before: 1}, []string{}},
		{store.RunFilter{Limit: 3}, []string{"a5", "a4", "b2"}},
		{store.RunFilter{Limit: 3, Oldest: true}, []string{"a1", "b1", "a2"}},
		{store.RunFilter{Status: []string{"failure"}, Oldest: true}, []string{"b1", "a2", "a4"}},
		{store.RunFilter{Project: "nope"}, []string{}},
		{store.RunFilter{Status: []string{"waiting"}}, []string{}},
	} {
		runs, err := s.Runs(ctx, tc.f)
		if err != nil {
			t.Errorf("Runs(%+v): %v", tc.f, err)
			continue
		}
		if got := label(runs); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Runs(%+v) = %v, want %v", tc.f, got, tc.want)
		}
		for _, r := range runs {
			if r.ProjectID != map[string]int64{"a": a.ID, "b": b.ID}[r.Project] {
				t.Errorf("Runs(%+v): run %s%d has ProjectID %d", tc.f, r.Project, r.Number, r.ProjectID)
			}
		}
	}
}

func testRunsPaging(t *testing.T, s store.Store) {
	ctx := t.Context()
	p := mustProject(t, s, "app")
	const n = 55
	for range n {
		mustRun(t, s, p, "main", "success")
	}
	// seq is the numbers from hi down to lo.
	seq := func(hi, lo int) []int {
		ns := []int{}
		for i := hi; i >= lo; i-- {
			ns = append(ns, i)
		}
		return ns
	}
	runs, err := s.Runs(ctx, store.RunFilter{Project: "app"})
	if err != nil {
		t.Fatalf("Runs: %v", err)
	}
	if got, want := numbers(runs), seq(n, n-49); !reflect.DeepEqual(got, want) {
		t.Errorf("Runs without a limit = %v, want the newest 50: %v", got, want)
	}
	runs, err = s.Runs(ctx, store.RunFilter{Project: "app", Before: runs[len(runs)-1].Number})
	if err != nil {
		t.Fatalf("Runs, page 2: %v", err)
	}
	if got, want := numbers(runs), seq(n-50, 1); !reflect.DeepEqual(got, want) {
		t.Errorf("Runs, page 2 = %v, want %v", got, want)
	}
	runs, err = s.Runs(ctx, store.RunFilter{Limit: 100})
	if err != nil || len(runs) != n {
		t.Errorf("Runs(limit 100) = %d runs, %v; want %d", len(runs), err, n)
	}
}
