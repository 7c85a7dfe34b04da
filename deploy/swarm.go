package deploy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/docker/go-units"

	"github.com/drover-cd/drover/internal/words"
	"github.com/drover-cd/drover/pipeline"
	"github.com/drover-cd/drover/runtime/container"
	"github.com/drover-cd/drover/runtime/swarm"
	"github.com/drover-cd/drover/store"
)

// RuntimeSwarm runs an environment's services on a Docker Swarm cluster
// (environments.yml: runtime: swarm): each release generation is a Swarm service.
const RuntimeSwarm = "swarm"

// clusterOf returns the Swarm cluster env's services run on: its own swarm: settings,
// or its base's for an ephemeral or developer environment.
func (m *Manager) clusterOf(ctx context.Context, env string) (*swarm.Cluster, error) {
	if m.cfg.ClusterRegistry == "" {
		return nil, fmt.Errorf("%s runs on a Swarm, whose nodes pull releases from this server: start it with --advertise https://HOST:PORT and --tls-listen (see drover server --help): %w",
			env, ErrBadRequest)
	}
	e, err := m.cfg.Store.Environment(ctx, m.scopeOf(env))
	if err != nil {
		return nil, err
	}
	if e.Swarm.Host == "" {
		return nil, fmt.Errorf("%s runs on a Swarm but environments.yml gives no swarm: {host: ...}: %w", e.Name, ErrBadRequest)
	}
	key := e.Swarm.Host + "\x00" + e.Swarm.TLS
	m.mu.Lock()
	c := m.clusters[key]
	m.mu.Unlock()
	if c != nil {
		return c, nil
	}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c, err = swarm.Connect(cctx, e.Swarm.Host, e.Swarm.TLS)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if have := m.clusters[key]; have != nil {
		c.Close()
		return have, nil
	}
	m.clusters[key] = c
	return c, nil
}

// generationName names a new Swarm service of service in env running digest:
// SERVICE-ENV-DIGEST12, with SERVICE-ENV cut short and a hash of it added when long, and
// -2, -3, ... when taken in the cluster (a generation a rolling deploy moved on to
// another release keeps its name).
func generationName(service, env, digest string, taken func(string) bool) string {
	base := strings.ToLower(service + "-" + env)
	if len(base) > 40 {
		sum := sha256.Sum256([]byte(service + "\x00" + env))
		base = strings.TrimRight(base[:31], "-") + "-" + hex.EncodeToString(sum[:])[:8]
	}
	base += "-" + short(digest)
	name := base
	for i := 2; taken(name); i++ {
		name = base + "-" + strconv.Itoa(i)
	}
	return name
}

// swarmSpec is the Swarm service spec of t in s's environment with n tasks, named
// name (its pull credential is added by ensure).
func (s *service) swarmSpec(ctx context.Context, t *target, name string, n int) (swarm.Generation, error) {
	if t.rel.Image == "" {
		return swarm.Generation{}, fmt.Errorf("%s of %s cannot run on a Swarm: its run built no image, and Swarm nodes run images (add a build: step to the pipeline): %w",
			s.name, t.rel.Tag, ErrBadRequest)
	}
	env, err := s.environ(t, RuntimeSwarm)
	if err != nil {
		return swarm.Generation{}, err
	}
	secrets, _, err := s.secrets(ctx, t)
	if err != nil {
		return swarm.Generation{}, err
	}
	env = append(env, fmt.Sprintf("PORT=%d", container.ContainerPort), "HOST=0.0.0.0")
	env = append(env, secrets...)
	g := swarm.Generation{Name: name, Image: s.m.cfg.ClusterRegistry + "/" + t.rel.Image, Command: t.service.Command, Env: env,
		Port: container.ContainerPort, Replicas: n, Labels: s.labels(t), StopTimeout: t.service.StopTimeout,
		Spread: t.service.Placement.Spread, Constraints: t.service.Placement.Constraints}
	if t.service.Image != "" && t.service.Image != "self" {
		g.Image = t.service.Image
	}
	if c := t.service.Resources.CPU; c != "" {
		if g.CPUs, err = strconv.ParseFloat(c, 64); err != nil || g.CPUs <= 0 {
			return g, fmt.Errorf("resources.cpu %q is not a number of CPUs like 0.5 or 2: %w", c, ErrBadRequest)
		}
	}
	if mem := t.service.Resources.Memory; mem != "" {
		if g.Memory, err = units.RAMInBytes(mem); err != nil || g.Memory <= 0 {
			return g, fmt.Errorf("resources.memory %q is not a size like 256m or 1g: %w", mem, ErrBadRequest)
		}
	}
	return g, nil
}

