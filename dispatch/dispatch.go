// Package dispatch hands the compute steps of the server's runs to agents (drover agent
// run) and takes their results back: the server side of package agentproto.
//
// A run's engine asks its Backend to run a step; the Backend queues the attempt here and
// waits. Agents poll for work; each poll hands the oldest queued attempts whose agent:
// labels the agent has to it, as leases. A run's steps share one workspace on one
// agent, its home, picked at its first compute step; a step whose labels the home lacks
// runs on another agent in a fresh workspace. A lease lives while its agent polls (every
// poll is a heartbeat); an agent silent for the lease period loses its leases, and the
// engine runs those steps again elsewhere. Each lease carries a token of its own, which
// is revoked when the attempt is over: a late report of a lost attempt is refused.
//
// Queued attempts live in memory; leases are also recorded in the store, so that a
// server that restarts takes up the steps its agents went on running.
package dispatch

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/drover-cd/drover/agentproto"
	"github.com/drover-cd/drover/engine"
	"github.com/drover-cd/drover/store"
)

// DefaultPeriod is how long an agent may stay silent before its leases are lost.
const DefaultPeriod = 30 * time.Second

// TakeUpWithin is how long after a restart a lease that outlived it waits for its run
// to take it up again; then it is given up and its agent told to stop.
const TakeUpWithin = 10 * time.Minute

// Registered is how recently an agent must have been seen to count as one of the
// server's agents: while any does, compute steps wait for agents instead of running on
// the server.
const Registered = 24 * time.Hour

