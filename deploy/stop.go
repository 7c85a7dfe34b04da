package deploy

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/drover-cd/drover/proxy"
	"github.com/drover-cd/drover/runtime"
	"github.com/drover-cd/drover/store"
)

// live returns what runs in env as the store says: for each service the newest
// deployment that took the traffic, unless a person stopped the service since.
func (m *Manager) live(ctx context.Context, env string) ([]*store.Deployment, error) {
	// Every one, not the newest thousand: a service deployed once long ago still runs,
	// and what adoption does not find live it stops.
	ds, err := m.cfg.Store.Deployments(ctx, store.DeploymentFilter{Environment: env,
		Status: []string{StatusSuccess, StatusStopped}, Limit: math.MaxInt32})
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []*store.Deployment
	for _, d := range ds { // newest first
		if seen[d.Service] {
			continue
		}
		seen[d.Service] = true
		if d.Status == StatusSuccess {
			out = append(out, d)
		}
	}
	return out, nil
}

// StopEnv stops every service of env, as a person asks (drover env stop): the
// environment stays, with its history and its discovery addresses, and each service's
// history records who stopped it; a restarted server does not start them again, the
// next deploy of a service does. It returns the services it stopped.
func (m *Manager) StopEnv(ctx context.Context, env, actor, why string) ([]string, error) {
	if err := m.changing(); err != nil {
		return nil, err
	}
	if _, err := m.cfg.Store.Environment(ctx, env); errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("no environment %s: %w", env, ErrBadRequest)
	} else if err != nil {
		return nil, err
	}
	live, err := m.live(ctx, env)
	if err != nil {
		return nil, err
	}
	var stopped []string
	for _, d := range live {
		rec := &store.Deployment{Environment: env, Service: d.Service, Project: d.Project, Digest: d.Digest, Tag: d.Tag,
			Run: d.Run, Strategy: d.Strategy, Status: StatusStopped, Trigger: actor}
		if err := m.cfg.Store.CreateDeployment(ctx, rec); err != nil {
			return stopped, err
		}
		if s := m.existing(env, d.Service); s != nil {
			// Gone from what runs here: a deploy under way fails, nothing heals; its
			// discovery address stays recorded for the next deploy.
			m.forget(context.WithoutCancel(ctx), s)
		}
		rec.Reason, rec.Finished = "stopped by "+actor, time.Now()
		if why != "" {
			rec.Reason += ": " + why
		}
		if err := m.cfg.Store.UpdateDeployment(context.WithoutCancel(ctx), rec); err != nil {
			return stopped, err
		}
		m.audit(rec, "stop", why)
		stopped = append(stopped, d.Service)
	}
	m.cfg.Notify(env)
	return stopped, nil
}

// existing is the live state of a service in env, nil when it has none.
func (m *Manager) existing(env, name string) *service {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.services[proxy.Key(name, env)]
}

// Shutdown ends the manager's part in a server stop: health checks, healing and the
// route listeners stop. With keep, instances of a runtime whose instances outlive the
// server (a runtime.Adopter) go on serving, for the next server to adopt; instances of
// other runtimes, and of ephemeral environments, are stopped. Without keep, every
// instance is stopped (drover up's Ctrl-C): the store still says what runs where, so
// the next start brings it back.
func (m *Manager) Shutdown(ctx context.Context, keep bool) {
	m.mu.Lock()
	svcs := make([]*service, 0, len(m.services))
	for _, s := range m.services {
		svcs = append(svcs, s)
	}
	routes := m.routes
	m.routes = map[string]*route{}
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range svcs {
		if keep && m.outlives(s) {
			continue
		}
		wg.Go(func() { s.stopAll(ctx) })
	}
	wg.Wait()
	// Requests through a route in flight finish, up to ctx.
	for _, rt := range routes {
		wg.Go(func() { rt.shutdown(ctx) })
	}
	wg.Wait()
}

// outlives reports whether s's instances go on serving without the server: their
// runtime adopts them again, and a recorded deployment owns them.
func (m *Manager) outlives(s *service) bool {
	s.mu.Lock()
	recorded := s.current != nil && s.current.ID != 0
	s.mu.Unlock()
	if !recorded {
		return false
	}
	rt := m.cfg.Runtime
	switch m.runtimeOf(s.env) {
	case RuntimeSwarm:
		return true // the Swarm runs them
	case RuntimeDocker:
		rt = m.cfg.Containers
	}
	_, ok := rt.(runtime.Adopter)
	return ok
}

// ErrFrozen is why a change of what runs is refused while the server hands over to a
// successor (Freeze): the successor takes it in a moment.
var ErrFrozen = errors.New("this server is handing over to a new one (an upgrade); try again in a moment")

// Freeze stops every change of what runs, for a successor to take over: deploys,
// rollbacks, stops and environments under way finish first, new ones are refused with
// ErrFrozen. Healing is stopped separately (by the end of the manager's context). There
// is no thaw: the server is on its way out.
func (m *Manager) Freeze() {
	m.frozen.Store(true)
	m.mu.Lock()
	svcs := make([]*service, 0, len(m.services))
	for _, s := range m.services {
		svcs = append(svcs, s)
	}
	m.mu.Unlock()
	for _, s := range svcs {
		s.deployMu.Lock() // held: what a deploy under way does, it finishes; nothing after
	}
}

// changing refuses a change of what runs once the manager is frozen.
func (m *Manager) changing() error {
	if m.frozen.Load() {
		return ErrFrozen
	}
	return nil
}