// ensure applies g to the cluster with a pull credential of its own when its tasks
// change: a pull machine token scoped to the release's repository, kept while the
// generation exists (Swarm pulls again whenever it schedules a task) and revoked when
// it is replaced or the generation removed. The admin token is never handed out.
//
// It returns what Apply did and the credential change: the new token's ID and the
// replaced one's label (0 and "" when the credential stayed). The caller revokes the
// replaced one once the new tasks serve, or the new one when it rolls the update back.
func (s *service) ensure(ctx context.Context, cl *swarm.Cluster, g swarm.Generation, repo string) (swarm.Applied, credentials, error) {
	cur, err := cl.Inspect(ctx, g.Name)
	if err != nil && !errors.Is(err, swarm.ErrNotFound) {
		return 0, credentials{}, err
	}
	var c credentials
	if err != nil || cur.Spec != g.Fingerprint() {
		token, id, err := s.m.pullToken(ctx, repo, "swarm generation "+g.Name)
		if err != nil {
			return 0, credentials{}, err
		}
		g.RegistryAuth = swarm.RegistryAuth(s.m.cfg.ClusterRegistry, "drover", token)
		g.CredentialID = strconv.FormatInt(id, 10)
		c = credentials{fresh: id, replaced: cur.CredentialID}
	}
	applied, err := cl.Apply(ctx, g)
	if err != nil {
		if c.fresh != 0 {
			s.m.revoke(c.fresh)
		}
		return 0, credentials{}, err
	}
	return applied, c, nil
}

// credentials is how a generation's pull credential changed in ensure.
type credentials struct {
	fresh    int64  // the new token's ID; 0 when the credential stayed
	replaced string // the replaced token's ID, as the generation's label had it
}

// pullToken makes a pull machine token for repo.
func (m *Manager) pullToken(ctx context.Context, repo, label string) (string, int64, error) {
	if m.cfg.NewToken == nil {
		return "", 0, errors.New("this server cannot make pull tokens")
	}
	token, hash, err := m.cfg.NewToken()
	if err != nil {
		return "", 0, err
	}
	t := &store.Token{Machine: "pull", Repository: repo, Label: label, Hash: hash}
	if err := m.cfg.Store.CreateToken(ctx, t); err != nil {
		return "", 0, fmt.Errorf("a pull token for %s: %w", repo, err)
	}
	return token, t.ID, nil
}

// revoke revokes pull token id, logging a failure.
func (m *Manager) revoke(id int64) {
	if err := m.cfg.Store.RevokeToken(context.WithoutCancel(m.ctx), id); err != nil && !errors.Is(err, store.ErrNotFound) {
		m.cfg.Log.Error("revoke a Swarm generation's pull token", "token", id, "err", err)
	}
}

// revokeLabel revokes the pull token a generation's CredentialID names.
func (m *Manager) revokeLabel(v string) {
	if id, err := strconv.ParseInt(v, 10, 64); err == nil && id > 0 {
		m.revoke(id)
	}
}

// repoOf is the registry repository of an image reference REPO@DIGEST.
func repoOf(image string) string {
	repo, _, _ := strings.Cut(image, "@")
	return repo
}

