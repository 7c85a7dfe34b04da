package dispatch

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/drover-cd/drover/agentproto"
	"github.com/drover-cd/drover/engine"
	"github.com/drover-cd/drover/store"
)

// Errors of the lease routes.
var (
	// ErrGone: the attempt is over for the server (lost, given up or reported): the
	// agent must drop it.
	ErrGone = errors.New("the server gave this attempt up or has its result already: drop it")
	// ErrNotYet: a lease from before the server restarted whose run has not been taken
	// up again yet: try again shortly.
	ErrNotYet = errors.New("the server is taking the run up again after a restart: try again shortly")
)

// MaxWait caps how long a poll is held.
const MaxWait = 20 * time.Second

// Poll answers an agent's poll (see agentproto). secure says it came over TLS or
// loopback: only then does the agent get steps with secrets.
func (d *Dispatcher) Poll(ctx context.Context, p agentproto.Poll, secure bool) (*agentproto.PollReply, error) {
	if p.Name == "" || p.Capacity < 1 {
		return nil, fmt.Errorf("a poll needs the agent's name and a capacity of 1 or more")
	}
	a, err := d.see(ctx, p, secure)
	if err != nil {
		return nil, err
	}
	// A held poll is the agent's heartbeat: it must come back well within the period.
	wait := min(MaxWait, d.cfg.Period/3)
	if p.Wait > 0 {
		wait = min(wait, p.Wait)
	}
	d.mu.Lock()
	a.polling++
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		a.polling--
		a.rec.Seen = d.cfg.Now() // it was there until now
		d.mu.Unlock()
	}()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	reply := &agentproto.PollReply{LeasePeriod: d.cfg.Period}
	d.heartbeat(ctx, a, p.Running, reply)
	// Free slots: what the agent said, and the ones its results free while the poll is
	// held; never more than the agent has beside the leases it runs.
	d.mu.Lock()
	freed := a.freed
	d.mu.Unlock()
	for first := true; ; first = false {
		if !first {
			d.heartbeat(ctx, a, p.Running, reply)
		}
		d.mu.Lock()
		free := min(p.Free+a.freed-freed, a.rec.Capacity-len(a.running)) - len(reply.Leases)
		d.mu.Unlock()
		leases, err := d.assign(ctx, a, free, secure)
		if err != nil {
			d.cfg.Log.Error("hand an agent work", "agent", p.Name, "err", err)
		}
		reply.Leases = append(reply.Leases, leases...)
		if len(reply.Leases)+len(reply.Stop)+len(reply.Forget) > 0 {
			return reply, nil
		}
		select {
		case <-a.wake:
		case <-timer.C:
			return reply, nil
		case <-ctx.Done():
			return reply, nil
		}
	}
}

// see records the agent as seen, and in the store when it is new or changed or when
// the store's record is older than a tenth of the lease period.
func (d *Dispatcher) see(ctx context.Context, p agentproto.Poll, secure bool) (*agentState, error) {
	now := d.cfg.Now()
	d.mu.Lock()
	a := d.agents[p.Name]
	if a == nil {
		a = &agentState{rec: store.Agent{Name: p.Name, Created: now}, running: map[int64]bool{}, wake: make(chan struct{}, 1)}
		d.agents[p.Name] = a
		d.cfg.Log.Info("agent connected", "agent", p.Name, "labels", labelString(p.Labels), "capacity", p.Capacity)
	}
	changed := !maps.Equal(a.rec.Labels, p.Labels) || a.rec.Version != p.Version || a.rec.Capacity != p.Capacity
	a.rec.Labels, a.rec.Version, a.rec.Capacity, a.rec.Seen = maps.Clone(p.Labels), p.Version, p.Capacity, now
	a.secure = secure
	save := changed || now.Sub(a.saved) > time.Minute // the store's Seen only tells a restarted server who is registered
	rec := a.rec
	if save {
		a.saved = now
	}
	d.mu.Unlock()
	if save {
		if err := d.cfg.Store.SaveAgent(ctx, &rec); err != nil {
			return nil, fmt.Errorf("record agent %s: %w", p.Name, err)
		}
	}
	return a, nil
}

