package storetest

import (
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/drover-cd/drover/store"
)

func testAgents(t *testing.T, s store.Store) {
	ctx := t.Context()
	if as, err := s.Agents(ctx); err != nil || len(as) != 0 {
		t.Fatalf("Agents of an empty store = %v, %v; want none", as, err)
	}

	linux := &store.Agent{Name: "linux-1", Labels: map[string]string{"os": "linux", "arch": "amd64"},
		Version: "v1.2.0", Capacity: 4, Seen: t1}
	arm := &store.Agent{Name: "arm-1", Capacity: 1, Seen: t2} // no labels: read back as nil
	empty := &store.Agent{Name: "empty", Labels: map[string]string{}}
	for _, a := range []*store.Agent{linux, arm, empty} {
		if err := s.SaveAgent(ctx, a); err != nil {
			t.Fatalf("SaveAgent(%s): %v", a.Name, err)
		}
		checkCreated(t, "SaveAgent("+a.Name+")", a.Created)
	}
	empty.Labels = nil // empty labels are read back as nil
	for _, want := range []*store.Agent{linux, arm, empty} {
		got, err := s.Agent(ctx, want.Name)
		if err != nil {
			t.Fatalf("Agent(%s): %v", want.Name, err)
		}
		checkAgent(t, "Agent("+want.Name+")", got, want)
	}

	// Saving an agent again replaces every field but Created, which it sets to the
	// stored one.
	time.Sleep(2 * time.Millisecond)
	linux2 := &store.Agent{Name: "linux-1", Labels: map[string]string{"os": "linux", "gpu": "yes"}, Version: "v1.3.0",
		Capacity: 2, Drained: true, Seen: t2, Created: t2}
	if err := s.SaveAgent(ctx, linux2); err != nil {
		t.Fatalf("SaveAgent(linux-1) again: %v", err)
	}
	if !linux2.Created.Equal(linux.Created) {
		t.Errorf("SaveAgent(linux-1) again: Created = %v, want the first one, %v", linux2.Created, linux.Created)
	}
	arm2 := &store.Agent{Name: "arm-1", Labels: map[string]string{"arch": "arm64"}, Version: "v1.3.0", Capacity: 1}
	if err := s.SaveAgent(ctx, arm2); err != nil {
		t.Fatalf("SaveAgent(arm-1) again: %v", err)
	}
	if !arm2.Created.Equal(arm.Created) {
		t.Errorf("SaveAgent(arm-1) again: Created = %v, want the first one, %v", arm2.Created, arm.Created)
	}

	as, err := s.Agents(ctx)
	if err != nil {
		t.Fatalf("Agents: %v", err)
	}
	want := []*store.Agent{arm2, empty, linux2}
	if len(as) != len(want) {
		t.Fatalf("Agents: %d agents, want %d", len(as), len(want))
	}
	for i := range as {
		checkAgent(t, "Agents: "+want[i].Name, as[i], want[i])
	}

	_, err = s.Agent(ctx, "nope")
	wantErr(t, "Agent(missing)", err, store.ErrNotFound)
	if err := s.DeleteAgent(ctx, "empty"); err != nil {
		t.Fatalf("DeleteAgent(empty): %v", err)
	}
	wantErr(t, "DeleteAgent(empty) again", s.DeleteAgent(ctx, "empty"), store.ErrNotFound)
	wantErr(t, "DeleteAgent(missing)", s.DeleteAgent(ctx, "nope"), store.ErrNotFound)
	_, err = s.Agent(ctx, "empty")
	wantErr(t, "Agent(deleted)", err, store.ErrNotFound)
	if as, err := s.Agents(ctx); err != nil || len(as) != 2 || as[0].Name != "arm-1" || as[1].Name != "linux-1" {
		t.Errorf("Agents after DeleteAgent = %v, %v; want arm-1 and linux-1", as, err)
	}
}

// checkAgent fails unless got equals want in every field.
func checkAgent(t *testing.T, what string, got, want *store.Agent) {
	t.Helper()
	g, w := *got, *want
	sameTimes(t, what, []string{"Created", "Seen"},
		[]*time.Time{&g.Created, &g.Seen}, []*time.Time{&w.Created, &w.Seen})
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, g, w)
	}
}