// swarmRun deploys t on the environment's Swarm by d's strategy; callers hold deployMu.
//
// Blue-green: the release's generation (a Swarm service; the kept previous one when it
// runs this digest, so a rollback reuses it) is brought to the replica count, every
// task is health-checked at its node's address and published port, the proxy switches
// once all are healthy, then the old generation is drained and scaled to 0 (kept for a
// rollback) and older ones are removed. Rolling: the live generation is updated in
// place, start-first, one task at a time; each new task joins the route once healthy.
func (s *service) swarmRun(ctx context.Context, t *target, d *store.Deployment, log func(string), restored bool) error {
	started := time.Now()
	cl, err := s.m.clusterOf(ctx, s.env)
	if err != nil {
		return err
	}
	gens, err := cl.Services(ctx, map[string]string{labelEnv: s.env, labelService: s.name})
	if err != nil {
		return err
	}
	s.mu.Lock()
	live := s.live
	s.mu.Unlock()
	replicas := max(1, t.service.Replicas)
	g, err := s.swarmSpec(ctx, t, "", replicas) // named below
	if err != nil {
		return err
	}
	for _, gen := range gens {
		if gen.Labels[labelDigest] == t.rel.Digest.String() && (g.Name == "" || live != nil && gen.Name == live.name) {
			g.Name = gen.Name
		}
	}
	if d.Strategy == Rolling && live != nil {
		g.Name = live.name
	}
	if g.Name != "" && d.Strategy != Rolling && live != nil && g.Name == live.name {
		// Blue-green to the digest that serves: a new generation, unless what its
		// tasks run is the same (then only their count is set).
		if cur, err := cl.Inspect(ctx, g.Name); err != nil || cur.Spec != g.Fingerprint() {
			g.Name = ""
		}
	}
	if g.Name == "" {
		g.Name = generationName(s.name, s.env, t.rel.Digest.String(), func(n string) bool {
			_, err := cl.Inspect(ctx, n)
			return err == nil // taken by any service of the cluster
		})
	}
	name := g.Name
	applied, creds, err := s.ensure(ctx, cl, g, repoOf(t.rel.Image))
	if err != nil {
		return err
	}
	verb := map[swarm.Applied]string{swarm.Created: "created", swarm.Updated: "updating, start-first,", swarm.Resized: "sized"}[applied]
	log(fmt.Sprintf("Swarm service %s %s with %d tasks", name, verb, replicas))
	f := s.fleet(cl, name, t, false)
	wait := s.m.cfg.HealthTimeout
	if applied == swarm.Updated {
		wait *= time.Duration(replicas) // Swarm replaces one task at a time
	}
	if err := f.waitReady(ctx, g.Fingerprint(), replicas, wait, log); err != nil {
		s.undo(cl, f, applied, live, creds)
		s.event("deploy of %s failed before the switch; %s keeps the traffic", t.rel.Tag, s.currentTag())
		return fmt.Errorf("%s of %s: %w", name, t.rel.Tag, err)
	}
	s.m.revokeLabel(creds.replaced) // the new tasks pulled with the new credential
	log(fmt.Sprintf("%d of %d tasks healthy in %s", replicas, replicas, time.Since(started).Round(time.Millisecond)))
	s.mu.Lock()
	if s.gone {
		s.mu.Unlock()
		return fmt.Errorf("deploy %s to %s: %w", s.name, s.env, errGone)
	}
	old := s.live
	s.live = f
	s.target, s.current, s.switched = t, d, switchedAt(d, restored)
	s.gen++
	f.publishLocked()
	s.mu.Unlock()
	s.m.switched(ctx)
	log(fmt.Sprintf("switched %s in %s to %s after %s", s.name, s.env, t.rel.Tag, time.Since(started).Round(time.Millisecond)))
	s.event("%s took the traffic (%d tasks of Swarm service %s, %s)", t.rel.Tag, replicas, name, d.Strategy)
	if old == nil || old == f {
		return nil // no switch between generations: the kept one stays as it is
	}
	ids := old.ids()
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.m.cfg.DrainTimeout)
	if err := s.m.cfg.Proxy.Drain(dctx, ids...); err != nil {
		log(fmt.Sprintf("draining the old tasks took longer than %s; stopping them anyway", s.m.cfg.DrainTimeout))
	}
	cancel()
	old.stop()
	if err := cl.Scale(context.WithoutCancel(ctx), old.name, 0); err != nil {
		log("scale the old generation to 0: " + err.Error())
	} else {
		log(fmt.Sprintf("stopped the %d tasks of %s; it is kept for a rollback", len(ids), old.name))
	}
	for _, g := range gens {
		if g.Name != name && g.Name != old.name {
			s.removeGeneration(context.WithoutCancel(ctx), cl, g, log)
		}
	}
	return nil
}

