package deploy

import (
	"errors"
	"fmt"
	"slices"
	"syscall"
	"time"

	"github.com/drover-cd/drover/health"
	"github.com/drover-cd/drover/store"
)

// Restart back-off of an instance slot that keeps failing: the first restart is
// immediate, the second waits firstBackoff, each one after twice as long up to
// maxBackoff. An instance that stayed up for stableAfter starts its slot's count afresh.
const (
	firstBackoff = 500 * time.Millisecond
	maxBackoff   = 30 * time.Second
	stableAfter  = time.Minute
)

// backoff is how long restart number restarts of a slot waits before it starts.
func backoff(restarts int) time.Duration {
	if restarts <= 1 {
		return 0
	}
	d := firstBackoff
	for range restarts - 2 {
		if d *= 2; d >= maxBackoff {
			return maxBackoff
		}
	}
	return d
}

// restartsAfter is the restart count a failed instance's slot goes on from: its own,
// or 0 when it had stayed up a while, so an old crash does not slow today's restart.
func restartsAfter(inst *instance, now time.Time) int {
	if now.Sub(inst.started) >= stableAfter {
		return 0
	}
	return inst.restarts
}

// supervise watches one live instance until it is retired: when it exits or fails its
// liveness checks, the service heals or rolls back.
func (s *service) supervise(inst *instance) {
	var reason string
	release := true // the failure is the release's doing, not the world's
	changes := inst.checker.Changes()
	for reason == "" {
		select {
		case <-inst.retired:
			return
		case <-s.m.ctx.Done():
			return
		case <-inst.rt.Done():
			reason = fmt.Sprintf("exited (%v)", inst.rt.Err())
			release = !signalled(inst.rt.Err())
		case st := <-changes:
			// Changes is buffered: act on what the state is now, not on a stale change.
			if st == health.Unhealthy && inst.checker.State() == health.Unhealthy {
				reason = "failed its health check (" + inst.checker.LastError() + ")"
			}
		}
	}
	s.failed(inst, reason, release)
}

// signalled reports whether an instance was killed by a signal from outside (an
// operator, the OOM killer) rather than exiting on its own: that is healed, never
// blamed on the release. A command run through sh whose child was killed exits with
// 128+signal: 137 (SIGKILL) and 143 (SIGTERM) count as signalled too.
func signalled(err error) bool {
	// *exec.ExitError, and the exit of an instance that outlived the server that started
	// it (process.ExitError): both carry the leader's wait status.
	var ee interface{ Sys() any }
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	if !ok {
		return false
	}
	if ws.Signaled() {
		return true
	}
	code := ws.ExitStatus()
	return ws.Exited() && (code == 128+int(syscall.SIGKILL) || code == 128+int(syscall.SIGTERM))
}

// failed takes a sick instance out of the route, then rolls the service back when its
// release is new, else replaces the instance.
//
// Deployments that were never recorded (an ephemeral environment's, ID 0) are healed,
// never rolled back.
func (s *service) failed(inst *instance, reason string, release bool) {
	s.mu.Lock()
	if !slices.Contains(s.instances, inst) || s.gone {
		s.mu.Unlock()
		return // retired meanwhile
	}
	s.instances = slices.DeleteFunc(s.instances, func(x *instance) bool { return x == inst })
	s.publish()
	current, t, gen := s.current, s.target, inst.gen
	recorded := current != nil && current.ID != 0
	young := time.Since(s.switched) < s.m.cfg.RollbackWindow
	rollingBack := recorded && s.rollingBack == current.ID
	canRollBack := recorded && release && young && current.RollbackOf == 0 && s.rollbackFailed != current.ID
	restarts := restartsAfter(inst, time.Now())
	s.mu.Unlock()
	inst.retire()
	s.event("instance %s %s", inst.rt.Name(), reason)
	go s.stop(inst)
	if rollingBack {
		return // the rollback under way replaces the whole set (or heals it when it fails)
	}
	if canRollBack {
		if prev := s.previous(current); prev != nil {
			s.mu.Lock()
			switch {
			case s.rollbackFailed == current.ID:
				// Another instance's rollback was tried and failed meanwhile, and
				// counted this one among those to heal, or will.
				s.mu.Unlock()
				s.topUp()
			case s.rollingBack == current.ID:
				s.mu.Unlock()
			default:
				s.rollingBack = current.ID
				s.mu.Unlock()
				go s.autoRollback(current, prev, inst.rt.Name()+" "+reason)
			}
			return
		}
	}
	if t == nil {
		return
	}
	s.mu.Lock()
	s.pending[gen]++
	s.mu.Unlock()
	go s.replace(t, gen, restarts+1)
}

