package deploy

import (
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"syscall"
	"time"

	"github.com/drover-cd/drover/health"
	"github.com/drover-cd/drover/store"
)

// Restart back-off of an instance slot that keeps failing.
const (
	firstBackoff = 500 * time.Millisecond
	maxBackoff   = 30 * time.Second
)

// supervise watches one live instance until it is retired: when it exits or fails its
// liveness checks, the service heals or rolls back.
func (s *service) supervise(inst *instance, gen int) {
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
	s.failed(inst, gen, reason, release)
}

// signalled reports whether an instance was killed by a signal from outside (an
// operator, the OOM killer) rather than exiting on its own: that is healed, never
// blamed on the release.
func signalled(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled()
}

// failed takes a sick instance out of the route, then rolls the service back when its
// release is new, else replaces the instance.
func (s *service) failed(inst *instance, gen int, reason string, release bool) {
	s.mu.Lock()
	if !slices.Contains(s.instances, inst) {
		s.mu.Unlock()
		return // retired meanwhile
	}
	s.instances = slices.DeleteFunc(s.instances, func(x *instance) bool { return x == inst })
	s.publish()
	current, t := s.current, s.target
	young := time.Since(s.switched) < s.m.cfg.RollbackWindow
	rollingBack := current != nil && s.rollingBack == current.ID
	s.mu.Unlock()
	inst.retire()
	s.event("instance %s %s", inst.rt.Name(), reason)
	go s.stop(inst)
	if rollingBack {
		return // the rollback under way replaces the whole set
	}
	if release && young && current != nil && current.RollbackOf == 0 {
		if prev := s.previous(current); prev != nil {
			s.mu.Lock()
			again := s.rollingBack == current.ID
			s.rollingBack = current.ID
			s.mu.Unlock()
			if !again {
				go s.autoRollback(current, prev, inst.rt.Name()+" "+reason)
			}
			return
		}
	}
	go s.replace(t, gen, inst.restarts+1)
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
// within the rollback window.
func (s *service) autoRollback(current, prev *store.Deployment, why string) {
	s.event("%s turned unhealthy %s after its switch: rolling back to %s", current.Tag,
		time.Since(s.switchedAt()).Round(time.Second), prev.Tag)
	_, err := s.m.rollback(s.m.ctx, current, prev, "automatic rollback: "+why, nil)
	if err != nil {
		s.event("automatic rollback to %s failed: %v; healing %s instead", prev.Tag, err, current.Tag)
		s.mu.Lock()
		t, gen := s.target, s.gen
		s.mu.Unlock()
		s.replace(t, gen, 1)
	}
}

func (s *service) switchedAt() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.switched
}

// replace starts an instance of t in place of a failed one, backing off while new ones
// keep failing, until one is healthy or a deploy moves the service on (gen changes).
func (s *service) replace(t *target, gen, restarts int) {
	backoff := firstBackoff
	for range restarts - 1 {
		backoff = min(2*backoff, maxBackoff)
	}
	for {
		if !s.generation(gen) {
			return
		}
		inst, err := s.start(s.m.ctx, t, restarts)
		if err == nil {
			s.mu.Lock()
			if s.gen != gen {
				s.mu.Unlock()
				s.stop(inst)
				return
			}
			s.instances = append(s.instances, inst)
			s.publish()
			s.mu.Unlock()
			s.event("replaced by %s (restart %d)", inst.rt.Name(), restarts)
			go s.supervise(inst, gen)
			return
		}
		s.event("replacement failed: %v; trying again in %s", err, backoff)
		select {
		case <-s.m.ctx.Done():
			return
		case <-time.After(backoff):
		}
		restarts++
		backoff = min(2*backoff, maxBackoff)
	}
}

// generation reports whether gen is still the service's live generation.
func (s *service) generation(gen int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen == gen && s.m.ctx.Err() == nil
}

// ServiceStatus is what runs of a service in an environment.
type ServiceStatus struct {
	Env        string           `json:"env"`
	Service    string           `json:"service"`
	Project    string           `json:"project"`
	Tag        string           `json:"tag"`
	Digest     string           `json:"digest"`
	Run        int              `json:"run"`
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
	for _, inst := range s.instances {
		st.Instances = append(st.Instances, InstanceStatus{Name: inst.rt.Name(), Addr: inst.rt.Addr(), Pid: inst.rt.Pid(),
			Health: inst.checker.State().String(), Started: inst.started, Restarts: inst.restarts})
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