// heartbeat extends the leases the agent says it runs, and adds to reply the ones it
// must stop and the workspaces it may remove. A lease the server handed it that it
// does not list is lost: the agent restarted without it.
func (d *Dispatcher) heartbeat(ctx context.Context, a *agentState, running []int64, reply *agentproto.PollReply) {
	now := d.cfg.Now()
	var dropped []*task
	d.mu.Lock()
	for _, id := range running {
		t := d.active[id]
		switch {
		case t == nil || t.agent != a.rec.Name:
			if !slices.Contains(reply.Stop, id) {
				reply.Stop = append(reply.Stop, id)
			}
		default:
			t.expires = now.Add(d.cfg.Period)
			if t.stop && !slices.Contains(reply.Stop, id) {
				reply.Stop = append(reply.Stop, id)
			}
		}
	}
	for id := range a.running {
		if t := d.active[id]; t != nil && !slices.Contains(running, id) && t.handed.Before(a.rec.Seen) && !t.handed.IsZero() {
			dropped = append(dropped, t)
		}
	}
	reply.Forget = append(reply.Forget, d.forget[a.rec.Name]...)
	delete(d.forget, a.rec.Name)
	reply.Drained = a.rec.Drained
	d.mu.Unlock()
	for _, t := range dropped {
		d.end(context.WithoutCancel(ctx), t, store.LeaseLost, "does not run it any more (it restarted)")
	}
}