func testLeases(t *testing.T, s store.Store) {
	ctx := t.Context()
	p := mustProject(t, s, "app")
	r, other := mustRun(t, s, p, "main", "running"), mustRun(t, s, p, "main", "running")
	if ls, err := s.Leases(ctx, store.LeaseFilter{}); err != nil || len(ls) != 0 {
		t.Fatalf("Leases of an empty store = %v, %v; want none", ls, err)
	}

	build := &store.Lease{RunID: r.ID, Step: "build", Attempt: 1, Agent: "linux-1", TokenHash: []byte{7},
		Status: store.LeaseActive, Home: true}
	test := &store.Lease{RunID: r.ID, Step: "test", Attempt: 2, Agent: "arm-1", TokenHash: []byte{8}, Status: store.LeaseActive}
	elsewhere := &store.Lease{RunID: other.ID, Step: "build", Attempt: 1, Agent: "linux-1", TokenHash: []byte{9},
		Status: store.LeaseActive, Home: true}
	for _, l := range []*store.Lease{build, test, elsewhere} {
		if err := s.CreateLease(ctx, l); err != nil {
			t.Fatalf("CreateLease(%s): %v", l.Step, err)
		}
		if l.ID == 0 {
			t.Errorf("CreateLease(%s) did not set ID", l.Step)
		}
		checkCreated(t, "CreateLease("+l.Step+")", l.Created)
		if !l.Updated.Equal(l.Created) {
			t.Errorf("CreateLease(%s): Updated = %v, want Created, %v", l.Step, l.Updated, l.Created)
		}
	}
	if !(build.ID < test.ID && test.ID < elsewhere.ID) {
		t.Errorf("CreateLease IDs %d, %d, %d; want them increasing", build.ID, test.ID, elsewhere.ID)
	}
	got, err := s.Lease(ctx, build.ID)
	if err != nil {
		t.Fatalf("Lease(build): %v", err)
	}
	checkLease(t, "Lease(build)", got, build)
	_, err = s.Lease(ctx, elsewhere.ID+1000)
	wantErr(t, "Lease(missing)", err, store.ErrNotFound)
	wantErr(t, "CreateLease of a missing run", s.CreateLease(ctx, &store.Lease{RunID: other.ID + 1000, Step: "build",
		Agent: "linux-1", Status: store.LeaseActive}), store.ErrNotFound)

	checkLeases(t, s, "all", store.LeaseFilter{}, build, test, elsewhere)
	checkLeases(t, s, "of a run", store.LeaseFilter{RunID: r.ID}, build, test)
	checkLeases(t, s, "of an agent", store.LeaseFilter{Agent: "linux-1"}, build, elsewhere)
	checkLeases(t, s, "of a run and an agent", store.LeaseFilter{RunID: r.ID, Agent: "linux-1"}, build)
	checkLeases(t, s, "active", store.LeaseFilter{Status: []string{store.LeaseActive}}, build, test, elsewhere)
	checkLeases(t, s, "of a missing run", store.LeaseFilter{RunID: other.ID + 1000})

	// An active lease ends once: a later EndLease changes nothing.
	ok, err := s.EndLease(ctx, build.ID, store.LeaseDone, "")
	if err != nil || !ok {
		t.Fatalf("EndLease(build, done) = %v, %v; want true", ok, err)
	}
	ok, err = s.EndLease(ctx, build.ID, store.LeaseLost, "agent linux-1 stopped answering")
	if err != nil || ok {
		t.Errorf("EndLease(build, lost) after done = %v, %v; want false", ok, err)
	}
	ok, err = s.EndLease(ctx, test.ID, store.LeaseLost, "agent arm-1 stopped answering")
	if err != nil || !ok {
		t.Fatalf("EndLease(test, lost) = %v, %v; want true", ok, err)
	}
	ok, err = s.EndLease(ctx, test.ID, store.LeaseDone, "")
	if err != nil || ok {
		t.Errorf("EndLease(test, done) after lost = %v, %v; want false", ok, err)
	}
	ok, err = s.EndLease(ctx, elsewhere.ID+1000, store.LeaseEnded, "cancelled")
	if ok {
		t.Error("EndLease(missing) reported a change")
	}
	wantErr(t, "EndLease(missing)", err, store.ErrNotFound)

	for _, c := range []struct {
		l              *store.Lease
		status, reason string
	}{
		{build, store.LeaseDone, ""},
		{test, store.LeaseLost, "agent arm-1 stopped answering"},
		{elsewhere, store.LeaseActive, ""},
	} {
		got, err := s.Lease(ctx, c.l.ID)
		if err != nil {
			t.Fatalf("Lease(%s): %v", c.l.Step, err)
		}
		if c.status != store.LeaseActive {
			if got.Updated.Before(c.l.Created) || time.Since(got.Updated) > time.Minute {
				t.Errorf("Lease(%s) after EndLease: Updated = %v, want now (created %v)", c.l.Step, got.Updated, c.l.Created)
			}
			c.l.Updated = got.Updated
		}
		want := *c.l
		want.Status, want.Reason = c.status, c.reason
		checkLease(t, "Lease("+c.l.Step+") after EndLease", got, &want)
	}
	checkLeases(t, s, "active after EndLease", store.LeaseFilter{Status: []string{store.LeaseActive}}, elsewhere)
	checkLeases(t, s, "done or lost", store.LeaseFilter{Status: []string{store.LeaseDone, store.LeaseLost}}, build, test)
	checkLeases(t, s, "of an agent, lost", store.LeaseFilter{Agent: "arm-1", Status: []string{store.LeaseLost}}, test)
	checkLeases(t, s, "of an agent, ended", store.LeaseFilter{Agent: "linux-1", Status: []string{store.LeaseEnded}})
}

