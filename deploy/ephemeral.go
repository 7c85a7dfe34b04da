package deploy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/drover-cd/drover/store"
)

// Lease is an environment lent to a pipeline step.
type Lease struct {
	Env  string
	URLs map[string]string // <SERVICE>_URL -> URL, for every service of the environment
	// Release tears an ephemeral environment down (a no-op for a permanent one); safe to
	// call more than once.
	Release func()
}

// Vars is the lease as KEY=VALUE lines for a step's environment.
func (l *Lease) Vars() []string {
	vars := []string{"DROVER_TEST_ENV=" + l.Env}
	for k, v := range l.URLs {
		vars = append(vars, k+"="+v)
	}
	slices.Sort(vars)
	return vars
}

// Ephemeral starts a complete environment of its own called name: every service that
// runs in base at its live release, with project's service at the release digest (added
// when base does not run it), one instance each, wired by service discovery. It returns
// once every service is healthy. Its instances are never recorded as deployments: a
// restarted server stops them as leftovers and does not bring them back.
func (m *Manager) Ephemeral(ctx context.Context, name, base, project, digest string, log func(string)) (*Lease, error) {
	if log == nil {
		log = func(string) {}
	}
	started := time.Now()
	live, err := m.live(ctx, base)
	if err != nil {
		return nil, err
	}
	type want struct{ project, ref string }
	wants := map[string]want{} // by service name
	for _, d := range live {
		wants[d.Service] = want{d.Project, d.Digest}
	}
	own, err := m.resolve(ctx, project, digest)
	if err != nil {
		return nil, err
	}
	for svc, w := range wants {
		if w.project == project {
			delete(wants, svc) // replaced by this run's release
		}
	}
	targets := []*target{own}
	for _, w := range wants {
		t, err := m.resolve(ctx, w.project, w.ref)
		if err != nil {
			return nil, fmt.Errorf("%s from %s: %w", w.project, base, err)
		}
		targets = append(targets, t)
	}
	lease := &Lease{Env: name, URLs: map[string]string{}}
	var svcs []*service
	for _, t := range targets {
		svcs = append(svcs, m.service(name, t.name))
	}
	var once sync.Once
	lease.Release = func() {
		once.Do(func() {
			t0 := time.Now()
			var wg sync.WaitGroup
			for _, s := range svcs {
				wg.Go(func() { m.forget(context.Background(), s) })
			}
			wg.Wait()
			m.closeRoutes(name) // with those of services required there that never ran
			m.cfg.Log.Info("ephemeral environment torn down", "env", name, "took", time.Since(t0).Round(time.Millisecond))
			m.cfg.Notify(name)
		})
	}
	errs := make([]error, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		one := *t.service
		one.Replicas = 1 // a throw-away copy: complete, not redundant
		t1 := *t
		t1.service = &one
		d := &store.Deployment{Environment: name, Service: t.name, Project: t.rel.Project, Digest: t.rel.Digest.String(),
			Tag: t.rel.Tag, Run: t.rel.Run, Strategy: BlueGreen, Trigger: "ephemeral"}
		// The step hears how the wait for health goes, not the switch's details.
		progress := func(line string) {
			if strings.HasPrefix(line, "waiting for ") {
				log(line)
			}
		}
		wg.Go(func() { errs[i] = svcs[i].deploy(ctx, &t1, d, progress) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		lease.Release()
		return nil, err
	}
	var names []string
	for _, t := range targets {
		u, err := m.URL(name, t.name)
		if err != nil {
			lease.Release()
			return nil, err
		}
		lease.URLs[envName(t.name)+"_URL"] = u
		names = append(names, t.name+":"+t.rel.Tag)
	}
	slices.Sort(names)
	log(fmt.Sprintf("environment %s is up in %s: %s", name, time.Since(started).Round(time.Millisecond), strings.Join(names, ", ")))
	m.cfg.Notify(name)
	return lease, nil
}

// Lend returns the lease of a permanent environment: the URLs of what runs there now.
func (m *Manager) Lend(env string) (*Lease, error) {
	st := m.Status(env)
	if len(st) == 0 {
		return nil, fmt.Errorf("environment %s runs nothing: %w", env, ErrBadRequest)
	}
	lease := &Lease{Env: env, URLs: map[string]string{}, Release: func() {}}
	for _, s := range st {
		lease.URLs[envName(s.Service)+"_URL"] = s.URL
	}
	return lease, nil
}

// EphemeralName is the name of a run's ephemeral environment: eph-PROJECT-RUN, lower
// case, safe as a host name label. A run with more than one environment: ephemeral step
// running at once gets eph-PROJECT-RUN-2 and so on for the others (see ForStep).
func EphemeralName(project string, run int) string {
	b := []rune("eph-" + strings.ToLower(project))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			b[i] = '-'
		}
	}
	name := fmt.Sprintf("%s-%d", string(b), run)
	if len(name) > 63 {
		name = name[len(name)-63:]
	}
	return strings.Trim(name, "-")
}

