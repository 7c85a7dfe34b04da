package deploy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/drover-cd/drover/pipeline"
	"github.com/drover-cd/drover/release"
	"github.com/drover-cd/drover/source"
	"github.com/drover-cd/drover/store"
)

// Change is one line of an environments plan.
type Change struct {
	Kind   string `json:"kind"` // create, update, delete, deploy, scale
	Env    string `json:"env"`
	Detail string `json:"detail"`

	spec    *pipeline.EnvironmentSpec
	project string // deploy, scale: the project and release ref
	ref     string
}

// String is the change as the plan prints it: "+ integration (track main)".
func (c Change) String() string {
	sign := map[string]string{"create": "+", "update": "~", "delete": "-", "deploy": ">", "scale": "~"}[c.Kind]
	return fmt.Sprintf("%s %s: %s", sign, c.Env, c.Detail)
}

// Plan compares envs with the environments that exist and lists what Apply would do:
// environments created, changed or deleted (only ones an earlier file declared), the
// releases tracking environments would get and the services that would change replicas.
func (m *Manager) Plan(ctx context.Context, envs *pipeline.Environments) ([]Change, error) {
	have, err := m.cfg.Store.Environments(ctx)
	if err != nil {
		return nil, err
	}
	byName := map[string]*store.Environment{}
	for _, e := range have {
		byName[e.Name] = e
	}
	var plan []Change
	declared := map[string]bool{}
	for _, spec := range envs.List {
		declared[spec.Name] = true
		cur := byName[spec.Name]
		if cur == nil {
			plan = append(plan, Change{Kind: "create", Env: spec.Name, Detail: describe(spec), spec: spec})
		} else if diff := differences(effective(cur), spec); diff != "" || !cur.Managed {
			if diff == "" {
				diff = "now declared in " + pipeline.EnvironmentsFile
			}
			plan = append(plan, Change{Kind: "update", Env: spec.Name, Detail: diff, spec: spec})
			if cur.Replicas != spec.Replicas {
				for _, st := range m.Status(spec.Name) {
					if st.Project == "" {
						continue // nothing ever went live there
					}
					plan = append(plan, Change{Kind: "scale", Env: spec.Name, project: st.Project, ref: st.Digest,
						Detail: fmt.Sprintf("%s %s: %d → %s instances", st.Service, st.Tag, len(st.Instances), replicasFor(spec))})
				}
			}
		}
		if spec.Track != "" {
			tracked, err := m.trackPlan(ctx, spec)
			if err != nil {
				return nil, err
			}
			plan = append(plan, tracked...)
		}
	}
	for _, e := range have {
		if e.Managed && !declared[e.Name] {
			var names []string
			for _, st := range m.Status(e.Name) {
				names = append(names, st.Service)
			}
			detail := "deleted, with its history"
			if len(names) > 0 {
				detail += "; stops " + strings.Join(names, ", ")
			}
			plan = append(plan, Change{Kind: "delete", Env: e.Name, Detail: detail})
		}
	}
	if err := m.swarmPlanRefusals(ctx, envs, plan); err != nil {
		return nil, err
	}
	return plan, nil
}

// replicasFor says how many instances a service gets in spec's environment.
func replicasFor(spec *pipeline.EnvironmentSpec) string {
	if spec.Replicas > 0 {
		return fmt.Sprint(spec.Replicas)
	}
	return "its own number of"
}

// trackPlan lists the newest release on spec.Track of every project with a service that
// the environment does not run yet.
func (m *Manager) trackPlan(ctx context.Context, spec *pipeline.EnvironmentSpec) ([]Change, error) {
	projects, err := m.cfg.Store.Projects(ctx)
	if err != nil {
		return nil, err
	}
	live := map[string]string{} // project -> digest
	for _, st := range m.Status(spec.Name) {
		live[st.Project] = st.Digest
	}
	var out []Change
	for _, p := range projects {
		rels, err := m.cfg.Releases.List(ctx, p.Name)
		if err != nil {
			continue // a project that cannot publish: nothing to track
		}
		for _, rel := range rels {
			if rel.Branch != spec.Track {
				continue
			}
			if live[p.Name] != rel.Digest.String() && m.hasService(ctx, p.Name, &rel) {
				out = append(out, Change{Kind: "deploy", Env: spec.Name, project: p.Name, ref: rel.Tag,
					Detail: fmt.Sprintf("%s:%s, the newest release on %s", p.Name, rel.Tag, spec.Track)})
			}
			break // the newest only
		}
	}
	return out, nil
}

