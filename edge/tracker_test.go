package edge

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestServes(t *testing.T) {
	for _, c := range []struct {
		have, want string
		ok         bool
	}{
		{"5.3", "5.3", true},
		{"5.4", "5.3", true},
		{"5.10", "5.9", true}, // numbers, not strings
		{"5.2", "5.3", false},
		{"6.9", "5.3", false}, // another run of the server: not yet
		{"4.9", "5.3", false},
		{"", "5.3", false},
		{"5", "5.3", false},
		{"5.x", "5.3", false},
	} {
		if got := Serves(c.have, c.want); got != c.ok {
			t.Errorf("Serves(%q, %q) = %v, want %v", c.have, c.want, got, c.ok)
		}
	}
}

func TestWaitWithoutProxiesReturnsAtOnce(t *testing.T) {
	tr := &Tracker{}
	started := time.Now()
	if err := tr.Wait(context.Background(), "1.1"); err != nil || time.Since(started) > 100*time.Millisecond {
		t.Errorf("Wait with no proxy: %v after %s", err, time.Since(started))
	}
	if err := tr.Wait(context.Background(), "nonsense"); err == nil {
		t.Error("Wait took a version that does not parse")
	}
}

func TestWaitReturnsOnceEveryProxyServesTheVersion(t *testing.T) {
	tr := &Tracker{}
	tr.Report("a", "7.1")
	tr.Report("b", "7.1")
	done := make(chan error, 1)
	go func() { done <- tr.Wait(context.Background(), "7.2") }()

	tr.Report("a", "7.2")
	select {
	case err := <-done:
		t.Fatalf("Wait returned with b still on 7.1: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	tr.Report("b", "7.3") // newer of the same epoch serves it too
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Wait: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Wait did not return once both proxies served 7.2")
	}
}

func TestWaitTreatsAnotherEpochAsNotYet(t *testing.T) {
	tr := &Tracker{Bound: 100 * time.Millisecond}
	tr.Report("a", "8.50") // the table of the server's previous run
	err := tr.Wait(context.Background(), "9.1")
	var lag *LagError
	if !errors.As(err, &lag) || len(lag.Lagging) != 1 || lag.Lagging[0].Name != "a" {
		t.Fatalf("Wait for another epoch: %v", err)
	}
	tr.Report("a", "9.1")
	if err := tr.Wait(context.Background(), "9.1"); err != nil {
		t.Errorf("after a took 9.1: %v", err)
	}
}

func TestWaitNamesTheLaggingProxies(t *testing.T) {
	tr := &Tracker{Bound: 100 * time.Millisecond}
	tr.Report("edge-1", "3.4")
	tr.Report("edge-2", "3.2")
	tr.Report("edge-3", "3.1")
	started := time.Now()
	err := tr.Wait(context.Background(), "3.4")
	if time.Since(started) > time.Second {
		t.Errorf("Wait took %s with a bound of 100ms", time.Since(started))
	}
	if !errors.Is(err, ErrLagging) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait: %v", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "edge-2 (serves 3.2), edge-3 (serves 3.1)") || strings.Contains(msg, "edge-1") {
		t.Errorf("Wait's error: %s", msg)
	}

	// The caller's context ends it too, with its cause.
	stop := errors.New("deploy cancelled")
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(stop)
	if err := tr.Wait(ctx, "3.4"); !errors.Is(err, stop) || !errors.Is(err, ErrLagging) {
		t.Errorf("Wait with a cancelled context: %v", err)
	}
}

func TestWaitIgnoresProxiesGoneOrNotSeenRecently(t *testing.T) {
	tr := &Tracker{Stale: 50 * time.Millisecond, Bound: time.Second}
	tr.Report("old", "1.1")
	time.Sleep(80 * time.Millisecond)
	tr.Report("hung-up", "1.1")
	tr.Gone("hung-up")
	if err := tr.Wait(context.Background(), "1.2"); err != nil {
		t.Errorf("Wait: %v", err)
	}
	if ps := tr.Proxies(); len(ps) != 0 {
		t.Errorf("Proxies: %+v", ps)
	}

	// Gone during a wait ends it.
	tr.Report("leaving", "1.1")
	done := make(chan error, 1)
	go func() { done <- tr.Wait(context.Background(), "1.2") }()
	time.Sleep(20 * time.Millisecond)
	tr.Gone("leaving")
	if err := <-done; err != nil {
		t.Errorf("Wait after the proxy left: %v", err)
	}
}
