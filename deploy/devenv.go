package deploy

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/drover-cd/drover/proxy"
	"github.com/drover-cd/drover/store"
)

// upTrigger starts the trigger of every deployment Up makes ("env up: alice"): it is
// what marks an environment as a developer environment for Down.
const upTrigger = "env up: "

// UpRequest asks for a developer environment.
type UpRequest struct {
	Name    string
	From    string        // the environment to copy: every service at its live release
	With    []string      // PROJECT:REF releases in place of (or beside) the copied ones
	Idle    time.Duration // stop it after this long without a request; 0 never
	Trigger string
	// Force runs With releases whose runs have not passed: see Request.Force. Copied
	// releases are not checked: they run already.
	Force bool
	Log   func(string)
}

// Up starts a developer environment: a complete copy of From, with the releases With
// names in place of those projects' services. It is an environment like any other (its
// deploys are recorded, a restarted server brings it back) until Down or its idle
// timeout removes it. Its deployments' trigger is "env up: " and req.Trigger, which is
// how Down tells it from other environments.
func (m *Manager) Up(ctx context.Context, req UpRequest) ([]*store.Deployment, error) {
	if err := m.changing(); err != nil {
		return nil, err
	}
	if req.Log == nil {
		req.Log = func(string) {}
	}
	if !validEnvName(req.Name) {
		return nil, fmt.Errorf("environment %q: use lower-case letters, digits and '-': %w", req.Name, ErrBadRequest)
	}
	if _, err := m.cfg.Store.Environment(ctx, req.Name); err == nil {
		return nil, fmt.Errorf("environment %s exists already; drover env down %s first: %w", req.Name, req.Name, ErrBadRequest)
	}
	wants := map[string]string{} // project -> ref
	if req.From != "" {
		live, err := m.live(ctx, req.From)
		if err != nil {
			return nil, err
		}
		if len(live) == 0 {
			return nil, fmt.Errorf("%s runs nothing to copy: %w", req.From, ErrBadRequest)
		}
		for _, d := range live {
			wants[d.Project] = d.Digest
		}
	}
	given := map[string]bool{} // projects With names: a person chose their releases
	for _, w := range req.With {
		project, ref, _ := strings.Cut(w, ":")
		if project == "" {
			return nil, fmt.Errorf("--with %q: write PROJECT or PROJECT:REF: %w", w, ErrBadRequest)
		}
		// Refused before anything starts; Deploy checks again, and logs what is forced.
		rel, err := m.lookup(ctx, project, ref)
		if err != nil {
			return nil, err
		}
		if _, err := m.checkPassed(ctx, project, rel.Run, req.Force); err != nil {
			return nil, fmt.Errorf("--with %s: %w", w, err)
		}
		wants[project], given[project] = ref, true
	}
	if len(wants) == 0 {
		return nil, fmt.Errorf("nothing to run: name an environment to copy or releases to run: %w", ErrBadRequest)
	}
	env := &store.Environment{Name: req.Name, Strategy: BlueGreen, IdleTimeout: req.Idle}
	if req.From != "" {
		env.Runtime = m.runtimeOf(req.From) // a copy runs where what it copies runs
		if from, err := m.cfg.Store.Environment(ctx, m.scopeOf(req.From)); err == nil {
			env.Swarm, env.Services = from.Swarm, from.Services // on the same cluster, placed alike
		}
	}
	if err := m.cfg.Store.CreateEnvironment(ctx, env); err != nil {
		return nil, err
	}
	started := time.Now()
	var (
		mu   sync.Mutex
		out  []*store.Deployment
		errs []error
		wg   sync.WaitGroup
	)
	for project, ref := range wants {
		wg.Go(func() {
			d, err := m.Deploy(ctx, Request{Env: req.Name, Project: project, Ref: ref, together: true, Trigger: upTrigger + req.Trigger,
				Message: "env up from " + orNone(req.From), Log: func(l string) { req.Log(project + ": " + l) },
				RequirePassed: given[project], Force: req.Force})
			mu.Lock()
			defer mu.Unlock()
			if d != nil {
				out = append(out, d)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", project, err))
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		m.Down(context.WithoutCancel(ctx), req.Name, req.Trigger, "env up failed")
		return out, err
	}
	req.Log(fmt.Sprintf("environment %s is up in %s", req.Name, time.Since(started).Round(time.Millisecond)))
	return out, nil
}

// Down stops every service of a developer environment, closes its route listeners and
// deletes it with its history. Only developer environments are taken down: those Up
// created, told by their first deployment, which Up made (its trigger starts with
// "env up: "), or by an idle timeout, which only Up sets. An environment that never
// had a deployment runs nothing and goes too. Others are refused: one declared in
// environments.yml is removed there; one a deploy, a promotion or a tracking branch
// created stays.
func (m *Manager) Down(ctx context.Context, name, actor, why string) error {
	if err := m.changing(); err != nil {
		return err
	}
	env, err := m.cfg.Store.Environment(ctx, name)
	if err != nil {
		return err
	}
	if env.Managed {
		return fmt.Errorf("%s is declared in environments.yml; remove it there: %w", name, ErrBadRequest)
	}
	if env.IdleTimeout <= 0 {
		all, err := m.cfg.Store.Deployments(ctx, store.DeploymentFilter{Environment: name, Limit: math.MaxInt32})
		if err != nil {
			return err
		}
		if len(all) > 0 {
			if first := all[len(all)-1]; !strings.HasPrefix(first.Trigger, upTrigger) {
				return fmt.Errorf("%s is not a developer environment (drover env up makes those; its first deploy came from %s): %w",
					name, first.Trigger, ErrBadRequest)
			}
		}
	}
	m.stopEnv(ctx, name)
	if err := m.cfg.Store.DeleteEnvironment(ctx, name); err != nil {
		return err
	}
	e := &store.AuditEntry{Actor: actor, Action: "environment", Environment: name, Result: "success", Message: "down: " + why}
	if err := m.cfg.Store.AppendAudit(ctx, e); err != nil {
		m.cfg.Log.Error("append to the audit log", "err", err)
	}
	m.cfg.Notify(name)
	return nil
}

// ReapIdle stops, every tick until ctx ends, the developer environments nobody sent a
// request to for longer than their idle timeout.
func (m *Manager) ReapIdle(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		envs, err := m.cfg.Store.Environments(ctx)
		if err != nil {
			continue
		}
		for _, e := range envs {
			if e.IdleTimeout <= 0 {
				continue
			}
			last := e.Created
			for _, st := range m.Status(e.Name) {
				if used := m.cfg.Proxy.LastUsed(proxy.Key(st.Service, e.Name)); used.After(last) {
					last = used
				}
			}
			if idle := time.Since(last); idle > e.IdleTimeout {
				why := fmt.Sprintf("no request for %s (idle timeout %s)", idle.Round(time.Second), e.IdleTimeout)
				if err := m.Down(ctx, e.Name, "drover", why); err != nil {
					m.cfg.Log.Error("stop an idle environment", "env", e.Name, "err", err)
					continue
				}
				m.cfg.Log.Info("stopped an idle developer environment", "env", e.Name, "why", why)
			}
		}
	}
}