// hasService reports whether the drover.yml a release was built from has a service:.
func (m *Manager) hasService(ctx context.Context, project string, rel *release.Release) bool {
	data, err := source.ReadFileLimit(ctx, m.cfg.Repos(project), rel.Commit, "drover.yml", pipeline.MaxFileSize)
	if err != nil {
		return false
	}
	p, err := pipeline.Parse("drover.yml", data)
	return err == nil && p.Service != nil && p.Service.Command != ""
}

// Apply carries a plan out: it creates, changes and deletes environments, deploys what
// tracking environments should run and redeploys services whose replicas changed. It
// returns the plan and the first error; changes after a failed one are still tried.
func (m *Manager) Apply(ctx context.Context, envs *pipeline.Environments, actor string, log func(string)) ([]Change, error) {
	if err := m.changing(); err != nil {
		return nil, err
	}
	if log == nil {
		log = func(string) {}
	}
	plan, err := m.Plan(ctx, envs)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.ephemeralBase = envs.EphemeralBase // "" again when the file no longer says: the server's default
	m.mu.Unlock()
	if len(plan) == 0 {
		log("environments are as declared: nothing to change")
	}
	var errs []error
	for _, c := range plan {
		log(c.String())
		if err := m.applyOne(ctx, c, actor, log); err != nil {
			log("  failed: " + err.Error())
			errs = append(errs, fmt.Errorf("%s: %w", c, err))
		}
	}
	return plan, errors.Join(errs...)
}

func (m *Manager) applyOne(ctx context.Context, c Change, actor string, log func(string)) error {
	audit := func(result, msg string) {
		e := &store.AuditEntry{Actor: actor, Action: "environment", Environment: c.Env, Result: result, Message: msg}
		if err := m.cfg.Store.AppendAudit(ctx, e); err != nil {
			m.cfg.Log.Error("append to the audit log", "err", err)
		}
	}
	switch c.Kind {
	case "create":
		e := specToEnv(c.spec)
		if err := m.cfg.Store.CreateEnvironment(ctx, e); err != nil {
			return err
		}
		audit("success", "created: "+c.Detail)
	case "update":
		e := specToEnv(c.spec)
		before := m.runtimeOf(c.Env)
		if err := m.cfg.Store.UpdateEnvironment(ctx, e); err != nil {
			return err
		}
		if (before == RuntimeSwarm) != (m.runtimeOf(c.Env) == RuntimeSwarm) {
			// <NAME>_URL moves between loopback and the advertised host: the next
			// instances get the new addresses.
			m.closeRoutes(c.Env)
		}
		audit("success", "changed: "+c.Detail)
	case "delete":
		m.stopEnv(ctx, c.Env)
		if err := m.cfg.Store.DeleteEnvironment(ctx, c.Env); err != nil {
			return err
		}
		audit("success", "deleted: "+c.Detail)
	case "deploy", "scale":
		_, err := m.Deploy(ctx, Request{Env: c.Env, Project: c.project, Ref: c.ref, together: true, Trigger: actor,
			Message: pipeline.EnvironmentsFile + ": " + c.Detail, Log: func(l string) { log("  " + l) }})
		return err
	}
	m.cfg.Notify(c.Env)
	return nil
}

// stopEnv stops every service of an environment and closes its route listeners.
func (m *Manager) stopEnv(ctx context.Context, env string) {
	m.mu.Lock()
	var svcs []*service
	for _, s := range m.services {
		if s.env == env {
			svcs = append(svcs, s)
		}
	}
	m.mu.Unlock()
	for _, s := range svcs {
		m.forget(ctx, s)
	}
	m.closeRoutes(env)
}

func specToEnv(s *pipeline.EnvironmentSpec) *store.Environment {
	e := &store.Environment{Name: s.Name, Strategy: s.Strategy, Track: s.Track, Replicas: s.Replicas, Approval: s.Approval,
		Separation: s.Separation, Runtime: s.Runtime, Managed: true, Swarm: store.Swarm{Host: s.Swarm.Host, TLS: s.Swarm.TLS}}
	for name, svc := range s.Services {
		if e.Services == nil {
			e.Services = map[string]store.ServiceSettings{}
		}
		e.Services[name] = store.ServiceSettings{Replicas: svc.Replicas, Spread: svc.Placement.Spread,
			Constraints: svc.Placement.Constraints, CPU: svc.Resources.CPU, Memory: svc.Resources.Memory}
	}
	return e
}

