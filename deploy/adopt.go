package deploy

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/drover-cd/drover/health"
	"github.com/drover-cd/drover/mask"
	"github.com/drover-cd/drover/runtime"
	"github.com/drover-cd/drover/store"
)

// The labels every instance is started with: whose it is, so that a restarted server
// knows which of the instances it adopts belong to which live deployment.
const (
	labelEnv     = "dev.drover.env"
	labelService = "dev.drover.service"
	labelProject = "dev.drover.project"
	labelDigest  = "dev.drover.digest"
)

func (s *service) labels(t *target) map[string]string {
	return map[string]string{labelEnv: s.env, labelService: s.name, labelProject: t.rel.Project, labelDigest: t.rel.Digest.String()}
}

// watch starts the health checks of an instance of t that started at started; checks
// fail it only after startPeriod.
func (s *service) watch(rt runtime.Instance, t *target, started time.Time, startPeriod time.Duration) *instance {
	h := t.service.Health
	checker := health.Start(s.m.ctx, rt.Addr(), health.Config{Path: h.Path, Interval: h.Interval, Timeout: h.Timeout,
		HealthyThreshold: h.HealthyThreshold, UnhealthyThreshold: h.UnhealthyThreshold, StartPeriod: startPeriod})
	return &instance{rt: rt, checker: checker, started: started, retired: make(chan struct{})}
}

// Adopt takes over the instances a previous server left serving, before this one's
// proxy serves: each live deployment of an environment gets back the instances of its
// release, routed at once and watched and healed from then on, with more started when
// some died meanwhile (Reconcile does that). Instances no live deployment owns (an
// older release, an ephemeral environment, a stopped service) are stopped. It also
// listens again on every recorded discovery address. It returns how many instances it
// adopted.
func (m *Manager) Adopt(ctx context.Context) (int, error) {
	envs, err := m.cfg.Store.Environments(ctx)
	if err != nil {
		return 0, err
	}
	known := map[string]bool{}
	for _, e := range envs {
		known[e.Name] = true
	}
	// The discovery addresses serve once what they route to is adopted: a call between
	// services during an upgrade finds its target routed.
	defer m.listenRecorded(known)
	adopted := m.adoptSwarms(ctx, envs)
	found := m.adoptable(ctx)
	if len(found) == 0 {
		return adopted, nil
	}
	byOwner := map[string][]runtime.Adopted{} // env/service/digest
	for _, a := range found {
		key := a.Labels[labelEnv] + "/" + a.Labels[labelService] + "/" + a.Labels[labelDigest]
		byOwner[key] = append(byOwner[key], a)
	}
	for _, e := range envs {
		live, err := m.live(ctx, e.Name)
		if err != nil {
			return adopted, err
		}
		for _, d := range live {
			key := e.Name + "/" + d.Service + "/" + d.Digest
			mine := byOwner[key]
			if len(mine) == 0 {
				continue
			}
			delete(byOwner, key)
			t, err := m.resolve(ctx, d.Project, d.Digest)
			if err != nil {
				// Left serving, unrouted here: stopping production for a store or
				// registry error would be worse. The next start adopts them.
				m.cfg.Log.Error("adopt the instances of a live release: it does not resolve; they are left running, not routed by this server",
					"env", e.Name, "service", d.Service, "release", d.Tag, "instances", len(mine), "err", err)
				continue
			}
			n := m.service(e.Name, d.Service).adopt(m.sized(ctx, e, d.Project, t), d, mine)
			adopted += n
		}
	}
	var wg sync.WaitGroup
	for _, left := range byOwner {
		for _, a := range left {
			m.cfg.Log.Info("stopping an instance no live deployment owns", "instance", a.Instance.Name(),
				"env", a.Labels[labelEnv], "service", a.Labels[labelService])
			wg.Go(func() {
				sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
				defer cancel()
				if err := a.Instance.Stop(sctx); err != nil {
					m.cfg.Log.Warn("stop an instance no live deployment owns", "instance", a.Instance.Name(), "err", err)
				}
			})
		}
	}
	go wg.Wait() // they stop in the background: serving comes first
	return adopted, nil
}

