package deploy

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/drover-cd/drover/store"
)

// MaxReplicas bounds a replica count a person sets.
const MaxReplicas = 100

// sized is t with the replica count it gets in env: a count a person set for its
// project there (drover scale) outranks environments.yml's for the service, then its
// replicas for the whole environment, which outrank the service's own (drover.yml).
// environments.yml's placement and resources for the service apply too. A scale the store cannot read is logged and
// the next count down applies.
func (m *Manager) sized(ctx context.Context, env *store.Environment, project string, t *target) *target {
	scales, err := m.cfg.Store.Scales(ctx, env.Name)
	if err != nil {
		m.cfg.Log.Warn("read the replica counts set by hand; the environment's apply", "env", env.Name, "err", err)
	}
	n := t.declared
	set := env.Services[t.name]
	if i := slices.IndexFunc(scales, func(s *store.Scale) bool { return s.Project == project }); i >= 0 {
		n = scales[i].Replicas
	} else if set.Replicas > 0 {
		n = set.Replicas
	} else if env.Replicas > 0 {
		n = env.Replicas
	}
	return placed(withReplicas(t, n), set)
}

// placed is t with the placement and resources environments.yml gives its service in
// one environment over drover.yml's (t itself when it gives none).
func placed(t *target, set store.ServiceSettings) *target {
	if set.Spread == "" && set.Constraints == nil && set.CPU == "" && set.Memory == "" {
		return t
	}
	svc := *t.service
	if set.Spread != "" {
		svc.Placement.Spread = set.Spread
	}
	if set.Constraints != nil {
		svc.Placement.Constraints = set.Constraints
	}
	if set.CPU != "" {
		svc.Resources.CPU = set.CPU
	}
	if set.Memory != "" {
		svc.Resources.Memory = set.Memory
	}
	t2 := *t
	t2.service = &svc
	return &t2
}

// Scale sets how many instances project's service runs in env from now on, across
// deploys and env apply, until a Scale with replicas 0 removes the count (drover scale
// --reset) and the environment's or the service's own applies again. What runs now is
// grown or shrunk in place: new instances join once healthy, extra ones are drained and
// stopped. It is audited. It returns the count that applies now.
func (m *Manager) Scale(ctx context.Context, env, project string, replicas int, actor string) (int, error) {
	if err := m.changing(); err != nil {
		return 0, err
	}
	if replicas < 0 || replicas > MaxReplicas {
		return 0, fmt.Errorf("%d replicas: give 1 to %d (or --reset): %w", replicas, MaxReplicas, ErrBadRequest)
	}
	e, err := m.cfg.Store.Environment(ctx, env)
	if errors.Is(err, store.ErrNotFound) {
		return 0, fmt.Errorf("no environment %s: %w", env, ErrBadRequest)
	} else if err != nil {
		return 0, err
	}
	message := fmt.Sprintf("%s scaled to %d", project, replicas)
	if replicas == 0 {
		message = "the replica count of " + project + " set by hand removed"
		if err := m.cfg.Store.DeleteScale(ctx, env, project); err != nil && !errors.Is(err, store.ErrNotFound) {
			return 0, err
		}
	} else if err := m.cfg.Store.SetScale(ctx, &store.Scale{Environment: env, Project: project, Replicas: replicas, Actor: actor}); err != nil {
		return 0, err
	}
	if err := m.cfg.Store.AppendAudit(ctx, &store.AuditEntry{Actor: actor, Action: "scale", Environment: env, Project: project,
		Result: "success", Message: message}); err != nil {
		m.cfg.Log.Error("append to the audit log", "action", "scale", "err", err)
	}
	live, err := m.live(ctx, env)
	if err != nil {
		return 0, err
	}
	i := slices.IndexFunc(live, func(d *store.Deployment) bool { return d.Project == project })
	if i < 0 {
		// Nothing runs: the count applies to the next deploy.
		return replicas, nil
	}
	s := m.existing(env, live[i].Service)
	if s == nil {
		return replicas, nil
	}
	return s.rescale(ctx, func(t *target) *target { return m.sized(ctx, e, project, t) }), nil
}

// rescale gives the live set the count size says for the live release: missing
// instances are started (as healing does, joining once healthy), extra ones leave the
// route and are drained and stopped. It returns the count.
func (s *service) rescale(ctx context.Context, size func(*target) *target) int {
	s.deployMu.Lock() // not while a deploy runs: it sizes its own set
	defer s.deployMu.Unlock()
	s.mu.Lock()
	if s.target == nil || s.gone {
		s.mu.Unlock()
		return 0
	}
	t := size(s.target)
	s.target = t
	want := max(1, t.service.Replicas)
	if s.live != nil {
		s.mu.Unlock()
		if err := s.swarmRescale(ctx, want); err != nil {
			s.event("scale to %d failed: %v", want, err)
			return 0
		}
		s.event("scaled to %d tasks", want)
		return want
	}
	var extra []*instance
	if n := len(s.instances); n > want {
		extra = slices.Clone(s.instances[want:])
		s.instances = s.instances[:want]
		s.publish()
	}
	s.mu.Unlock()
	if len(extra) > 0 {
		s.m.switched(ctx)
		s.retire(ctx, extra, func(string) {})
	}
	s.event("scaled to %d instances", want)
	s.topUp()
	return want
}