// settingsText is an environment's per-service settings, for plans: "web: 4 replicas,
// spread over node.labels.zone; api: cpu 0.5".
func settingsText(services map[string]store.ServiceSettings) string {
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(services)) {
		s := services[name]
		var what []string
		if s.Replicas > 0 {
			what = append(what, fmt.Sprintf("%d replicas", s.Replicas))
		}
		if s.Spread != "" {
			what = append(what, "spread over "+s.Spread)
		}
		if len(s.Constraints) > 0 {
			what = append(what, "on "+strings.Join(s.Constraints, " and "))
		}
		if s.CPU != "" {
			what = append(what, "cpu "+s.CPU)
		}
		if s.Memory != "" {
			what = append(what, "memory "+s.Memory)
		}
		parts = append(parts, name+": "+strings.Join(what, ", "))
	}
	return strings.Join(parts, "; ")
}

// describe is a new environment's settings, for the plan.
func describe(s *pipeline.EnvironmentSpec) string {
	parts := []string{s.Strategy}
	if s.Track != "" {
		parts = append(parts, "tracks "+s.Track)
	}
	if s.Replicas > 0 {
		parts = append(parts, fmt.Sprintf("%d replicas", s.Replicas))
	}
	if s.Approval != "" {
		parts = append(parts, "deploys need "+s.Approval)
	}
	if s.Separation {
		parts = append(parts, "pushers do not approve their own changes")
	}
	if s.Runtime != "" {
		parts = append(parts, "runs on "+s.Runtime)
	}
	if s.Swarm.Host != "" {
		parts = append(parts, "managed at "+s.Swarm.Host)
	}
	if t := settingsText(specToEnv(s).Services); t != "" {
		parts = append(parts, t)
	}
	return "new environment, " + strings.Join(parts, ", ")
}

// effective is e with the approval role it asks for today, a default one included, so
// that a plan shows a declaration that drops the default: approval release-manager → none.
func effective(e *store.Environment) *store.Environment {
	c := *e
	c.Approval = approvalOf(e.Name, e)
	return &c
}

// differences lists what changes from cur to spec, "" when nothing does.
func differences(cur *store.Environment, spec *pipeline.EnvironmentSpec) string {
	var parts []string
	diff := func(what, a, b string) {
		if a != b {
			parts = append(parts, fmt.Sprintf("%s %s → %s", what, orNone(a), orNone(b)))
		}
	}
	diff("strategy", cur.Strategy, spec.Strategy)
	diff("track", cur.Track, spec.Track)
	diff("replicas", fmt.Sprint(cur.Replicas), fmt.Sprint(spec.Replicas))
	diff("approval", cur.Approval, spec.Approval)
	diff("separation", fmt.Sprint(cur.Separation), fmt.Sprint(spec.Separation))
	diff("runtime", cur.Runtime, spec.Runtime)
	next := specToEnv(spec)
	diff("swarm host", cur.Swarm.Host, next.Swarm.Host)
	diff("swarm tls", cur.Swarm.TLS, next.Swarm.TLS)
	diff("services", settingsText(cur.Services), settingsText(next.Services))
	return strings.Join(parts, ", ")
}

func orNone(s string) string {
	if s == "" || s == "0" {
		return "none"
	}
	return s
}

// Track deploys release n of project to every environment that tracks branch. Projects
// without a service: are not deployed.
func (m *Manager) Track(ctx context.Context, project, branch string, n int) {
	envs, err := m.cfg.Store.Environments(ctx)
	if err != nil {
		m.cfg.Log.Error("find the environments tracking a branch", "branch", branch, "err", err)
		return
	}
	for _, e := range envs {
		if e.Track == "" || e.Track != branch {
			continue
		}
		if approvalOf(e.Name, e) != "" {
			// Approval-gated environments take releases through approved runs and
			// promotions only, never behind a person's back.
			m.cfg.Log.Warn("an environment with approval: does not track a branch", "env", e.Name, "branch", branch)
			continue
		}
		if newer := m.runsNewer(ctx, e.Name, project, n); newer {
			continue // a later run's release got there first (runs can pass out of order)
		}
		rel, err := m.cfg.Releases.Get(ctx, project, release.Tag(n))
		if err != nil || !m.hasService(ctx, project, rel) {
			return
		}
		_, err = m.Deploy(ctx, Request{Env: e.Name, Project: project, Ref: rel.Tag, together: true, Trigger: "track " + branch,
			Message: fmt.Sprintf("%s tracks %s", e.Name, branch)})
		if err != nil {
			m.cfg.Log.Warn("a tracking environment did not take the new release", "env", e.Name, "project", project,
				"release", rel.Tag, "err", err)
		}
	}
}

// runsNewer reports whether env already runs a release of project from a run after n.
func (m *Manager) runsNewer(ctx context.Context, env, project string, n int) bool {
	live, err := m.cfg.Store.Deployments(ctx, store.DeploymentFilter{Environment: env, Project: project,
		Status: []string{StatusSuccess}, Limit: 1})
	return err == nil && len(live) == 1 && live[0].Run > n
}