// undo puts the cluster back as it was before a deploy whose tasks never all became
// healthy: a new generation is removed, an update rolled back (with its credential: the
// new token is revoked), a kept one scaled to 0.
func (s *service) undo(cl *swarm.Cluster, f *fleet, applied swarm.Applied, live *fleet, creds credentials) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.m.ctx), time.Minute)
	defer cancel()
	if f != live {
		f.stop()
	}
	var err error
	switch {
	case applied == swarm.Created:
		var g swarm.Service
		if g, err = cl.Inspect(ctx, f.name); err == nil {
			s.removeGeneration(ctx, cl, g, func(string) {})
		}
	case applied == swarm.Updated:
		if err = cl.Rollback(ctx, f.name); err == nil {
			s.m.revoke(creds.fresh) // the rolled-back spec pulls with the one it had
		}
		if f != live {
			if e := cl.Scale(ctx, f.name, 0); e != nil && err == nil {
				err = e
			}
		}
	case f != live:
		err = cl.Scale(ctx, f.name, 0)
	}
	if err != nil {
		s.m.cfg.Log.Warn("undo a failed Swarm deploy", "generation", f.name, "err", err)
	}
}

// removeGeneration removes a generation's Swarm service and revokes its pull token.
func (s *service) removeGeneration(ctx context.Context, cl *swarm.Cluster, g swarm.Service, log func(string)) {
	if err := cl.Remove(ctx, g.Name); err != nil {
		log("remove an old generation: " + err.Error())
		return
	}
	s.m.revokeLabel(g.CredentialID)
	log("removed the old generation " + g.Name + " and revoked its pull token")
}

// swarmStopAll removes every generation of the service from its Swarm.
func (s *service) swarmStopAll(ctx context.Context) {
	s.mu.Lock()
	fleets := make([]*fleet, 0, len(s.fleets))
	for _, f := range s.fleets {
		fleets = append(fleets, f)
	}
	s.mu.Unlock()
	for _, f := range fleets {
		f.stop()
	}
	cl, err := s.m.clusterOf(ctx, s.env)
	if err != nil {
		s.m.cfg.Log.Warn("remove a service's Swarm generations", "env", s.env, "service", s.name, "err", err)
		return
	}
	gens, err := cl.Services(ctx, map[string]string{labelEnv: s.env, labelService: s.name})
	if err != nil {
		s.m.cfg.Log.Warn("remove a service's Swarm generations", "env", s.env, "service", s.name, "err", err)
		return
	}
	for _, g := range gens {
		s.removeGeneration(ctx, cl, g, func(string) {})
	}
}

// swarmRescale sets the live generation's task count: Swarm starts or stops tasks,
// and the route follows (new tasks join once healthy).
func (s *service) swarmRescale(ctx context.Context, n int) error {
	s.mu.Lock()
	live := s.live
	s.mu.Unlock()
	if live == nil {
		return nil
	}
	return live.cluster.Scale(ctx, live.name, n)
}