// reserveEphemeral picks the name of a new ephemeral environment copying from: want,
// else want-2, want-3 and so on, the first that no other lease holds, no service runs
// in and the store has no environment called. free gives the name back.
func (m *Manager) reserveEphemeral(ctx context.Context, want, from string) (name string, free func(), err error) {
	for k := 1; ; k++ {
		name = want
		if k > 1 {
			name = fmt.Sprintf("%s-%d", want, k)
			if len(name) > 63 {
				name = strings.TrimLeft(name[len(name)-63:], "-")
			}
		}
		if !m.claim(name, from) {
			continue
		}
		_, err := m.cfg.Store.Environment(ctx, name)
		if errors.Is(err, store.ErrNotFound) {
			return name, sync.OnceFunc(func() {
				m.mu.Lock()
				delete(m.ephemeral, name)
				m.mu.Unlock()
			}), nil
		}
		m.mu.Lock()
		delete(m.ephemeral, name)
		m.mu.Unlock()
		if err != nil {
			return "", nil, err
		}
	}
}

// claim marks name as an ephemeral environment's, a copy of from, when nothing else
// uses it here.
func (m *Manager) claim(name, from string) bool {
	suffix := "." + name + ".localhost"
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, taken := m.ephemeral[name]; taken {
		return false
	}
	for _, s := range m.services {
		if s.env == name {
			return false
		}
	}
	for key := range m.routes {
		if strings.HasSuffix(key, suffix) {
			return false
		}
	}
	m.ephemeral[name] = from
	return true
}

// scopeOf is the environment whose secrets and settings (runtime:) env's instances take:
// an ephemeral environment's base, else env itself.
func (m *Manager) scopeOf(env string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if base, ok := m.ephemeral[env]; ok && base != "" {
		return base
	}
	return env
}

// StepScope is the environment whose secrets an environment: step naming name gets:
// for "ephemeral" the environment ephemeral ones copy (environments.yml's, else def),
// for any other name that environment.
func (m *Manager) StepScope(name, def string) string {
	if name != "ephemeral" {
		return name
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ephemeralBase != "" {
		return m.ephemeralBase
	}
	return def
}

// ForStep is the environment an environment: step of run number n of project runs
// against: for "ephemeral", a complete environment of its own made from base with this
// run's artifact digest, named EphemeralName(project, n) or, when another step of the
// run holds that name, with -2, -3... after it; for any other name, that permanent
// environment as it runs now.
func (m *Manager) ForStep(ctx context.Context, project string, n int, name, base, digest string, log func(string)) (*Lease, error) {
	if name != "ephemeral" {
		return m.Lend(name)
	}
	base = m.StepScope(name, base) // environments.yml's ephemeral: {base: ...}, else base
	if digest == "" {
		return nil, fmt.Errorf("an ephemeral environment runs this run's release, and no step before this one published artifacts: %w", ErrBadRequest)
	}
	env, free, err := m.reserveEphemeral(ctx, EphemeralName(project, n), base)
	if err != nil {
		return nil, err
	}
	lease, err := m.Ephemeral(ctx, env, base, project, digest, log)
	if err != nil {
		free()
		return nil, err
	}
	release := lease.Release
	lease.Release = func() {
		release()
		free()
	}
	return lease, nil
}
