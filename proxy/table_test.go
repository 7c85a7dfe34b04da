package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"
)

// TestInFlightFollowsIDAcrossSets counts a request held on a backend through a Set that
// drops it and another that brings the same ID back: InFlight and Drain go by ID.
func TestInFlightFollowsIDAcrossSets(t *testing.T) {
	p := New(nil)
	key := Key("catalog", "staging")
	a := Backend{ID: "a", Addr: "127.0.0.1:1"}
	b := Backend{ID: "b", Addr: "127.0.0.1:2"}
	p.Set(key, []Backend{a})
	held := p.acquire(key, nil) // a request in flight on a
	if held == nil || held.ID != "a" {
		t.Fatalf("acquire = %v", held)
	}

	p.Set(key, []Backend{b})
	if !held.retired.Load() {
		t.Fatal("a backend no route holds is not retired")
	}
	for range 4 {
		got := p.acquire(key, nil)
		if got.ID != "b" {
			t.Fatalf("acquired %s after the switch", got.ID)
		}
		got.release()
	}
	if n := p.InFlight("a"); n != 1 {
		t.Fatalf("InFlight(a) = %d after a dropped it, want 1", n)
	}

	p.Set(key, []Backend{a, b}) // a comes back: a new backend, the old count still shows
	if n := p.InFlight("a"); n != 1 {
		t.Fatalf("InFlight(a) = %d after a came back, want 1", n)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Millisecond)
	defer cancel()
	if err := p.Drain(ctx, "a"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Drain = %v, want a deadline error", err)
	}
	held.release()
	if err := p.Drain(t.Context(), "a"); err != nil {
		t.Fatal(err)
	}
	if len(p.retiring) != 0 {
		t.Fatalf("%d retired backends kept after they drained", len(p.retiring))
	}
}

func TestSetSkipsInvalidAndDuplicateBackends(t *testing.T) {
	p := New(nil)
	key := Key("catalog", "staging")
	p.Set(key, []Backend{
		{ID: "a", Addr: "127.0.0.1:1"},
		{ID: "", Addr: "127.0.0.1:2"},
		{ID: "c", Addr: ""},
		{ID: "a", Addr: "127.0.0.1:3"},
		{ID: "d", Addr: "127.0.0.1:4"},
	})
	got := p.Backends("CATALOG.staging.localhost")
	want := []Backend{{ID: "a", Addr: "127.0.0.1:1"}, {ID: "d", Addr: "127.0.0.1:4"}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("Backends = %v, want %v", got, want)
	}
	got[0].ID = "changed"
	if p.Backends(key)[0].ID != "a" {
		t.Fatal("Backends returned the route's own slice")
	}
	p.Set(key, []Backend{{ID: "x"}})
	if p.Backends(key) != nil {
		t.Fatal("a set with no valid backend must remove the route")
	}
}

func TestRouteSkipsBackendThatRefused(t *testing.T) {
	a := &backend{Backend: Backend{ID: "a"}}
	b := &backend{Backend: Backend{ID: "b"}}
	rt := &route{backends: []*backend{a, b}}
	a.markDown()
	for range 4 {
		if got := rt.pick(nil); got != b {
			t.Fatalf("picked %s, want b while a is down", got.ID)
		}
	}
	b.markDown()
	if got := rt.pick(nil); got == nil {
		t.Fatal("all backends down: pick must still try one")
	}
	if got := rt.pick(b); got != a {
		t.Fatalf("pick excluding b = %v, want a", got)
	}
	one := &route{backends: []*backend{a}}
	if got := one.pick(a); got != nil {
		t.Fatalf("pick of the only backend, excluded = %v, want nil", got)
	}
}

func TestDrainWaitsForSlowRequest(t *testing.T) {
	p := New(nil)
	release := make(chan struct{})
	old, _ := startBackend(t, "old", func(w http.ResponseWriter, r *http.Request) {
		<-release
		_, _ = io.WriteString(w, "old")
	})
	next, _ := startBackend(t, "new", nil)
	key := Key("catalog", "staging")
	p.Set(key, []Backend{old})
	url := startProxy(t, p)

	done := make(chan string, 1)
	go func() {
		_, body := get(t, http.DefaultClient, url, key, "/")
		done <- body
	}()
	waitFor(t, func() bool { return p.InFlight("old") == 1 })

	p.Set(key, []Backend{next})
	if _, body := get(t, http.DefaultClient, url, key, "/"); body != "new" {
		t.Fatalf("after the switch a request went to %q", body)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := p.Drain(ctx, "old"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Drain with a request in flight = %v, want a deadline error", err)
	}

	drained := make(chan error, 1)
	go func() { drained <- p.Drain(t.Context(), "old", "new") }()
	select {
	case err := <-drained:
		t.Fatalf("Drain returned %v with a request in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
	if body := <-done; body != "old" {
		t.Fatalf("the in-flight request answered %q, want old", body)
	}
	if n := p.InFlight("old"); n != 0 {
		t.Fatalf("InFlight(old) = %d after Drain", n)
	}
	if err := p.Drain(t.Context(), "never-heard-of"); err != nil {
		t.Fatalf("Drain of an unknown ID = %v", err)
	}
}