// adoptSwarm takes over the live generation of d that a previous server left on the
// Swarm: its tasks are routed at once and watched from then on. It reports whether
// there was one.
func (s *service) adoptSwarm(ctx context.Context, t *target, d *store.Deployment) (bool, error) {
	cl, err := s.m.clusterOf(ctx, s.env)
	if err != nil {
		return false, err
	}
	gens, err := cl.Services(ctx, map[string]string{labelEnv: s.env, labelService: s.name, labelDigest: d.Digest})
	if err != nil {
		return false, err
	}
	for _, g := range gens {
		if g.Replicas == 0 {
			continue
		}
		s.deployMu.Lock()
		defer s.deployMu.Unlock()
		f := s.fleet(cl, g.Name, t, true)
		if err := f.refresh(ctx); err != nil {
			f.stop()
			return false, err
		}
		s.mu.Lock()
		s.live = f
		s.target, s.current, s.switched = t, d, d.Finished
		s.gen++
		f.publishLocked()
		n := len(s.instances)
		s.mu.Unlock()
		s.event("adopted Swarm service %s (%d tasks serving) that outlived the previous server", g.Name, n)
		s.scaleLeftovers(ctx, cl, g.Name)
		return true, nil
	}
	return false, nil
}

// scaleLeftovers scales to 0 the generations of the service other than live that still
// run tasks: one a deploy was bringing up when the previous server stopped.
func (s *service) scaleLeftovers(ctx context.Context, cl *swarm.Cluster, live string) {
	gens, err := cl.Services(ctx, map[string]string{labelEnv: s.env, labelService: s.name})
	if err != nil {
		return
	}
	for _, g := range gens {
		if g.Name != live && g.Replicas > 0 {
			if err := cl.Scale(ctx, g.Name, 0); err != nil {
				s.m.cfg.Log.Warn("scale a generation an unfinished deploy left", "generation", g.Name, "err", err)
				continue
			}
			s.event("scaled %s to 0: a deploy the previous server did not finish left it running", g.Name)
		}
	}
}

// fits refuses a release that cannot run on env's runtime: on a Swarm, one whose run
// built no image (nodes run images, not unpacked releases).
func (m *Manager) fits(env string, t *target) error {
	if m.runtimeOf(env) != RuntimeSwarm || hasImage(t) {
		return nil
	}
	return fmt.Errorf("%s runs on a Swarm, whose nodes run images, and %s of %s has none: its run built no image (add a build: step to the pipeline): %w",
		env, t.name, t.rel.Tag, ErrBadRequest)
}

// hasImage reports whether t runs as an image: one its run built, or service.image.
func hasImage(t *target) bool {
	return t.rel.Image != "" || t.service.Image != "" && t.service.Image != "self"
}

// swarmPlanRefusals is why a plan cannot be applied: services that would run on a
// Swarm (live ones of an environment that moves there, and releases a tracking one
// would get) without an image. nil when there are none.
func (m *Manager) swarmPlanRefusals(ctx context.Context, envs *pipeline.Environments, plan []Change) error {
	var refusals []string
	for _, spec := range envs.List {
		if spec.Runtime != RuntimeSwarm {
			continue
		}
		type ref struct{ project, ref string }
		var refs []ref
		for _, st := range m.Status(spec.Name) {
			if st.Project != "" {
				refs = append(refs, ref{st.Project, st.Digest})
			}
		}
		for _, c := range plan {
			if c.Env == spec.Name && c.Kind == "deploy" {
				refs = append(refs, ref{c.project, c.ref})
			}
		}
		for _, r := range refs {
			t, err := m.resolve(ctx, r.project, r.ref)
			if err == nil && !hasImage(t) {
				refusals = append(refusals, fmt.Sprintf("%s of %s (%s:%s)", t.name, r.project, r.project, t.rel.Tag))
			}
		}
		if len(refusals) > 0 {
			return fmt.Errorf("%s: %s runs on a Swarm, whose nodes run images, and %s built none: add a build: step to their pipelines, or keep %s off runtime: swarm: %w",
				envs.File, spec.Name, words.And(refusals), spec.Name, ErrBadRequest)
		}
	}
	return nil
}
