package edge

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Tracker is the server's record of the standalone proxies that follow its route table:
// which version each serves, as its follow requests report. The zero value is ready to
// use; all its methods are safe for concurrent use.
type Tracker struct {
	// Stale is how long after its last follow request a proxy is still waited for: a
	// proxy polls again at least every PollTimeout, so one not heard from for longer is
	// gone. Default 2×PollTimeout.
	Stale time.Duration
	// Bound is how long Wait waits at most for lagging proxies. Default 5s.
	Bound time.Duration

	mu      sync.Mutex
	proxies map[string]seen // by name
	changed chan struct{}   // closed, and replaced, by every change of proxies
}

// seen is what the Tracker knows of one proxy.
type seen struct {
	version string
	at      time.Time // its last follow request
}

// Status is one proxy as the Tracker knows it.
type Status struct {
	Name    string
	Version string    // the route table it serves
	Seen    time.Time // its last follow request
}

// Report records that proxy name serves route table version: a follow request says so.
func (t *Tracker) Report(name, version string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.proxies == nil {
		t.proxies = map[string]seen{}
	}
	t.proxies[name] = seen{version: version, at: time.Now()}
	t.wakeLocked()
}

// Gone forgets proxy name: it hung up a follow request before the answer, so it is not
// waited for until it follows again.
func (t *Tracker) Gone(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.proxies, name)
	t.wakeLocked()
}

// Proxies returns the proxies seen recently (within Stale), sorted by name.
func (t *Tracker) Proxies() []Status {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := []Status{}
	now := time.Now()
	for name, s := range t.proxies {
		if now.Sub(s.at) <= t.stale() {
			out = append(out, Status{Name: name, Version: s.version, Seen: s.at})
		}
	}
	slices.SortFunc(out, func(a, b Status) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// ErrLagging is what a Wait that gave up wraps.
var ErrLagging = errors.New("standalone proxies do not serve the route table yet")

// LagError names the proxies a Wait gave up on. It unwraps to ErrLagging and to why
// the wait ended (context.DeadlineExceeded after Bound, or the caller's context's cause).
type LagError struct {
	Version string   // the version waited for
	Lagging []Status // the proxies that did not serve it, by name
	Cause   error
}

func (e *LagError) Error() string {
	names := make([]string, len(e.Lagging))
	for i, p := range e.Lagging {
		names[i] = fmt.Sprintf("%s (serves %s)", p.Name, p.Version)
	}
	return fmt.Sprintf("%s %s: %s: %v", ErrLagging, e.Version, strings.Join(names, ", "), e.Cause)
}

func (e *LagError) Unwrap() []error { return []error{ErrLagging, e.Cause} }

// Wait returns once every proxy seen recently serves version or a newer version of the
// same epoch (see Serves); at once when no proxy follows. It gives up with a *LagError
// when ctx ends or Bound passes. A version that does not parse is an error at once.
func (t *Tracker) Wait(ctx context.Context, version string) error {
	if _, err := parseVersion(version); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeoutCause(ctx, t.bound(), context.DeadlineExceeded)
	defer cancel()
	for {
		t.mu.Lock()
		lagging := t.laggingLocked(version, time.Now())
		if t.changed == nil {
			t.changed = make(chan struct{})
		}
		changed := t.changed
		t.mu.Unlock()
		if len(lagging) == 0 {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return &LagError{Version: version, Lagging: lagging, Cause: context.Cause(ctx)}
		}
	}
}

// laggingLocked returns the recent proxies that do not serve version, by name.
func (t *Tracker) laggingLocked(version string, now time.Time) []Status {
	var out []Status
	for name, s := range t.proxies {
		if now.Sub(s.at) <= t.stale() && !Serves(s.version, version) {
			out = append(out, Status{Name: name, Version: s.version, Seen: s.at})
		}
	}
	slices.SortFunc(out, func(a, b Status) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (t *Tracker) wakeLocked() {
	if t.changed != nil {
		close(t.changed)
		t.changed = nil
	}
}

func (t *Tracker) stale() time.Duration {
	if t.Stale > 0 {
		return t.Stale
	}
	return 2 * PollTimeout
}

func (t *Tracker) bound() time.Duration {
	if t.Bound > 0 {
		return t.Bound
	}
	return 5 * time.Second
}