// topUp starts as many replacements as the live set lacks instances, counting those
// under way: after an automatic rollback that did not happen, for the instances that
// failed while it was tried.
func (s *service) topUp() {
	s.mu.Lock()
	if s.gone || s.target == nil || s.live != nil { // a Swarm replaces its own tasks
		s.mu.Unlock()
		return
	}
	t, gen := s.target, s.gen
	missing := max(1, t.service.Replicas) - len(s.instances) - s.pending[gen]
	if missing <= 0 {
		s.mu.Unlock()
		return
	}
	s.pending[gen] += missing
	s.mu.Unlock()
	for range missing {
		go s.replace(t, gen, 1)
	}
}

// previous is the deployment the service ran before current, with another digest.
func (s *service) previous(current *store.Deployment) *store.Deployment {
	live, err := s.m.cfg.Store.Deployments(s.m.ctx, store.DeploymentFilter{Environment: s.env, Service: s.name,
		Status: []string{StatusSuccess}, Limit: 50})
	if err != nil {
		s.m.cfg.Log.Error("read the deploy history", "env", s.env, "service", s.name, "err", err)
		return nil
	}
	for _, d := range live {
		if d.ID < current.ID && d.Digest != current.Digest {
			return d
		}
	}
	return nil
}

// autoRollback switches back to prev because current's release turned unhealthy
// within the rollback window. When the rollback fails, current's instances are healed
// from then on (and not rolled back again); when a newer deploy got there first, the
// rollback is abandoned. Either way the instances that failed meanwhile are replaced.
func (s *service) autoRollback(current, prev *store.Deployment, why string) {
	s.event("%s turned unhealthy %s after its switch: rolling back to %s", current.Tag,
		time.Since(s.switchedAt()).Round(time.Second), prev.Tag)
	_, err := s.m.rollback(s.m.ctx, s, current, prev, "automatic rollback: "+why, "", nil)
	s.mu.Lock()
	if s.rollingBack == current.ID {
		s.rollingBack = 0
	}
	superseded := errors.Is(err, errSuperseded)
	if err != nil && !superseded {
		s.rollbackFailed = current.ID
	}
	gone := s.gone
	s.mu.Unlock()
	switch {
	case err == nil || gone:
		return
	case superseded:
		s.event("automatic rollback of %s abandoned: %v", current.Tag, err)
	default:
		s.event("automatic rollback to %s failed: %v; healing %s instead", prev.Tag, err, current.Tag)
	}
	s.topUp()
}

func (s *service) switchedAt() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.switched
}

