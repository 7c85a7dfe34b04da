// Package health checks whether one instance serves: a Checker probes its address over
// HTTP (or with a bare TCP connect) at an interval and turns consecutive passes and
// failures into a State, reporting every change; WaitHealthy waits for a new instance
// to become healthy.
package health

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// State is what the probes say of an instance.
//
//	Unknown ──HealthyThreshold passes──▶ Healthy ◀──HealthyThreshold passes──┐
//	   │                                   │                                  │
//	   └──UnhealthyThreshold failures──▶ Unhealthy ◀──UnhealthyThreshold failures
type State int

const (
	// Unknown is the state until the thresholds are first reached: the instance is
	// starting.
	Unknown State = iota
	// Healthy means the last HealthyThreshold probes passed.
	Healthy
	// Unhealthy means the last UnhealthyThreshold probes failed.
	Unhealthy
)

func (s State) String() string {
	switch s {
	case Unknown:
		return "unknown"
	case Healthy:
		return "healthy"
	case Unhealthy:
		return "unhealthy"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

var (
	// ErrUnhealthy is wrapped by WaitHealthy's error when the instance turned unhealthy
	// without ever being healthy.
	ErrUnhealthy = errors.New("unhealthy")
	// ErrStopped is wrapped by WaitHealthy's error when the checker stopped first.
	ErrStopped = errors.New("health checker stopped")
)

// Config says how to probe. The zero value checks that the port accepts TCP
// connections every second.
type Config struct {
	// Path is requested with GET http://ADDR+Path; a 2xx or 3xx answer passes (redirects
	// are not followed). Default "": a TCP connect check, which passes once a connection
	// is accepted.
	Path string
	// Interval is the time between the starts of two probes; the first probe runs at
	// once. Default 1s.
	Interval time.Duration
	// Timeout bounds one probe, answer included; a probe that takes longer fails.
	// Default 2s.
	Timeout time.Duration
	// HealthyThreshold is how many consecutive passes make the instance Healthy.
	// Default 1.
	HealthyThreshold int
	// UnhealthyThreshold is how many consecutive failures make the instance Unhealthy.
	// Default 3.
	UnhealthyThreshold int
	// StartPeriod gives a slow starter time: failures within StartPeriod after Start, as
	// long as the instance was never healthy, do not count toward UnhealthyThreshold.
	// Default 0: every failure counts, so with the other defaults an instance that does
	// not listen within about 2s turns Unhealthy (and fails WaitHealthy).
	StartPeriod time.Duration
}

func (c Config) withDefaults() Config {
	if c.Path != "" && c.Path[0] != '/' {
		c.Path = "/" + c.Path
	}
	if c.Interval <= 0 {
		c.Interval = time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = 2 * time.Second
	}
	if c.HealthyThreshold <= 0 {
		c.HealthyThreshold = 1
	}
	if c.UnhealthyThreshold <= 0 {
		c.UnhealthyThreshold = 3
	}
	return c
}

// changesBuffer is how many undelivered changes a Checker holds for a slow reader.
const changesBuffer = 16

// Checker probes one instance until stopped. Its methods are safe for concurrent use.
type Checker struct {
	cfg     Config
	probe   func(context.Context) error
	started time.Time
	changes chan State
	cancel  context.CancelFunc
	done    chan struct{}

	mu          sync.Mutex
	state       State
	everHealthy bool
	passes      int           // consecutive
	fails       int           // consecutive, counted ones
	lastErr     string        // of the latest failed probe
	changed     chan struct{} // closed and replaced at every change, for WaitHealthy
}

// Start probes addr ("host:port") at once and then every cfg.Interval, until Stop is
// called or ctx ends.
func Start(ctx context.Context, addr string, cfg Config) *Checker {
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(ctx)
	c := &Checker{
		cfg:     cfg,
		started: time.Now(),
		changes: make(chan State, changesBuffer),
		cancel:  cancel,
		done:    make(chan struct{}),
		changed: make(chan struct{}),
	}
	if cfg.Path == "" {
		c.probe = tcpProbe(addr, cfg.Timeout)
	} else {
		c.probe = httpProbe(addr, cfg.Path, cfg.Timeout)
	}
	go c.run(ctx)
	return c
}

func (c *Checker) run(ctx context.Context) {
	defer close(c.done)
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		err := c.probe(ctx)
		if ctx.Err() != nil {
			return // a probe cut short by Stop says nothing of the instance
		}
		c.record(err)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// record counts one probe's result and changes the state when a threshold is reached.
func (c *Checker) record(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		c.passes++
		c.fails = 0
		if c.state != Healthy && c.passes >= c.cfg.HealthyThreshold {
			c.everHealthy = true
			c.set(Healthy)
		}
		return
	}
	c.lastErr = err.Error()
	c.passes = 0
	if !c.everHealthy && time.Since(c.started) < c.cfg.StartPeriod {
		return
	}
	c.fails++
	if c.state != Unhealthy && c.fails >= c.cfg.UnhealthyThreshold {
		c.set(Unhealthy)
	}
}

// set changes the state and tells Changes and WaitHealthy; c.mu is held.
func (c *Checker) set(s State) {
	c.state = s
	close(c.changed)
	c.changed = make(chan struct{})
	for {
		select {
		case c.changes <- s:
			return
		default:
		}
		// Full: the reader is slow. Drop the oldest change so the newest gets through.
		select {
		case <-c.changes:
		default:
		}
	}
}

// Changes delivers every change of state, oldest first. It is buffered: a reader that
// falls more than 16 changes behind loses the oldest ones, never the latest, and the
// prober never waits for a reader. Every call returns the same channel, shared by its
// readers; it is never closed (see Done).
func (c *Checker) Changes() <-chan State { return c.changes }

// State is the current state.
func (c *Checker) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// LastError is why the latest failed probe failed, e.g. "GET /healthz: 503 Service
// Unavailable"; it stays after later probes pass, to explain a past Unhealthy. It is ""
// until a probe fails.
func (c *Checker) LastError() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr
}

// Done is closed once the checker has stopped probing: Stop was called or the context
// given to Start ended.
func (c *Checker) Done() <-chan struct{} { return c.done }

// Stop stops probing and returns once no probe runs; the state stays as it was. It is
// idempotent.
func (c *Checker) Stop() {
	c.cancel()
	<-c.done
}

// WaitHealthy returns nil once c is Healthy. It returns an error wrapping ErrUnhealthy
// when c turns Unhealthy without ever having been healthy, one wrapping ErrStopped when
// c stops first, and one wrapping ctx's cause when ctx ends first; each includes the
// latest probe error. It does not read c.Changes.
func WaitHealthy(ctx context.Context, c *Checker) error {
	for {
		c.mu.Lock()
		state, ever, changed, last := c.state, c.everHealthy, c.changed, c.lastErr
		c.mu.Unlock()
		switch {
		case state == Healthy:
			return nil
		case state == Unhealthy && !ever:
			return fmt.Errorf("%w: %s", ErrUnhealthy, last)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("not healthy (%s): %w", latest(c), context.Cause(ctx))
		case <-c.done:
			if c.State() == Healthy {
				return nil
			}
			return fmt.Errorf("%w before the instance was healthy (%s)", ErrStopped, latest(c))
		}
	}
}

func latest(c *Checker) string {
	if last := c.LastError(); last != "" {
		return "last failed probe: " + last
	}
	return "no probe failed"
}