// testEndLeaseRace ends one lease from several goroutines at once: exactly one wins,
// and the lease keeps its status and reason.
func testEndLeaseRace(t *testing.T, s store.Store) {
	ctx := t.Context()
	p := mustProject(t, s, "app")
	r := mustRun(t, s, p, "main", "running")
	l := &store.Lease{RunID: r.ID, Step: "build", Attempt: 1, Agent: "linux-1", Status: store.LeaseActive}
	if err := s.CreateLease(ctx, l); err != nil {
		t.Fatal(err)
	}
	const n = 8
	statuses := []string{store.LeaseDone, store.LeaseLost, store.LeaseEnded}
	var (
		wg     sync.WaitGroup
		won    = make([]bool, n)
		errs   = make([]error, n)
		start  = make(chan struct{})
		reason = func(i int) string { return fmt.Sprintf("goroutine %d", i) }
	)
	for i := range n {
		wg.Go(func() {
			<-start
			won[i], errs[i] = s.EndLease(ctx, l.ID, statuses[i%len(statuses)], reason(i))
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i := range n {
		if errs[i] != nil {
			t.Errorf("EndLease in goroutine %d: %v", i, errs[i])
		}
		if won[i] {
			if winner >= 0 {
				t.Errorf("EndLease won in goroutines %d and %d", winner, i)
			}
			winner = i
		}
	}
	if winner < 0 {
		t.Fatal("no EndLease won")
	}
	got, err := s.Lease(ctx, l.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != statuses[winner%len(statuses)] || got.Reason != reason(winner) {
		t.Errorf("lease after the race: %s, %q; want the winner's, %s, %q",
			got.Status, got.Reason, statuses[winner%len(statuses)], reason(winner))
	}
}

// checkLease fails unless got equals want in every field.
func checkLease(t *testing.T, what string, got, want *store.Lease) {
	t.Helper()
	g, w := *got, *want
	sameTimes(t, what, []string{"Created", "Updated"},
		[]*time.Time{&g.Created, &g.Updated}, []*time.Time{&w.Created, &w.Updated})
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, g, w)
	}
}

// checkLeases fails unless the leases f selects are want, in order; only their IDs,
// runs, steps and agents are compared.
func checkLeases(t *testing.T, s store.Store, what string, f store.LeaseFilter, want ...*store.Lease) {
	t.Helper()
	got, err := s.Leases(t.Context(), f)
	if err != nil {
		t.Fatalf("Leases %s: %v", what, err)
	}
	if got == nil {
		t.Errorf("Leases %s: nil, want a slice", what)
	}
	ids := func(ls []*store.Lease) []int64 {
		out := []int64{}
		for _, l := range ls {
			out = append(out, l.ID)
		}
		return out
	}
	if !reflect.DeepEqual(ids(got), ids(want)) {
		t.Errorf("Leases %s: IDs %v, want %v", what, ids(got), ids(want))
		return
	}
	for i := range got {
		if got[i].RunID != want[i].RunID || got[i].Step != want[i].Step || got[i].Agent != want[i].Agent {
			t.Errorf("Leases %s: %+v, want %+v", what, got[i], want[i])
		}
	}
}