// replace starts an instance of t in place of a failed one, backing off while new ones
// keep failing (restart 2 on: see backoff), until one is healthy or a deploy moves the
// service on (gen changes) or it is forgotten. Callers count it in s.pending[gen].
func (s *service) replace(t *target, gen, restarts int) {
	defer func() {
		s.mu.Lock()
		if s.pending[gen]--; s.pending[gen] <= 0 {
			delete(s.pending, gen)
		}
		s.mu.Unlock()
	}()
	for {
		if wait := backoff(restarts); wait > 0 {
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		if !s.generation(gen) {
			return
		}
		inst, err := s.start(s.m.ctx, t, restarts, func(string) {})
		if err == nil {
			s.mu.Lock()
			if s.gen != gen || s.gone {
				s.mu.Unlock()
				s.stop(inst)
				return
			}
			inst.gen = gen
			s.instances = append(s.instances, inst)
			s.publish()
			s.mu.Unlock()
			s.event("replaced by %s (restart %d)", inst.rt.Name(), restarts)
			go s.supervise(inst)
			return
		}
		if !s.generation(gen) {
			return
		}
		s.event("replacement failed: %v; trying again in %s", err, backoff(restarts+1))
		restarts++
	}
}

// generation reports whether gen is still the service's live generation.
func (s *service) generation(gen int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen == gen && !s.gone && s.m.ctx.Err() == nil
}

// ServiceStatus is what runs of a service in an environment.
type ServiceStatus struct {
	Env     string `json:"env"`
	Service string `json:"service"`
	Project string `json:"project"`
	Tag     string `json:"tag"` // what it was deployed as: r12, or 12 before its run passed
	Digest  string `json:"digest"`
	Run     int    `json:"run"`
	// Release is the run's release tag (r12) once the run passed, whatever it was
	// deployed as; "" before. Filled in by the server, which knows the runs.
	Release string `json:"release,omitempty"`
	// Requires is what the live release's service: section requires.
	Requires   []string         `json:"requires,omitempty"`
	Deployment int64            `json:"deployment"`
	Strategy   string           `json:"strategy"`
	Switched   time.Time        `json:"switched,omitzero"`
	URL        string           `json:"url"` // through the proxy's own listener for this route
	Instances  []InstanceStatus `json:"instances"`
	Events     []Event          `json:"events"`
}

// InstanceStatus is one running instance.
type InstanceStatus struct {
	Name     string    `json:"name"`
	Addr     string    `json:"addr"`
	Pid      int       `json:"pid"`
	Health   string    `json:"health"`
	Started  time.Time `json:"started"`
	Restarts int       `json:"restarts"`
	// Node is the cluster node it runs on (runtime: swarm); "" on this machine.
	Node string `json:"node,omitempty"`
}

// Status returns what runs in env, by service name.
func (m *Manager) Status(env string) []ServiceStatus {
	m.mu.Lock()
	var svcs []*service
	for _, s := range m.services {
		if s.env == env {
			svcs = append(svcs, s)
		}
	}
	m.mu.Unlock()
	slices.SortFunc(svcs, func(a, b *service) int { return compare(a.name, b.name) })
	out := []ServiceStatus{}
	for _, s := range svcs {
		out = append(out, s.status())
	}
	return out
}

func (s *service) status() ServiceStatus {
	u, _ := s.m.URL(s.env, s.name)
	s.mu.Lock()
	defer s.mu.Unlock()
	st := ServiceStatus{Env: s.env, Service: s.name, Switched: s.switched, URL: u, Instances: []InstanceStatus{},
		Events: slices.Clone(s.events)}
	if d := s.current; d != nil {
		st.Project, st.Tag, st.Digest, st.Run, st.Deployment, st.Strategy = d.Project, d.Tag, d.Digest, d.Run, d.ID, d.Strategy
	}
	if s.target != nil {
		st.Requires = slices.Clone(s.target.service.Requires)
	}
	for _, inst := range s.instances {
		is := InstanceStatus{Name: inst.rt.Name(), Addr: inst.rt.Addr(), Pid: inst.rt.Pid(),
			Health: inst.checker.State().String(), Started: inst.started, Restarts: inst.restarts}
		if n, ok := inst.rt.(interface{ Node() string }); ok {
			is.Node = n.Node()
		}
		st.Instances = append(st.Instances, is)
	}
	if st.Events == nil {
		st.Events = []Event{}
	}
	return st
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
