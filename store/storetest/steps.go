package storetest

import (
	"testing"

	"github.com/drover-cd/drover/store"
)

func testSteps(t *testing.T, s store.Store) {
	ctx := t.Context()
	p := mustProject(t, s, "app")
	r, other := mustRun(t, s, p, "main", "running"), mustRun(t, s, p, "main", "running")
	if steps, err := s.Steps(ctx, r.ID); err != nil || len(steps) != 0 {
		t.Fatalf("Steps of a run without steps = %v, %v; want none", steps, err)
	}

	// Saved out of order: Steps orders them by Position.
	deploy := &store.Step{RunID: r.ID, Name: "deploy", Position: 2, Needs: []string{"test", "lint"}, Status: "pending"}
	build := &store.Step{RunID: r.ID, Name: "build", Position: 0, Status: "running", Attempts: 1, Started: t1,
		Agent: "builder-1"}
	test := &store.Step{RunID: r.ID, Name: "test", Position: 1, Needs: []string{"build"}, Status: "failure",
		Allowed: true, Reason: "exit status 3", ExitCode: 3, Attempts: 2, Started: t1, Finished: t2,
		Reports:   []byte(`{"tests":12,"failed":1}`),
		Artifacts: []byte{0x00, 0x01, 0xfe, 0xff, '[', ']'}, Agent: "tester"}
	elsewhere := &store.Step{RunID: other.ID, Name: "build", Position: 0, Status: "success", ExitCode: 1}
	for _, st := range []*store.Step{deploy, build, test, elsewhere} {
		if err := s.SaveStep(ctx, st); err != nil {
			t.Fatalf("SaveStep(%s): %v", st.Name, err)
		}
	}
	checkSteps(t, s, "after inserts", r.ID, []*store.Step{build, test, deploy})

	// Saving a step again replaces every field: test's last attempt ran on the server,
	// build's on another agent.
	test2 := &store.Step{RunID: r.ID, Name: "test", Position: 1, Needs: []string{"build", "fetch"}, Status: "success",
		ExitCode: 0, Attempts: 3, Started: t2, Reports: []byte(`{"tests":12}`)}
	build2 := &store.Step{RunID: r.ID, Name: "build", Position: 0, Status: "success", Attempts: 1, Started: t1,
		Finished: t2, Artifacts: []byte(`[{"digest":"sha256:1"}]`), Agent: "builder-2"}
	for _, st := range []*store.Step{test2, build2} {
		if err := s.SaveStep(ctx, st); err != nil {
			t.Fatalf("SaveStep(%s) again: %v", st.Name, err)
		}
	}
	checkSteps(t, s, "after replacing", r.ID, []*store.Step{build2, test2, deploy})
	checkSteps(t, s, "of the other run", other.ID, []*store.Step{elsewhere})
}

// checkSteps fails unless run runID's steps are want, in order.
func checkSteps(t *testing.T, s store.Store, what string, runID int64, want []*store.Step) {
	t.Helper()
	got, err := s.Steps(t.Context(), runID)
	if err != nil {
		t.Fatalf("Steps %s: %v", what, err)
	}
	if len(got) != len(want) {
		t.Fatalf("Steps %s: %d steps, want %d", what, len(got), len(want))
	}
	for i := range got {
		checkStep(t, "Steps "+what+": "+want[i].Name, got[i], want[i])
	}
}