// assign hands up to free queued attempts to the agent.
func (d *Dispatcher) assign(ctx context.Context, a *agentState, free int, secure bool) ([]agentproto.Lease, error) {
	d.mu.Lock()
	if a.rec.Drained || free <= 0 || len(d.queue) == 0 {
		d.mu.Unlock()
		return nil, nil
	}
	type pick struct {
		t          *task
		home, init bool
	}
	var picks []pick
	for i := 0; i < len(d.queue) && len(picks) < free; i++ {
		t := d.queue[i]
		home, init, ok := d.fits(a, t, secure)
		if !ok {
			continue
		}
		d.queue = slices.Delete(d.queue, i, i+1)
		i--
		t.agent, t.inQueue = a.rec.Name, false
		if init {
			d.homes[t.run.run.ID] = a.rec.Name
		}
		picks = append(picks, pick{t, home, init})
	}
	d.mu.Unlock()
	var leases []agentproto.Lease
	var firstErr error
	for _, p := range picks {
		l, err := d.lease(ctx, a, p.t, p.home, p.init)
		if err != nil {
			firstErr = cmpErr(firstErr, err)
			d.mu.Lock()
			if p.init {
				delete(d.homes, p.t.run.run.ID)
			}
			if p.t.stop { // cancelled meanwhile: its Exec waits for this
				d.mu.Unlock()
				p.t.finish(result{reason: "stopped before it started"})
				continue
			}
			p.t.agent, p.t.inQueue = "", true
			d.queue = slices.Insert(d.queue, 0, p.t)
			d.mu.Unlock()
			continue
		}
		leases = append(leases, *l)
	}
	return leases, firstErr
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// fits says whether agent a, polling over a secure connection or not, may take t, and
// how: in the run's home workspace (home), becoming the run's home (init), or else in a
// fresh workspace. Called with d.mu held.
func (d *Dispatcher) fits(a *agentState, t *task, secure bool) (home, init, ok bool) {
	if !matches(a.rec.Labels, t.labels) {
		return false, false, false
	}
	if t.secret() && !secure {
		return false, false, false
	}
	h := d.homes[t.run.run.ID]
	switch {
	case h == "":
		return true, true, true
	case h == a.rec.Name:
		return true, false, true
	}
	if ha := d.agents[h]; ha != nil && matches(ha.rec.Labels, t.labels) && (!t.secret() || ha.secure) {
		return false, false, false // it belongs in the run's workspace on h
	}
	return false, false, true
}

// lease records t as leased to a and makes the lease the agent gets.
func (d *Dispatcher) lease(ctx context.Context, a *agentState, t *task, home, init bool) (*agentproto.Lease, error) {
	run := t.run.run
	token := TokenPrefix + strings.ToLower(rand.Text())
	sum := sha256.Sum256([]byte(token))
	rec := &store.Lease{RunID: run.ID, Step: t.spec.Name, Attempt: t.spec.Attempt, Agent: a.rec.Name, TokenHash: sum[:],
		Status: store.LeaseActive, Home: home}
	if err := d.cfg.Store.CreateLease(ctx, rec); err != nil {
		return nil, fmt.Errorf("record the lease: %w", err)
	}
	workspace := run.workspace(rec)
	now := d.cfg.Now()
	d.mu.Lock()
	var slotFree time.Duration // how long the slot this lease takes was free, when known
	if !a.freedAt.IsZero() {
		slotFree, a.freedAt = now.Sub(a.freedAt), time.Time{}
	}
	t.lease, t.project, t.expires, t.handed = rec, run.Project, now.Add(d.cfg.Period), now
	d.active[rec.ID] = t
	d.byHash[string(sum[:])] = t
	a.running[rec.ID] = true
	d.place(t.spec.Run, a.rec.Name, workspace)
	d.mu.Unlock()
	l := &agentproto.Lease{
		ID: rec.ID, Token: token, Workspace: workspace, Fresh: !home || init,
		Checkout:   agentproto.Checkout{URL: d.cfg.GitURL(run.Project), Commit: run.Commit},
		Repository: run.Repository,
		Name:       t.spec.Name, Step: t.spec.Step, Script: t.spec.Script, Attempt: t.spec.Attempt, Run: t.spec.Run,
		Env: t.spec.Env, Hidden: ownSecrets(t.spec),
		ImageRef: t.spec.ImageRef, Self: t.spec.Self, Annotations: t.spec.Annotations,
	}
	l.Inputs = t.spec.Inputs // the agent skips layers its workspace has already
	d.cfg.Log.Debug("step leased", "agent", a.rec.Name, "lease", rec.ID, "run", run.ID, "step", t.spec.Name,
		"waited", now.Sub(t.queued).Round(time.Millisecond), "slot_free_us", slotFree.Microseconds())
	return l, nil
}

// ownSecrets are the values of the secrets spec's step asked for: what its agent masks.
// The run's other secrets never go to the agent (the server masks them too, in what
// comes back).
func ownSecrets(spec *engine.Spec) []string {
	var values []string
	for _, name := range spec.Step.Secrets {
		for _, kv := range spec.Env {
			if v, ok := strings.CutPrefix(kv, name+"="); ok && v != "" {
				values = append(values, v)
			}
		}
	}
	return values
}

// Log takes a chunk of lease id's output starting at byte offset; by is the lease whose
// credential it came with (Credential).
func (d *Dispatcher) Log(id, by, offset int64, chunk []byte) error {
	t, err := d.reporting(id, by)
	if err != nil {
		return err
	}
	t.outMu.Lock()
	defer t.outMu.Unlock()
	if t.offset < 0 {
		t.offset = offset // the first chunk since a restart: what came before is in the log
	}
	if skip := t.offset - offset; skip > 0 {
		if skip >= int64(len(chunk)) {
			return nil // sent again: taken already
		}
		chunk = chunk[skip:]
	}
	_, _ = t.out.Write(chunk)
	t.offset = max(t.offset, offset) + int64(len(chunk))
	return nil
}

// Done takes lease id's result; by is the lease whose credential it came with.
func (d *Dispatcher) Done(ctx context.Context, id, by int64, done *agentproto.Done) error {
	t, err := d.reporting(id, by)
	if err != nil {
		return err
	}
	ok, err := d.cfg.Store.EndLease(ctx, id, store.LeaseDone, "")
	if err != nil {
		return err
	}
	if !ok {
		return ErrGone
	}
	d.release(t)
	t.finish(result{done: done})
	return nil
}

// reporting finds the lease an agent reports on, refreshing it: a report is a sign of
// life too.
func (d *Dispatcher) reporting(id, by int64) (*task, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t := d.active[id]
	switch {
	case t == nil || id != by:
		return nil, ErrGone
	case t.run == nil || d.stopping.Err() != nil:
		// Before its run is taken up again after a restart, or while the server stops
		// (the next one takes the report): not now.
		return nil, ErrNotYet
	}
	t.expires = d.cfg.Now().Add(d.cfg.Period)
	return t, nil
}