// Config is what a Dispatcher needs. Store is required.
type Config struct {
	Store store.Store
	// Local runs steps on the server while no agent is registered; nil makes steps
	// always wait for an agent (--no-local-steps).
	Local engine.Backend
	// Period is the lease period: an agent silent this long loses its leases.
	// Default DefaultPeriod.
	Period time.Duration
	// GitURL is the path of a project's repository on the server, e.g. /git/shop.git.
	GitURL func(project string) string
	Log    *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Dispatcher queues steps for agents and tracks their leases. Create it with New.
type Dispatcher struct {
	cfg Config
	// stopping ends when the server stops (Start's ctx): leases stay with their
	// agents then, for the next server to take up.
	stopping context.Context
	started  time.Time // when Start loaded the leases that outlived the last server

	mu     sync.Mutex
	agents map[string]*agentState
	queue  []*task          // attempts waiting for an agent, oldest first
	active map[int64]*task  // leases out, by ID
	byHash map[string]*task // leases out, by the SHA-256 of their token
	homes  map[int64]string // a run's home agent, by run ID
	// forget holds, per agent, workspaces of runs that ended.
	forget map[string][]string
	// places holds, per run job ID, the agents and workspaces its steps used.
	places map[string]map[string][]string
}

// agentState is what the dispatcher knows of an agent.
type agentState struct {
	rec     store.Agent
	saved   time.Time // when rec was last written to the store
	running map[int64]bool
	freed   int // leases that ended, ever: a poll waiting gives their slots out again
	polling int // polls of it being held now
	// freedAt is when a lease of it last ended, freeing a slot; zero once a lease took
	// the slot (for the dispatch latency in the debug log).
	freedAt time.Time
	wake    chan struct{}
	secure  bool // its last poll came over TLS or loopback
}

// New returns a Dispatcher; call Start before serving agents.
func New(cfg Config) *Dispatcher {
	if cfg.Period <= 0 {
		cfg.Period = DefaultPeriod
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Dispatcher{cfg: cfg, stopping: context.Background(), agents: map[string]*agentState{}, active: map[int64]*task{},
		byHash: map[string]*task{}, homes: map[int64]string{},
		forget: map[string][]string{}, places: map[string]map[string][]string{}}
}

// Period is the lease period.
func (d *Dispatcher) Period() time.Duration { return d.cfg.Period }

// Start loads the agents and the leases that were out when the server stopped, giving
// each a full period again, and watches leases for agents gone silent until ctx ends.
func (d *Dispatcher) Start(ctx context.Context) error {
	agents, err := d.cfg.Store.Agents(ctx)
	if err != nil {
		return fmt.Errorf("load agents: %w", err)
	}
	leases, err := d.cfg.Store.Leases(ctx, store.LeaseFilter{Status: []string{store.LeaseActive}})
	if err != nil {
		return fmt.Errorf("load leases: %w", err)
	}
	projects := map[int64]string{}
	for _, l := range leases {
		if r, err := d.cfg.Store.RunByID(ctx, l.RunID); err == nil {
			projects[l.RunID] = r.Project
		}
	}
	now := d.cfg.Now()
	d.mu.Lock()
	d.stopping, d.started = ctx, now
	for _, a := range agents {
		d.agents[a.Name] = &agentState{rec: *a, saved: now, running: map[int64]bool{}, wake: make(chan struct{}, 1)}
	}
	for _, l := range leases {
		t := &task{lease: l, agent: l.Agent, project: projects[l.RunID], expires: now.Add(d.cfg.Period), done: make(chan result, 1), offset: -1}
		d.active[l.ID] = t
		d.byHash[string(l.TokenHash)] = t
		if a := d.agents[l.Agent]; a != nil {
			a.running[l.ID] = true
		}
		if l.Home {
			d.homes[l.RunID] = l.Agent
		}
	}
	d.mu.Unlock()
	if len(leases) > 0 {
		d.cfg.Log.Info("leases outlived the server: their agents report when they next poll", "leases", len(leases))
	}
	go d.watch(ctx)
	return nil
}

// Outlived reports whether run runID has steps its agents went on running while the
// server was stopped: such a run resumes instead of being interrupted.
func (d *Dispatcher) Outlived(runID int64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, t := range d.active {
		if t.lease.RunID == runID {
			return true
		}
	}
	return false
}

// EndOutlived gives up the leases of run runID, whose run cannot resume: their agents
// are told to stop.
func (d *Dispatcher) EndOutlived(ctx context.Context, runID int64, reason string) {
	d.mu.Lock()
	var ended []*task
	for _, t := range d.active {
		if t.lease.RunID == runID {
			ended = append(ended, t)
		}
	}
	d.mu.Unlock()
	for _, t := range ended {
		d.end(ctx, t, store.LeaseEnded, reason)
	}
}

// Remote reports whether new runs send their compute steps to agents: when the server
// has no local backend, or any agent was seen within Registered.
func (d *Dispatcher) Remote() bool {
	if d.cfg.Local == nil {
		return true
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	since := d.cfg.Now().Add(-Registered)
	for _, a := range d.agents {
		if a.rec.Seen.After(since) {
			return true
		}
	}
	return false
}

// Agent is an agent as the API shows it.
type Agent struct {
	store.Agent
	Running []Running // the steps it runs, by lease ID
	Online  bool      // polling now, or seen within the lease period
}

// Running is a step an agent runs.
type Running struct {
	Lease   int64  `json:"lease"`
	RunID   int64  `json:"-"`
	Step    string `json:"step"`
	Attempt int    `json:"attempt"`
}

// Agents lists the agents, by name.
func (d *Dispatcher) Agents() []Agent {
	d.mu.Lock()
	defer d.mu.Unlock()
	online := d.cfg.Now().Add(-d.cfg.Period)
	var out []Agent
	for _, a := range d.agents {
		ag := Agent{Agent: a.rec, Online: a.online(online)}
		ag.Labels = maps.Clone(a.rec.Labels)
		for id := range a.running {
			if t := d.active[id]; t != nil {
				ag.Running = append(ag.Running, Running{Lease: id, RunID: t.lease.RunID, Step: t.lease.Step, Attempt: t.lease.Attempt})
			}
		}
		sort.Slice(ag.Running, func(i, j int) bool { return ag.Running[i].Lease < ag.Running[j].Lease })
		out = append(out, ag)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Drain stops (drain) or resumes handing name new leases; its running steps go on.
// store.ErrNotFound for an agent the server never saw.
func (d *Dispatcher) Drain(ctx context.Context, name string, drain bool) error {
	d.mu.Lock()
	a := d.agents[name]
	if a == nil {
		d.mu.Unlock()
		return fmt.Errorf("agent %q: %w", name, store.ErrNotFound)
	}
	a.rec.Drained = drain
	rec := a.rec
	d.mu.Unlock()
	a.poke()
	if drain {
		d.cfg.Log.Info("agent drained: it takes no new steps", "agent", name)
	}
	return d.cfg.Store.SaveAgent(ctx, &rec)
}

// online reports whether the agent is polling now or was seen since since.
func (a *agentState) online(since time.Time) bool {
	return a.polling > 0 || a.rec.Seen.After(since)
}

// poke wakes the agent's poll, if one waits.
func (a *agentState) poke() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// pokeIdle wakes the polls of the agents with a free slot, as far as the server
// knows: a new attempt is theirs to take. Called with d.mu held.
func (d *Dispatcher) pokeIdle() {
	for _, a := range d.agents {
		if len(a.running) < a.rec.Capacity && !a.rec.Drained {
			a.poke()
		}
	}
}

// watch ends the leases of agents gone silent, until ctx ends.
func (d *Dispatcher) watch(ctx context.Context) {
	tick := time.NewTicker(min(time.Second, d.cfg.Period/10))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := d.cfg.Now()
		d.mu.Lock()
		var lost, orphans []*task
		for _, t := range d.active {
			switch {
			case now.After(t.expires):
				lost = append(lost, t)
			case t.run == nil && now.Sub(d.started) > TakeUpWithin:
				orphans = append(orphans, t)
			}
		}
		d.mu.Unlock()
		for _, t := range orphans {
			d.end(context.WithoutCancel(ctx), t, store.LeaseEnded, "its run did not take it up again after the server restarted")
		}
		for _, t := range lost {
			why := fmt.Sprintf("stopped answering: no word from it for %s (the lease period)", d.cfg.Period)
			d.cfg.Log.Warn("agent lost a step", "agent", t.agent, "lease", t.lease.ID, "step", t.lease.Step, "reason", why)
			d.end(context.WithoutCancel(ctx), t, store.LeaseLost, why)
		}
	}
}

// end closes lease t as status (lost or ended) unless its result came first, which also
// ends its credential, and tells its waiting engine.
func (d *Dispatcher) end(ctx context.Context, t *task, status, reason string) bool {
	ok, err := d.cfg.Store.EndLease(ctx, t.lease.ID, status, reason)
	if err != nil {
		d.cfg.Log.Error("end a lease", "lease", t.lease.ID, "err", err)
		return false
	}
	d.release(t)
	if ok {
		t.finish(result{lost: status == store.LeaseLost, reason: reason})
		if status == store.LeaseLost {
			d.mu.Lock()
			if d.homes[t.lease.RunID] == t.agent {
				delete(d.homes, t.lease.RunID) // its workspace went with it
			}
			d.mu.Unlock()
		}
	}
	return ok
}

// release forgets lease t: it is no longer out, and its token opens nothing.
func (d *Dispatcher) release(t *task) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.active, t.lease.ID)
	delete(d.byHash, string(t.lease.TokenHash))
	if a := d.agents[t.agent]; a != nil && a.running[t.lease.ID] {
		delete(a.running, t.lease.ID)
		a.freed++
		a.freedAt = d.cfg.Now()
		a.poke() // a free slot
	}
}

// matches reports whether labels has every label want asks for.
func matches(labels, want map[string]string) bool {
	for k, v := range want {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// labelString shows labels as k=v,k=v, sorted; "any agent" for none.
func labelString(labels map[string]string) string {
	if len(labels) == 0 {
		return "none"
	}
	keys := slices.Sorted(maps.Keys(labels))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + labels[k]
	}
	return strings.Join(parts, ",")
}

// task is one attempt of a step: queued, then leased.
type task struct {
	run     *runBackend // nil for a lease loaded at start and not yet taken up
	spec    *engine.Spec
	labels  map[string]string
	queued  time.Time
	inQueue bool // waiting in Dispatcher.queue; under Dispatcher.mu
	lease   *store.Lease
	agent   string
	project string
	expires time.Time // under Dispatcher.mu
	handed  time.Time // when it went to its agent; zero for a lease from before a restart
	stop    bool      // the agent must stop it; under Dispatcher.mu

	outMu  sync.Mutex
	out    io.Writer
	offset int64 // bytes of log taken; -1 when unknown (a lease from before a restart)

	done     chan result // buffered: one result
	finished sync.Once
}

// result is how an attempt ended.
type result struct {
	done   *agentproto.Done
	lost   bool // the agent stopped answering; else the server gave it up
	reason string
}

// secret says the attempt carries secret values: it goes only to an agent that
// connects over TLS or loopback.
func (t *task) secret() bool {
	return len(t.spec.Step.Secrets) > 0
}

// TokenPrefix starts every lease's token, so that a server can tell one from an API
// token without a look in the store.
const TokenPrefix = "drover_lease_"

// StepCredential is what a lease's token opens while the lease is out.
type StepCredential struct {
	Lease   int64
	Project string // the run's project: its git repository and registry repositories
	// Pushes are the image tags ("REPO:TAG") the step's build: may push: the run's
	// number and the step's tags: in PROJECT/image.
	Pushes []string
}

// Credential says what token opens; ok is false for any token but that of a lease out
// now (one that ended opens nothing).
func (d *Dispatcher) Credential(token string) (c StepCredential, ok bool) {
	if !strings.HasPrefix(token, TokenPrefix) {
		return c, false
	}
	sum := sha256.Sum256([]byte(token))
	d.mu.Lock()
	defer d.mu.Unlock()
	t := d.byHash[string(sum[:])]
	if t == nil {
		return c, false
	}
	c = StepCredential{Lease: t.lease.ID, Project: t.project}
	if t.spec != nil && t.spec.ImageRef != "" && t.spec.Step.Build != nil {
		repo, _, _ := strings.Cut(t.spec.ImageRef, ":")
		c.Pushes = append(c.Pushes, t.spec.ImageRef)
		for _, tag := range t.spec.Step.Build.Tags {
			c.Pushes = append(c.Pushes, repo+":"+tag)
		}
	}
	return c, true
}

func (t *task) finish(r result) {
	t.finished.Do(func() { t.done <- r })
}