// adoptSwarms takes over the live generations of services on a Swarm, and returns how
// many it found. One it cannot reach is logged: Reconcile tries again.
func (m *Manager) adoptSwarms(ctx context.Context, envs []*store.Environment) int {
	n := 0
	for _, e := range envs {
		if m.runtimeOf(e.Name) != RuntimeSwarm {
			continue
		}
		live, err := m.live(ctx, e.Name)
		if err != nil {
			m.cfg.Log.Error("adopt the Swarm generations of an environment", "env", e.Name, "err", err)
			continue
		}
		for _, d := range live {
			t, err := m.resolve(ctx, d.Project, d.Digest)
			if err == nil {
				var ok bool
				if ok, err = m.service(e.Name, d.Service).adoptSwarm(ctx, m.sized(ctx, e, d.Project, t), d); ok {
					n++
				}
			}
			if err != nil {
				m.cfg.Log.Error("adopt a Swarm generation", "env", e.Name, "service", d.Service, "release", d.Tag, "err", err)
			}
		}
	}
	return n
}

// adoptable asks each runtime whose instances outlive the server for those still there.
func (m *Manager) adoptable(ctx context.Context) []runtime.Adopted {
	var out []runtime.Adopted
	for _, rt := range []runtime.Runtime{m.cfg.Runtime, m.cfg.Containers} {
		a, ok := rt.(runtime.Adopter)
		if !ok || rt == nil {
			continue
		}
		got, err := a.Adopt(ctx)
		if err != nil {
			m.cfg.Log.Warn("adopt the instances a previous server left", "err", err)
			continue
		}
		out = append(out, got...)
	}
	return out
}

// adopt makes found (instances of t, adopted) the live set of d, as the previous
// server left it: routed at once, and the release keeps the switch time it had. Those
// beyond the replica count are stopped; missing ones are Reconcile's to start. It
// returns how many it kept.
func (s *service) adopt(t *target, d *store.Deployment, found []runtime.Adopted) int {
	s.deployMu.Lock()
	defer s.deployMu.Unlock()
	replicas := max(1, t.service.Replicas)
	var keep []*instance
	for i, a := range found {
		if i >= replicas {
			go a.Instance.Stop(context.WithoutCancel(s.m.ctx))
			continue
		}
		// One the previous server was still starting gets the rest of its start period
		// before its checks count against it.
		inst := s.watch(a.Instance, t, a.Started, max(0, s.m.cfg.HealthTimeout-time.Since(a.Started)))
		keep = append(keep, inst)
		s.mu.Lock()
		s.seq = max(s.seq, seqOf(a.Instance.Name()))
		s.mu.Unlock()
	}
	if _, err := s.switchTo(t, d, keep, d.Finished); err != nil {
		for _, inst := range keep {
			go s.stop(inst)
		}
		return 0
	}
	s.event("adopted %d instances of %s that outlived the previous server", len(keep), d.Tag)
	s.topUp()
	return len(keep)
}

// seqOf is the number an instance name ends in (web.staging.0123abcd.7), 0 for none.
func seqOf(name string) int {
	n, _ := strconv.Atoi(name[strings.LastIndexByte(name, '.')+1:])
	return n
}

// MaskerOf is the masker of the secrets an adopted instance was given, from its labels:
// the output of an instance that outlived the server is masked as it was before. An
// instance whose secrets cannot be resolved any more gets none hidden, which is logged.
func (m *Manager) MaskerOf(labels map[string]string) *mask.Masker {
	ctx := context.WithoutCancel(m.ctx)
	t, err := m.resolve(ctx, labels[labelProject], labels[labelDigest])
	var masker *mask.Masker
	if err == nil {
		_, masker, err = m.serviceSecrets(ctx, labels[labelEnv], labels[labelService], t)
	}
	if err != nil {
		m.cfg.Log.Warn("the secrets of an adopted instance are unknown: its last output is shown unmasked",
			"env", labels[labelEnv], "service", labels[labelService], "err", err)
	}
	return masker
}
